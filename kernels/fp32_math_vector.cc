// The 16-lane form of the fp32 math (kernels/fp32_math_impl.h) compiled for the target's baseline SIMD
// (aarch64 NEON, WebAssembly SIMD128).
#include "kernels/fp32_math_impl.h"

namespace mighty::kernels {

const Fp32MathKernels kFp32MathVector = vector::table();

}  // namespace mighty::kernels
