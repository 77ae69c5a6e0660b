#pragma once
// Runs every collective on `comm` over the given dtypes, ops and sizes and checks each result
// against a sequential reference (typed_values.h). Used by the in-process tests and by the
// multi-process tests of every transport, so all backends face the same matrix.
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace weft::testing {

struct CheckMatrix {
  std::vector<size_t> counts = {0, 1, 7, 1001};
  std::vector<DType> dtypes = {std::begin(kAllDTypes), std::end(kAllDTypes)};
  std::vector<ReduceOp> ops = {std::begin(kAllReduceOps), std::end(kAllReduceOps)};
  // What the tensors claim to live on: host buffers labelled cuda:0 test the staging of a host
  // backend with a stand-in DeviceStaging that copies host memory.
  Device device = Device::cpu();
  // Every buffer from comm.alloc() (registered memory: the direct path over shm), host only.
  bool registered = false;
};

// Returns a list of mismatches ("allreduce f32 sum count=7: element 3 is 2, expected 4");
// empty when everything matched. Every rank must call it with the same matrix.
std::vector<std::string> check_collectives(comm::Communicator& comm, const CheckMatrix& m);

// Only allreduce (in place and out of place), for the big-size runs.
std::vector<std::string> check_allreduce(comm::Communicator& comm, size_t count, DType dtype,
                                         ReduceOp op, Device device = Device::cpu());

// Allreduce on memory from comm.alloc() (registered over shm): out of place from plain memory
// into a registered buffer, then in place on the registered input, each checked against the
// reference. `plain` passes plain memory instead (the rank that opts its peers out of the
// direct path). Returns mismatches, as check_collectives.
std::vector<std::string> check_registered_allreduce(comm::Communicator& comm, size_t count,
                                                    DType dtype, ReduceOp op, bool plain = false);

// batch_p2p around the ring: every rank sends `count` f32 to each neighbour and receives from
// each, all in one batch (at 16 MiB a send-then-recv on every rank would deadlock wherever a
// large send waits for its receive: tcp, shm, mpi); then small send_recv calls paired with the
// neighbours' plain send and recv, so the per-peer order is seen to carry across the two.
std::vector<std::string> check_batch_p2p(comm::Communicator& comm, size_t count,
                                         Device device = Device::cpu());

}  // namespace weft::testing
