// make_cuda_buffer_ops when weft is built without CUDA: no transport then moves device memory,
// so only a hand-made tensor around a foreign pointer could get here; say so.
#include "comm/buffer_ops.h"
#include "runtime/error.h"

namespace weft::comm {

std::unique_ptr<DeviceBufferOps> make_cuda_buffer_ops(int cuda_device, size_t) {
  throw Error(ErrorCode::Unavailable, "collective work on cuda:" + std::to_string(cuda_device) +
                                          " needs CUDA, and this weft was built without it");
}

}  // namespace weft::comm
