#pragma once
// The shared-memory transport: ranks on one node, a FIFO per ordered pair of ranks in one
// /dev/shm segment per rank, found through the store.
#include <memory>

#include "comm/transport_setup.h"

namespace weft::comm {

std::unique_ptr<Transport> make_shm_transport(const TransportSetup& setup);

}  // namespace weft::comm
