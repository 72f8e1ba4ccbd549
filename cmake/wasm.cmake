# The WebAssembly build (scripts/build-wasm: Debian's emscripten, `emcmake cmake`). The deployable side only.
# Header-only libraries come from Debian's /usr/include through a folder of links holding just them (adding
# /usr/include itself would put the host's C library ahead of emscripten's); xxHash is used header-only
# (XXH_INLINE_ALL). zlib and utf8proc have no wasm build to link: this build reads no gzip and normalizes no
# non-ASCII text (MIGHTY_NO_ZLIB, MIGHTY_NO_UTF8PROC: those inputs are refused with a message naming them).
# Programs run under Node.js (ctest's emulator) with the host's file system (NODERAWFS) and environment
# (cmake/wasm-env.js); every unit is compiled for 128-bit SIMD and native wasm exceptions.
set(MIGHTY_WASM_INCLUDE ${PROJECT_BINARY_DIR}/wasm-include)
file(MAKE_DIRECTORY ${MIGHTY_WASM_INCLUDE})
foreach(pair "Eigen=eigen3/Eigen" "nlohmann=nlohmann" "fmt=fmt" "catch2=catch2" "xxhash.h=xxhash.h")
  string(REPLACE "=" ";" parts ${pair})
  list(GET parts 0 link)
  list(GET parts 1 target)
  if(NOT EXISTS /usr/include/${target})
    message(FATAL_ERROR "WebAssembly build: /usr/include/${target} is missing (run scripts/setup)")
  endif()
  if(NOT EXISTS ${MIGHTY_WASM_INCLUDE}/${link})
    file(CREATE_LINK /usr/include/${target} ${MIGHTY_WASM_INCLUDE}/${link} SYMBOLIC)
  endif()
endforeach()

# No SLP vectorizer: with -msimd128, Debian's clang 14 turned the scalar softmax (kernels/fp32_math_impl.h)
# into SIMD code that rounds differently (1 ulp off from the same source compiled for x86-64 or with -O1;
# found by the fp32 math test). The SIMD paths are written by hand; the scalar reference must stay scalar.
add_compile_options(-msimd128 -fwasm-exceptions -fno-slp-vectorize)
add_link_options(-msimd128 -fwasm-exceptions -sALLOW_MEMORY_GROWTH=1)
find_package(Threads REQUIRED)

foreach(target Eigen3::Eigen nlohmann_json::nlohmann_json fmt::fmt-header-only Catch2::Catch2)
  add_library(${target} INTERFACE IMPORTED)
  target_include_directories(${target} SYSTEM INTERFACE ${MIGHTY_WASM_INCLUDE})
endforeach()
# No std::locale behind fmt (as in cmake/aarch64-linux-gnu.cmake: 44 is ','; nothing formats with {:L}).
target_compile_definitions(fmt::fmt-header-only INTERFACE FMT_HEADER_ONLY=1 FMT_STATIC_THOUSANDS_SEPARATOR=44)
target_compile_definitions(Eigen3::Eigen INTERFACE EIGEN_DONT_PARALLELIZE)
add_library(mighty_deploy_deps INTERFACE)
target_include_directories(mighty_deploy_deps SYSTEM INTERFACE ${MIGHTY_WASM_INCLUDE})
target_compile_definitions(mighty_deploy_deps INTERFACE XXH_INLINE_ALL MIGHTY_NO_ZLIB MIGHTY_NO_UTF8PROC)

# Programs (tests, mighty-run, the C example) run under Node.js: ctest starts them with it.
set(CMAKE_CROSSCOMPILING_EMULATOR node)
function(mighty_wasm_node_program target)
  target_link_options(${target} PRIVATE -sENVIRONMENT=node -sNODERAWFS=1 -sEXIT_RUNTIME=1
                      --pre-js ${PROJECT_SOURCE_DIR}/cmake/wasm-env.js)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/wasm-env.js)
endfunction()
# catch_discover_tests (Catch2's CMake module; the header itself comes through the links above).
list(APPEND CMAKE_MODULE_PATH /usr/lib/cmake/Catch2)
