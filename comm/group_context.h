#pragma once
// GroupContext: what a communicator was built from, and what split() needs to build sub-groups
// like it: the job's store, the backend, how to make a sub-group's transport, the job's id and
// token, and how CUDA tensors are handled. Internal to comm/ and to code that builds its own
// groups (tests, embedders); programs that only call collectives see comm/communicator.h.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "comm/buffer_ops.h"
#include "comm/communicator.h"
#include "comm/device_staging.h"
#include "comm/native_backend.h"
#include "comm/rendezvous/store.h"
#include "comm/transport.h"
#include "comm/transport_setup.h"

namespace weft::comm {

// The group a device route is made for: this rank's place in it, and its tag (the route meets
// its peers under the tag's own corner of the store).
struct DeviceRouteGroup {
  int rank;
  int size;
  std::string group_tag;
};

// Builds a group's transport (tcp, shm, ...).
using MakeTransport = std::function<std::unique_ptr<Transport>(const TransportSetup&)>;

// What split() needs to build sub-groups like this one.
struct GroupContext {
  // e.g. the store server when this rank hosts it. Declared before `store`, so destroyed after
  // it: this rank leaves the store (CoordinatorStore::join_as) before its server stops.
  std::shared_ptr<void> keepalive;
  std::shared_ptr<Store> store;  // the job's store; each group works under its own prefix
  std::string backend;           // "tcp", "shm", "mpi-ring", "mpi", "inproc": messages, benchmarks
  // Builds a sub-group's transport (unused by a native backend, which splits itself).
  MakeTransport make_transport;
  std::string job_id;
  std::string token;
  std::string group_tag = "world";
  std::string host = "127.0.0.1";  // this host as the store sees it (tcp listens there)
  // How a host backend copies CUDA tensors (tests substitute their own).
  MakeDeviceStaging make_staging = make_cuda_staging;
  // How the algorithms work on CUDA tensors in place, over a transport that moves device
  // memory (nccl-ring; tests substitute their own).
  MakeDeviceBufferOps make_device_ops = make_cuda_buffer_ops;
  // Backend auto: builds the communicator that takes this group's CUDA tensors as they are
  // (native NCCL over the same ranks: `group` says which). At the first collective given a CUDA
  // tensor, which every rank reaches at the same point, the ranks agree (an allreduce) whether
  // every one of them can (device_route_here: a GPU of its own); if so each makes its route,
  // else all stage their CUDA tensors (see comm/communicator.h) from then on; likewise, with a
  // warning, if any rank fails to make its route. Point-to-point ops stage until then. Unset:
  // always staged. Sub-groups from split() inherit it and make their own route at their own
  // first collective on a CUDA tensor, over their own ranks.
  std::function<std::unique_ptr<Communicator>(const DeviceRouteGroup& group)> make_device_route;
  bool device_route_here = false;
  // Across nodes (tcp between hosts): how to connect the ranks of one node (shm), and this
  // rank's node key (comm/node_layout.h). Set, a communicator gathers its ranks' keys when it is
  // made and, when it spans several nodes and some node holds several of its ranks, runs its
  // allreduces hierarchically (comm/hierarchy.h). Sub-groups from split() inherit it.
  MakeTransport make_node_transport;
  uint64_t node_key = 0;
};

}  // namespace weft::comm
