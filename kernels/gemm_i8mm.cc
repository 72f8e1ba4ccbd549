// aarch64 int8 matrix-multiply extension (ARMv8.6 i8mm, `MIGHTY_ISA=i8mm`): the GEMM of gemm_arm_dot.h on
// SUDOT, signed weights times unsigned activations, so the activations need no sign flip and the sums no
// correction.
#include "kernels/gemm_arm_dot.h"

namespace mighty::kernels {
namespace {

struct Sudot {
  using Act = uint8x16_t;
  static constexpr uint32_t kCorrection = 0;
  static constexpr int kRows = 4;  // register tile height
  static Act act(uint8x16_t a) { return a; }
  // SUDOT has only the by-lane form; lane 0 of a broadcast group is the group.
  static int32x4_t dot(int32x4_t acc, int8x16_t b, Act a) { return vsudotq_laneq_s32(acc, b, a, 0); }
  template <int L>
  static int32x4_t dot_lane(int32x4_t acc, int8x16_t b, Act a) {
    return vsudotq_laneq_s32(acc, b, a, L);
  }
};

}  // namespace

void gemm_i8mm(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  gemm_dot<Sudot>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
