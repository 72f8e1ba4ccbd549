#include "kernels/cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace mighty::kernels {
namespace {

#if defined(__x86_64__)
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv is only valid when cpuid reports OSXSAVE; the caller checks that first.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// Linux (5.16+): a process must ask before it touches tile data, or its first tile instruction faults.
constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureTileData = 18;

void detect_amx(CpuFeatures& f, uint64_t xcr0) {
  f.os_saves_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (!f.amx_tile || !f.amx_int8) {
    f.amx_detail = "the CPU has no AMX-INT8";
    return;
  }
  if (!f.os_saves_amx) {
    f.amx_detail = "the OS does not enable tile state (XCR0 bits 17-18)";
    return;
  }
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureTileData) != 0) {
    f.amx_detail =
        "Linux refused tile-data permission (arch_prctl ARCH_REQ_XCOMP_PERM; kernel older than 5.16?)";
    return;
  }
  unsigned long granted = 0;
  f.amx_permitted =
      syscall(SYS_arch_prctl, kArchGetXcompPerm, &granted) == 0 && (granted >> kXfeatureTileData & 1) != 0;
  f.amx_detail = f.amx_permitted ? "AMX-TILE, AMX-INT8, XCR0 tile state and Linux's permission: usable"
                                 : "Linux did not grant tile-data permission";
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool osxsave = (ecx >> 27) & 1;
  f.fma = (ecx >> 12) & 1;
  uint64_t xcr0 = 0;
  if (osxsave) {
    xcr0 = read_xcr0();
    f.os_saves_avx = (xcr0 & 0x6) == 0x6;
    f.os_saves_avx512 = f.os_saves_avx && (xcr0 & 0xe0) == 0xe0;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    f.avx2 = (ebx >> 5) & 1;
    f.avx512f = (ebx >> 16) & 1;
    f.avx512bw = (ebx >> 30) & 1;
    f.avx512vl = (ebx >> 31) & 1;
    f.avx512vnni = (ecx >> 11) & 1;
    f.amx_tile = (edx >> 24) & 1;
    f.amx_int8 = (edx >> 25) & 1;
  }
  detect_amx(f, xcr0);
  unsigned ext = __get_cpuid_max(0x80000000, nullptr);
  if (ext >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __cpuid(0x80000002 + i, eax, ebx, ecx, edx);
      std::memcpy(brand + 16 * i, &eax, 4);
      std::memcpy(brand + 16 * i + 4, &ebx, 4);
      std::memcpy(brand + 16 * i + 8, &ecx, 4);
      std::memcpy(brand + 16 * i + 12, &edx, 4);
    }
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  }
  return f;
}
#else
#if defined(__aarch64__)
// Linux's hwcap bits (asm/hwcap.h), spelled out so the build needs no kernel headers of the target.
constexpr unsigned long kHwcapAsimd = 1ul << 1, kHwcapAsimdDp = 1ul << 20, kHwcap2I8mm = 1ul << 13;
#endif

CpuFeatures detect() {
  CpuFeatures f;
  f.amx_detail = "not an x86-64 CPU";
#if defined(__aarch64__)
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  f.neon = (hwcap & kHwcapAsimd) != 0;
  f.dotprod = (hwcap & kHwcapAsimdDp) != 0;
  f.i8mm = (hwcap2 & kHwcap2I8mm) != 0;
  f.brand = "aarch64";
#elif defined(__wasm__)
#if defined(__wasm_simd128__)
  f.simd128 = true;
#endif
  f.amx_detail = "not an x86-64 CPU (WebAssembly)";
  f.brand = "WebAssembly";
#endif
  return f;
}
#endif

}  // namespace

Isa CpuFeatures::best_supported() const {
  if (simd128) return Isa::kSimd128;
  if (dotprod && i8mm) return Isa::kI8mm;
  if (dotprod) return Isa::kDotprod;
  if (neon) return Isa::kNeon;
  const bool vnni = os_saves_avx512 && avx512f && avx512bw && avx512vl && avx512vnni;
  if (vnni && amx_tile && amx_int8 && os_saves_amx && amx_permitted) return Isa::kAmx;
  if (os_saves_avx512 && avx512f && avx512bw && avx512vl && avx512vnni) return Isa::kAvx512Vnni;
  if (os_saves_avx && avx2 && fma) return Isa::kAvx2;
  return Isa::kRef;
}

bool CpuFeatures::supports(Isa isa) const {
  const Isa best = best_supported();
  return isa == Isa::kRef || (isa_arch(isa) == isa_arch(best) && isa <= best);
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kRef:
      return "ref";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512Vnni:
      return "avx512vnni";
    case Isa::kAmx:
      return "amx";
    case Isa::kNeon:
      return "neon";
    case Isa::kDotprod:
      return "dotprod";
    case Isa::kI8mm:
      return "i8mm";
    case Isa::kSimd128:
      return "simd128";
  }
  return "unknown";
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) return isa;
  }
  return std::nullopt;
}

Isa resolve_isa(const CpuFeatures& cpu, std::string_view override_value) {
  const Isa best = cpu.best_supported();
  if (override_value.empty()) return best;
  const auto forced = parse_isa(override_value);
  if (!forced) {
    throw std::runtime_error(
        "MIGHTY_ISA=" + std::string(override_value) +
        " is not a known path (expected ref, avx2, avx512vnni, amx, neon, dotprod, i8mm or simd128)");
  }
  if (!cpu.supports(*forced)) {
    throw std::runtime_error("MIGHTY_ISA=" + std::string(override_value) +
                             " is not supported by this CPU (best: " + isa_name(best) + ")");
  }
  return *forced;
}

void require_isa(Isa isa) {
  if (!cpu_features().supports(isa)) {
    throw std::runtime_error(std::string("kernel path ") + isa_name(isa) + " is not supported by this CPU");
  }
}

Isa selected_isa() {
  const char* env = std::getenv("MIGHTY_ISA");
  return resolve_isa(cpu_features(), env ? std::string_view(env) : std::string_view());
}

}  // namespace mighty::kernels
