// pointer_device without CUDA: every pointer is host memory.
#include "comm/pointer_device.h"

namespace weft::comm {

Device pointer_device(const void*) { return Device::cpu(); }

}  // namespace weft::comm
