// The kernel tables, one per path, indexed by Isa. Compiled without ISA flags.
#include "kernels/dispatch.h"

#include <iterator>
#include <stdexcept>

namespace mighty::kernels {
namespace {

// Indexed by Isa: the paths of other architectures are absent from a build (their kernels were not compiled).
constexpr KernelTable kTables[] = {
    {Isa::kRef, gemm_ref, &kQuantizeRef, depthwise_ref, sgemm_ref},
#if defined(MIGHTY_X86_PATHS)
    {Isa::kAvx2, gemm_avx2, &kQuantizeAvx2, depthwise_avx2, sgemm_avx2},
    {Isa::kAvx512Vnni, gemm_avx512vnni, &kQuantizeAvx512, depthwise_avx512, sgemm_avx512},
    // AMX adds only an int8 GEMM (with the direct convolution): quantization, depthwise convolution and fp32
    // have no tile form.
    {Isa::kAmx, gemm_amx, &kQuantizeAvx512, depthwise_avx512, sgemm_avx512, true},
#endif
};

}  // namespace

const KernelTable& kernel_table(Isa isa) {
  require_isa(isa);
  const auto index = static_cast<size_t>(isa);
  if (index >= std::size(kTables) || kTables[index].isa != isa)
    throw std::runtime_error("no kernel table for this path");
  return kTables[index];
}

}  // namespace mighty::kernels
