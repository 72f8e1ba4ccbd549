// aarch64 baseline path (ARMv8.0 Advanced SIMD, `MIGHTY_ISA=neon`): the GEMM of gemm_arm_dot.h for CPUs
// without the dot product (Cortex-A53/A72: Raspberry Pi 3 and 4). A 4-byte dot per lane is built from
// widening multiplies: SMULL of 8 signed bytes (2 columns x 4 depths; each product fits int16), SADDLP pairs
// into int32, ADDP pairs again, then the add into the accumulator: exact. Activations are taken as a - 128
// and the column sums added back, as on the SDOT path.
#include "kernels/gemm_arm_dot.h"

namespace mighty::kernels {
namespace {

struct NeonDot : SignFlipped {
  static constexpr int kRows = 2;  // register tile height
  // b: 4 columns x 4 depths; a: one group's 4 bytes in every lane.
  static int32x4_t dot(int32x4_t acc, int8x16_t b, Act a) {
    const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(b), vget_low_s8(a)));  // columns 0-1, depth pairs
    const int32x4_t hi = vpaddlq_s16(vmull_high_s8(b, a));                       // columns 2-3
    return vaddq_s32(acc, vpaddq_s32(lo, hi));
  }
  template <int L>
  static int32x4_t dot_lane(int32x4_t acc, int8x16_t b, Act a) {
    return dot(acc, b, vreinterpretq_s8_u32(vdupq_laneq_u32(vreinterpretq_u32_s8(a), L)));
  }
};

}  // namespace

void gemm_neon(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  gemm_dot<NeonDot>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
