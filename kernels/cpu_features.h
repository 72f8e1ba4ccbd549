// What the CPU can run, detected once. A path is usable only when it was built and the CPU (and, for AVX-512
// and AMX, the operating system's saved register state; for AMX also Linux's per-process permission) supports
// it; MIGHTY_ISA can force a lower path so one machine tests every path.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mighty::kernels {

// Per architecture, ordered worst to best: a path runs when it is `ref`, or of the CPU's architecture and <=
// the best supported one (CpuFeatures::supports).
enum class Isa {
  kRef = 0,
  kAvx2 = 1,
  kAvx512Vnni = 2,
  kAmx = 3,
  kNeon = 4,
  kDotprod = 5,
  kI8mm = 6,
  kSimd128 = 7
};
inline constexpr Isa kAllIsas[] = {Isa::kRef,  Isa::kAvx2,    Isa::kAvx512Vnni, Isa::kAmx,
                                   Isa::kNeon, Isa::kDotprod, Isa::kI8mm,       Isa::kSimd128};
// The architecture a path belongs to (ref: every one).
enum class Arch { kAny, kX86, kArm, kWasm };
inline constexpr Arch isa_arch(Isa isa) {
  if (isa == Isa::kRef) return Arch::kAny;
  if (isa == Isa::kSimd128) return Arch::kWasm;
  return isa >= Isa::kNeon ? Arch::kArm : Arch::kX86;
}
inline constexpr bool is_arm_isa(Isa isa) { return isa_arch(isa) == Arch::kArm; }

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool os_saves_avx = false;     // XCR0 bits 1-2: XMM and YMM state
  bool os_saves_avx512 = false;  // XCR0 bits 5-7: opmask and ZMM state
  bool amx_tile = false;         // CPUID.7.0:EDX[24]
  bool amx_int8 = false;         // CPUID.7.0:EDX[25]
  bool os_saves_amx = false;     // XCR0 bits 17-18: XTILECFG and XTILEDATA
  // Linux hands out the 8 KB tile state only on request (arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)); made
  // once at detection when the CPU and XCR0 allow AMX.
  bool amx_permitted = false;
  std::string amx_detail;  // why the AMX path can or cannot run here (one line, for `mighty-run cpu`)
  // aarch64, from getauxval(AT_HWCAP / AT_HWCAP2): Advanced SIMD, the dot product (SDOT/UDOT) and the int8
  // matrix multiply (USDOT/SMMLA) extensions.
  bool neon = false;
  bool dotprod = false;
  bool i8mm = false;
  // WebAssembly: the module was built with the 128-bit SIMD proposal (an engine without it refuses to load
  // the module at all, so there is nothing to detect at run time).
  bool simd128 = false;
  std::string brand;

  // The best path this CPU can run, regardless of MIGHTY_ISA.
  Isa best_supported() const;
  // Whether this CPU can run `isa`: ref everywhere, else a path of its architecture up to the best one.
  bool supports(Isa isa) const;
};

// Reads cpuid/xgetbv (x86-64) or the auxiliary vector (aarch64) on the first call; later calls return the
// same object.
const CpuFeatures& cpu_features();

const char* isa_name(Isa isa);
std::optional<Isa> parse_isa(std::string_view name);

// The path to run: the best supported one, or MIGHTY_ISA when set. A MIGHTY_ISA that names an unknown path or
// one this CPU cannot run is an error (std::runtime_error with one line saying which), never a silent
// fallback.
Isa selected_isa();

// Throws std::runtime_error naming `isa` when this CPU cannot run it (explicit-path entry points call this).
void require_isa(Isa isa);

// Same rule, for a given override value (empty = none); exposed so the rule is testable without the
// environment.
Isa resolve_isa(const CpuFeatures& cpu, std::string_view override_value);

}  // namespace mighty::kernels
