# The C++ kernel sources, listed once for both CMake targets that compile them: the static
# library under the Python extension (top-level CMakeLists.txt) and the DALI operator plugin
# (dali_ops/CMakeLists.txt, which gets this folder as SLIPSTREAM_CSRC_DIR). Installed with the
# kernels into slipstream/_native_src/csrc, so an installed plugin build finds it too.
set(SLIPSTREAM_KERNEL_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/jpeg_decoder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/resize.cpp
  ${CMAKE_CURRENT_LIST_DIR}/decode_crop.cpp
  ${CMAKE_CURRENT_LIST_DIR}/yuv420.cpp
  ${CMAKE_CURRENT_LIST_DIR}/batch.cpp)
