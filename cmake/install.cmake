# cmake --install: the runtime and kernels as static libraries and one shared library, their headers under
# include/mighty/, a CMake package (find_package(mighty) -> mighty::runtime) and a pkg-config file (mighty.pc).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(mighty_kernels mighty_runtime PROPERTIES POSITION_INDEPENDENT_CODE ON)
# The shared runtime holds the kernels too; it links the shared system libraries (Debian's static archives
# need not be position-independent).
add_library(mighty_runtime_shared SHARED $<TARGET_OBJECTS:mighty_runtime> $<TARGET_OBJECTS:mighty_kernels>)
set_target_properties(mighty_runtime_shared PROPERTIES OUTPUT_NAME mighty_runtime EXPORT_NAME runtime_shared
                                                       VERSION ${PROJECT_VERSION} SOVERSION 0)
target_link_libraries(mighty_runtime_shared PRIVATE Threads::Threads PkgConfig::XXHASH ZLIB::ZLIB PkgConfig::UTF8PROC)
target_include_directories(mighty_runtime_shared INTERFACE $<INSTALL_INTERFACE:include/mighty>)
set_target_properties(mighty_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(mighty_kernels PROPERTIES EXPORT_NAME kernels)

install(TARGETS mighty_runtime mighty_kernels mighty_runtime_shared mighty_deploy_deps mighty_warnings
        EXPORT mightyTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION include/mighty)
foreach(folder kernels runtime)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${folder}/ DESTINATION include/mighty/${folder}
          FILES_MATCHING PATTERN "*.h")
endforeach()
install(EXPORT mightyTargets NAMESPACE mighty:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mighty)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/mightyConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/mightyConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mighty)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mightyConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/mightyConfig.cmake ${PROJECT_BINARY_DIR}/mightyConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mighty)
# Relocatable: the prefix is found from the .pc file's own place.
file(RELATIVE_PATH MIGHTY_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/mighty.pc.in ${PROJECT_BINARY_DIR}/mighty.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/mighty.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
