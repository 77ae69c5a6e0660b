// Stand-in for the CUDA staging when weft is built without CUDA: a CUDA tensor cannot exist
// then, except one made by hand around a foreign pointer; say so instead of touching it.
#include "comm/device_staging.h"
#include "runtime/error.h"

namespace weft::comm {

std::unique_ptr<DeviceStaging> make_cuda_staging(int cuda_device) {
  throw Error(ErrorCode::Unavailable,
              "a tensor on cuda:" + std::to_string(cuda_device) +
                  " was passed to a host backend, but this weft was built without CUDA (no nvcc "
                  "or WEFT_WITH_CUDA=OFF) and cannot copy it; rebuild with CUDA or pass a cpu "
                  "tensor");
}

}  // namespace weft::comm
