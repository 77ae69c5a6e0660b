#pragma once
// DirectAccess: what a transport whose ranks share a node's memory offers beyond moving bytes
// (shm): host memory that every rank of the group can map (registered memory), and collectives
// that read and write the peers' registered buffers in place instead of copying through FIFOs.
// A transport without it (tcp, mpi, nccl) returns null from Transport::direct_access(), and its
// communicator hands out plain memory that always takes the transport's path.
//
// Which path an op takes is agreed per op, like its fingerprint: each rank says whether its
// buffer is registered, and unless every rank's is, all take the transport's path.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "comm/fingerprint.h"
#include "runtime/clock.h"

namespace weft::comm {

// One allocation in registered memory, mapped by its owner. Ops that use it hold a reference,
// so the mapping outlives a buffer dropped while an op still runs on it.
class RegisteredSegment {
 public:
  virtual ~RegisteredSegment() = default;
  virtual std::byte* data() const = 0;
  virtual size_t bytes() const = 0;
  // Unique among this rank's segments of the group for the group's lifetime.
  virtual uint64_t id() const = 0;
  // Whether every local peer received it; one that did not (its channel was full) cannot be
  // used in place, and ops on it take the transport's path.
  virtual bool shared() const = 0;
};

// An op's buffer as the direct algorithms see it: where it lives in registered memory (null
// segment: not registered, so this op takes the transport's path on every rank).
struct DirectBuffer {
  const RegisteredSegment* segment = nullptr;
  size_t offset = 0;  // of the op's data within the segment
};

// What a rank does in a direct op (comm/algorithms/direct_collectives.cc), given every rank's
// buffer mapped here.
using DirectWork = std::function<void(std::span<std::byte* const> bases)>;

class DirectAccess {
 public:
  virtual ~DirectAccess() = default;

  // `bytes` of zeroed registered memory. Throws Unavailable when the node is out of memory.
  virtual std::shared_ptr<RegisteredSegment> allocate(size_t bytes) = 0;
  // The segment that holds [data, data + bytes), or null.
  virtual std::shared_ptr<RegisteredSegment> find(const void* data, size_t bytes) = 0;

  // One direct op. Every rank publishes `buffer`, its `bytes` at `data` (registered, or an
  // empty DirectBuffer when it is not); once every rank has arrived and every rank's buffer is
  // mapped here, `work(bases)` runs with bases[r] rank r's buffer (bases[rank] = data), and this
  // rank returns only when every rank's work is done, so no peer still reads or writes its
  // buffer. Returns false, having run nothing, when some rank's buffer is not registered: then
  // every rank returned false and runs the transport's algorithm. The ranks' fingerprints must
  // agree (InvalidArgument naming both otherwise); fails like the transport (Aborted, PeerLost
  // naming the rank, Timeout at `deadline`).
  virtual bool run(const Fingerprint& fp, DirectBuffer buffer, void* data, size_t bytes,
                   const DirectWork& work, const LazyDeadline& deadline) = 0;
};

}  // namespace weft::comm
