// aarch64 dot-product path (ARMv8.2 SDOT, `MIGHTY_ISA=dotprod`): the GEMM of gemm_arm_dot.h with activations
// taken as a - 128 (signed bytes) and 128 x the column sums added back.
#include "kernels/gemm_arm_dot.h"

namespace mighty::kernels {
namespace {

struct Sdot : SignFlipped {
  static constexpr int kRows = 4;  // register tile height
  static int32x4_t dot(int32x4_t acc, int8x16_t b, Act a) { return vdotq_s32(acc, b, a); }
  template <int L>
  static int32x4_t dot_lane(int32x4_t acc, int8x16_t b, Act a) {
    return vdotq_laneq_s32(acc, b, a, L);
  }
};

}  // namespace

void gemm_dotprod(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  gemm_dot<Sdot>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
