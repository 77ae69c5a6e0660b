#pragma once
// CUDA status codes -> weft::Error. Every CUDA runtime call in weft goes through
// WEFT_CUDA_CHECK, and every kernel launch is followed by WEFT_CUDA_CHECK_LAUNCH, so a failure
// surfaces where it happened, naming the call, instead of at some later unrelated call.
#include <cuda_runtime_api.h>

namespace weft::kernels::cuda {

// Throws weft::Error naming `call` (its source text or a kernel's name), the file and line, and
// CUDA's own name and description of `status`. No usable device (no GPU, driver too old) and
// out-of-memory are ErrorCode::Unavailable, with what to check; anything else is Internal.
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                   int line);

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) throw_cuda_error(status, call, file, line);
}

}  // namespace weft::kernels::cuda

#define WEFT_CUDA_CHECK(call) ::weft::kernels::cuda::check_cuda((call), #call, __FILE__, __LINE__)

// A launch reports a bad configuration (or a missing device) only through cudaGetLastError.
#define WEFT_CUDA_CHECK_LAUNCH(kernel_name)                                                 \
  ::weft::kernels::cuda::check_cuda(cudaGetLastError(), "launch of " kernel_name, __FILE__, \
                                    __LINE__)
