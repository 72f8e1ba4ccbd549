// The kernel tables, one per path. Compiled without ISA flags.
#include "kernels/dispatch.h"

#include <stdexcept>
#include <string>

namespace mighty::kernels {
namespace {

// The paths of this build's architecture (the others' kernels are not compiled).
constexpr KernelTable kTables[] = {
    {Isa::kRef, gemm_ref, &kQuantizeRef, depthwise_ref, sgemm_ref, &kFp32MathRef},
#if defined(MIGHTY_X86_PATHS)
    {Isa::kAvx2, gemm_avx2, &kQuantizeAvx2, depthwise_avx2, sgemm_avx2, &kFp32MathAvx2},
    {Isa::kAvx512Vnni, gemm_avx512vnni, &kQuantizeAvx512, depthwise_avx512, sgemm_avx512, &kFp32MathAvx512},
    // AMX adds only an int8 GEMM (with the direct convolution): quantization, depthwise convolution and fp32
    // have no tile form.
    {Isa::kAmx, gemm_amx, &kQuantizeAvx512, depthwise_avx512, sgemm_avx512, &kFp32MathAvx512, true},
#endif
#if defined(MIGHTY_ARM_PATHS)
    // aarch64: the int8 GEMM and the fp32 math (NEON is baseline there); the rest runs the reference
    // kernels.
    {Isa::kNeon, gemm_neon, &kQuantizeRef, depthwise_ref, sgemm_ref, &kFp32MathVector},
    {Isa::kDotprod, gemm_dotprod, &kQuantizeRef, depthwise_ref, sgemm_ref, &kFp32MathVector},
    {Isa::kI8mm, gemm_i8mm, &kQuantizeRef, depthwise_ref, sgemm_ref, &kFp32MathVector},
#endif
#if defined(MIGHTY_WASM_PATHS)
    // WebAssembly: the int8 GEMM, the fp32 GEMM and the fp32 math on 128-bit SIMD; quantization and the
    // depthwise convolution run the reference kernels.
    {Isa::kSimd128, gemm_wasm, &kQuantizeRef, depthwise_ref, sgemm_wasm, &kFp32MathVector},
#endif
};

}  // namespace

const KernelTable& kernel_table(Isa isa) {
  require_isa(isa);
  for (const KernelTable& table : kTables)
    if (table.isa == isa) return table;
  throw std::runtime_error(std::string("no kernel table for path ") + isa_name(isa) + " in this build");
}

}  // namespace mighty::kernels
