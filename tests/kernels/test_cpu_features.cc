#include <catch2/catch.hpp>

#include "kernels/cpu_features.h"

using namespace mighty::kernels;

TEST_CASE("isa names round-trip") {
  for (Isa isa : kAllIsas) {
    REQUIRE(parse_isa(isa_name(isa)) == isa);
  }
  REQUIRE_FALSE(parse_isa("sse9").has_value());
}

TEST_CASE("best path needs both the CPU feature and OS register support") {
  CpuFeatures f;
  REQUIRE(f.best_supported() == Isa::kRef);
  f.avx2 = f.fma = true;
  REQUIRE(f.best_supported() == Isa::kRef);  // no OS support for YMM state
  f.os_saves_avx = true;
  REQUIRE(f.best_supported() == Isa::kAvx2);
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = true;
  REQUIRE(f.best_supported() == Isa::kAvx2);  // ZMM state not saved by the OS
  f.os_saves_avx512 = true;
  REQUIRE(f.best_supported() == Isa::kAvx512Vnni);
  f.amx_tile = f.amx_int8 = true;
  REQUIRE(f.best_supported() == Isa::kAvx512Vnni);  // tile state not enabled in XCR0
  f.os_saves_amx = true;
  REQUIRE(f.best_supported() == Isa::kAvx512Vnni);  // Linux's tile-data permission not granted
  f.amx_permitted = true;
  REQUIRE(f.best_supported() == Isa::kAmx);
  f.amx_int8 = false;
  REQUIRE(f.best_supported() == Isa::kAvx512Vnni);
  f.avx512vnni = false;
  REQUIRE(f.best_supported() == Isa::kAvx2);
}

TEST_CASE("MIGHTY_ISA override rule") {
  CpuFeatures avx2_only;
  avx2_only.avx2 = avx2_only.fma = avx2_only.os_saves_avx = true;
  REQUIRE(resolve_isa(avx2_only, "") == Isa::kAvx2);
  REQUIRE(resolve_isa(avx2_only, "ref") == Isa::kRef);
  REQUIRE(resolve_isa(avx2_only, "avx2") == Isa::kAvx2);
  REQUIRE_THROWS_WITH(resolve_isa(avx2_only, "avx512vnni"), Catch::Contains("not supported by this CPU"));
  REQUIRE_THROWS_WITH(resolve_isa(avx2_only, "neon9"), Catch::Contains("not a known path"));
}

TEST_CASE("this machine's detection is consistent") {
  const auto& f = cpu_features();
  INFO("cpu: " << f.brand << ", best path " << isa_name(f.best_supported()));
  if (f.best_supported() == Isa::kAvx512Vnni || f.best_supported() == Isa::kAmx) REQUIRE(f.os_saves_avx512);
  if (is_arm_isa(f.best_supported())) REQUIRE(f.neon);
  if (f.best_supported() == Isa::kSimd128) REQUIRE(f.simd128);
  if (f.best_supported() == Isa::kDotprod) REQUIRE(f.dotprod);
  if (f.best_supported() == Isa::kI8mm) REQUIRE(f.i8mm);
  if (f.best_supported() == Isa::kAmx) REQUIRE((f.amx_int8 && f.os_saves_amx && f.amx_permitted));
  REQUIRE_FALSE(f.amx_detail.empty());
  REQUIRE(&cpu_features() == &f);  // detected once
}

TEST_CASE("the WebAssembly path belongs to WebAssembly only") {
  CpuFeatures wasm;
  wasm.simd128 = true;
  REQUIRE(wasm.best_supported() == Isa::kSimd128);
  REQUIRE(wasm.supports(Isa::kRef));
  REQUIRE_FALSE(wasm.supports(Isa::kAvx2));  // below simd128 in the enum, but x86 and ARM paths
  REQUIRE_FALSE(wasm.supports(Isa::kI8mm));
  REQUIRE(resolve_isa(wasm, "ref") == Isa::kRef);
  REQUIRE_THROWS_WITH(resolve_isa(wasm, "neon"), Catch::Contains("not supported by this CPU"));
  CpuFeatures x86;
  x86.avx2 = x86.fma = x86.os_saves_avx = true;
  REQUIRE_FALSE(x86.supports(Isa::kSimd128));
  REQUIRE(isa_arch(Isa::kSimd128) == Arch::kWasm);
  REQUIRE(isa_arch(Isa::kRef) == Arch::kAny);
  REQUIRE(isa_arch(Isa::kAmx) == Arch::kX86);
  REQUIRE(isa_arch(Isa::kNeon) == Arch::kArm);
}

TEST_CASE("paths belong to their architecture") {
  CpuFeatures arm;
  arm.neon = true;
  REQUIRE(arm.best_supported() == Isa::kNeon);
  REQUIRE_FALSE(arm.supports(Isa::kDotprod));
  arm.dotprod = true;
  REQUIRE(arm.best_supported() == Isa::kDotprod);
  REQUIRE(arm.supports(Isa::kRef));
  REQUIRE(arm.supports(Isa::kDotprod));
  REQUIRE_FALSE(arm.supports(Isa::kAvx2));  // below dotprod in the enum, but an x86 path
  REQUIRE_THROWS_WITH(resolve_isa(arm, "avx2"), Catch::Contains("not supported by this CPU"));
  REQUIRE(resolve_isa(arm, "dotprod") == Isa::kDotprod);
  REQUIRE_THROWS_WITH(resolve_isa(arm, "i8mm"), Catch::Contains("not supported by this CPU"));
  arm.i8mm = true;
  REQUIRE(arm.best_supported() == Isa::kI8mm);
  REQUIRE(arm.supports(Isa::kDotprod));
  REQUIRE_FALSE(arm.supports(Isa::kAmx));
  CpuFeatures x86;
  x86.avx2 = x86.fma = x86.os_saves_avx = true;
  x86.avx512f = x86.avx512bw = x86.avx512vl = x86.avx512vnni = x86.os_saves_avx512 = true;
  x86.amx_tile = x86.amx_int8 = x86.os_saves_amx = x86.amx_permitted = true;
  REQUIRE(x86.best_supported() == Isa::kAmx);
  REQUIRE_FALSE(x86.supports(Isa::kDotprod));
  REQUIRE_FALSE(x86.supports(Isa::kNeon));
  REQUIRE_THROWS_WITH(resolve_isa(x86, "dotprod"), Catch::Contains("not supported by this CPU"));
  REQUIRE(parse_isa("dotprod") == Isa::kDotprod);
}
