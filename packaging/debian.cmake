# `cpack -G DEB` in the build directory (`make package`): one package with the binary, the static
# libraries, the headers and the CMake and pkg-config files, installed under /usr.
set(TESSERA_PACKAGE_CONTACT "tessera maintainers <maintainers@users.noreply.r-seed-ad602415.example>"
    CACHE STRING "Maintainer of the Debian package: Name <email>")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tessera)
set(CPACK_PACKAGE_CONTACT "${TESSERA_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "Tensors on oneDNN and OpenBLAS, autograd, layers, optimizers, data readers, a Trainer driven
by TOML configs, collectives over Gloo, MPI and shared memory, DDP and ZeRO. Contains the
`tessera` command, the static libraries and headers, and the files for find_package(tessera) and
pkg-config.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# dpkg-shlibdeps derives what the binary needs at run time; a program built against the static
# libraries needs their dependencies' development files, as tessera-config.cmake finds them
# (oneDNN's CMake config asks for OpenCL).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libdnnl-dev, ocl-icd-opencl-dev, libopenblas-dev, libgloo-dev, libopenmpi-dev, libssl-dev, zlib1g-dev, libtomlplusplus-dev")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "g++, cmake, pkg-config")
# mpirun for the MPI backend; the data set load_builtin("fashion-mnist:...") reads.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "openmpi-bin, dataset-fashion-mnist")
include(CPack)
