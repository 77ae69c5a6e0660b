#pragma once
// The TCP transport: ranks on any hosts, one full-duplex connection per pair of ranks, made
// through the store (each rank publishes where it listens) and proven with the job's token.
#include <memory>

#include "comm/transport_setup.h"

namespace weft::comm {

std::unique_ptr<Transport> make_tcp_transport(const TransportSetup& setup);

}  // namespace weft::comm
