#pragma once
// Which device a raw pointer's memory is on, for APIs that take bare pointers (the C API):
// a GPU when CUDA says the pointer is device or managed memory there, else the host. Without
// CUDA, always the host.
#include "runtime/tensor.h"

namespace weft::comm {

Device pointer_device(const void* p);

}  // namespace weft::comm
