// The 16-lane form of the fp32 math (kernels/fp32_math_impl.h) compiled for avx512.
#include "kernels/fp32_math_impl.h"

namespace mighty::kernels {

const Fp32MathKernels kFp32MathAvx512 = vector::table();

}  // namespace mighty::kernels
