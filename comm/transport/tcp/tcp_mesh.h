#pragma once
// The TCP transport's set-up: the mesh of connections, one per pair of ranks.
//
// Set-up: every rank listens on a free port and publishes "tcp/addr/<rank>" in the store; rank i
// connects to every lower rank and accepts every higher one. Both ends of a connection present
// a hello (magic, version, job, token, group, size, rank); anything else (a stranger, another
// job, garbage) is refused, logged and closed while set-up goes on. While it waits for a peer
// to answer or call, a rank asks the store every kMemberCheck whether the job lost a rank
// (Store::check_members), so a peer that died stops it with PeerLost, not at its deadline.
#include <vector>

#include "comm/transport_setup.h"
#include "runtime/unique_fd.h"

namespace weft::comm {

// Connects rank setup.rank to every other rank of the group, through setup.store; returns one
// connected, non-blocking socket per peer (index = rank; none for this rank). Throws PeerLost
// naming a rank the job lost meanwhile, Timeout at setup.deadline.
std::vector<UniqueFd> connect_mesh(const TransportSetup& setup);

// Bytes of each socket's send and receive buffers.
inline constexpr int kSocketBufferBytes = 4 << 20;

}  // namespace weft::comm
