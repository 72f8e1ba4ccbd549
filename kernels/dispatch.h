// One table of kernels per CPU path, as MLAS's platform struct: everything a path implements, reached through
// kernel_table(isa). A new path (AMX, NEON, WebAssembly SIMD) is its own translation units plus one entry in
// dispatch.cc; callers never switch on the path.
#pragma once

#include "kernels/cpu_features.h"
#include "kernels/depthwise.h"
#include "kernels/fp32_math.h"
#include "kernels/gemm.h"
#include "kernels/quantize.h"
#include "kernels/sgemm.h"

namespace mighty::kernels {

struct KernelTable {
  Isa isa;
  GemmKernel gemm;                   // u8 x s8 GEMM over packed weights, output columns [n_begin, n_end)
  const QuantizeKernels* quantize;   // activation quantize, range, dequantize
  DepthwiseKernel depthwise;         // depthwise convolution, output rows [row_begin, row_end)
  SgemmKernel sgemm;                 // fp32 GEMM, output columns [n_begin, n_end)
  const Fp32MathKernels* fp32_math;  // softmax, GELU, SiLU, sigmoid, LayerNorm
  // The path reads convolutions' patches in place when given run-padded weights (GemmArgs::w_runs64): a
  // runtime that sees this packs them once per layer beside the usual ones.
  bool direct_conv = false;
};

// The table of `isa`; throws std::runtime_error naming it when the path was not built or the CPU cannot run
// it.
const KernelTable& kernel_table(Isa isa);

}  // namespace mighty::kernels
