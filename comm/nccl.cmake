# NCCL: the native NCCL backend (backend nccl) and the nccl transport (backend nccl-ring), built
# into weft_comm when CUDA is built (weft_kernels_cuda exists) and NCCL is found: in the CUDA
# toolkit, or under NCCL_ROOT (CMake variable or environment). Otherwise nccl_unavailable.cc
# stands in, and those backends fail with a message saying why. Included from
# comm/CMakeLists.txt after weft_comm is defined.
set(WEFT_NCCL_FOUND OFF)
if(WEFT_HAVE_CUDA)
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY nccl
    HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES lib lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(WEFT_NCCL_FOUND ON)
  endif()
endif()
# tests/gpu builds the NCCL tests only where this is ON.
set_property(GLOBAL PROPERTY WEFT_NCCL_FOUND ${WEFT_NCCL_FOUND})

if(WEFT_NCCL_FOUND)
  target_sources(weft_comm PRIVATE
    store_abort_channel.cc
    nccl_comm.cc
    native_nccl.cc
    transport_nccl.cc)
  target_include_directories(weft_comm PRIVATE ${NCCL_INCLUDE_DIR})
  # PRIVATE: no header of weft_comm's interface includes nccl.h or the CUDA runtime.
  target_link_libraries(weft_comm PRIVATE weft_runtime_cuda weft_kernels_cuda ${NCCL_LIBRARY})
  message(STATUS "weft comm: NCCL found (${NCCL_LIBRARY}), backends nccl and nccl-ring are built")
else()
  target_sources(weft_comm PRIVATE nccl_unavailable.cc)
  if(WEFT_HAVE_CUDA)
    message(STATUS "weft comm: NCCL not found (set NCCL_ROOT), building without backends nccl "
                   "and nccl-ring")
  endif()
endif()
