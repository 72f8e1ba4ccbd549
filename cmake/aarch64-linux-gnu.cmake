# Cross-compiling the deployable side for 64-bit ARM Linux: clang --target=aarch64-linux-gnu (the native build
# uses clang too) over Debian's cross toolchain and C++ library (crossbuild-essential-arm64) and the arm64
# builds of the libraries (multiarch: zlib1g-dev:arm64 ...). Programs link statically, so qemu-aarch64 runs
# them without a target root; ctest runs the tests through it (CMAKE_CROSSCOMPILING_EMULATOR).
# Used by scripts/build-aarch64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER clang)
set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_CXX_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Each function and object in its own section, and the linker drops those nothing uses: the static mighty-run
# stripped goes from 3.16 MB to 2.63 MB. FMT_STATIC_THOUSANDS_SEPARATOR (44 is ',') keeps fmt's header-only
# code from asking std::locale for a separator in every unit: that one use linked libstdc++'s whole locale
# machinery (every facet, wide and monetary included, and glibc's iconv and wide printf behind them). Nothing
# here formats with {:L}. With that, mighty-run off CLI11 and read_file off ifstream: 2.63 -> 1.78 MB.
set(CMAKE_C_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-ffunction-sections -fdata-sections -DFMT_STATIC_THOUSANDS_SEPARATOR=44")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -Wl,--gc-sections")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# Headers and CMake packages of header-only libraries come from the host's /usr; libraries only from the
# arm64 directories.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} /)
