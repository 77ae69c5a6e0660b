// init_from_env: from "a process started by some launcher" to a world Communicator.
#include "comm/backend_registry.h"
#include "comm/communicator.h"
#include "comm/group_context.h"
#include "comm/mpi/backends.h"
#include "comm/mpi/mpi_rendezvous.h"
#include "comm/rendezvous/job_token.h"
#include "comm/native_backend.h"
#include "comm/node_layout.h"
#include "comm/nccl/backends.h"
#include "comm/rendezvous/store_memory.h"
#include "comm/rendezvous/coordinator.h"
#include "comm/transport/inproc/transport_inproc.h"
#include "comm/transport/shm/transport_shm.h"
#include "comm/transport/tcp/transport_tcp.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

// `source` names where `requested` came from (--backend or WEFT_BACKEND), for the error.
std::string choose_backend(const std::string& requested, const char* source, const World& w) {
  find_backend(requested, source);  // InvalidArgument listing every backend when unknown
  if (requested == "auto") return w.local_size == w.size ? "shm" : "tcp";
  if (requested == "shm" && w.local_size != w.size)
    throw Error(ErrorCode::InvalidArgument,
                "backend shm needs every rank on one node, but this job has " +
                    std::to_string(w.local_size) + " of " + std::to_string(w.size) +
                    " ranks here; use --backend tcp");
  return requested;
}

// mpirun gives every rank its Open MPI variables but no store: then the ranks meet over MPI.
bool meets_through_mpi(const World& w) {
  return w.launcher == "openmpi" && env::get("WEFT_STORE_ADDR").empty() &&
         (w.master_addr.empty() || w.master_port == 0);
}

// Where the rendezvous store is: weftrun names it; under torchrun rank 0 serves one on
// MASTER_PORT + 1 (torchrun's own store already holds MASTER_PORT), on the address MASTER_ADDR
// names, guarded by the token master_store_access finds (comm/rendezvous/job_token.h); under
// mpirun rank 0 serves one and announces it over MPI.
void connect_store(const World& w, GroupContext& ctx, Deadline deadline) {
  std::string addr = env::get("WEFT_STORE_ADDR");
  std::shared_ptr<CoordinatorStore> store;
  if (!addr.empty()) {
    store = CoordinatorStore::connect(addr, ctx.token, deadline);
  } else if (!w.master_addr.empty() && w.master_port > 0) {
    MasterStoreAccess access = master_store_access(w);
    ctx.token = access.token;
    if (w.rank == 0)
      ctx.keepalive =
          std::make_shared<Coordinator>(access.bind_host, w.master_port + 1, ctx.token);
    std::string origin = access.secret_path.empty()
                             ? "WEFT_TOKEN, which every rank must be given the same"
                             : "this user's secret in " + access.secret_path +
                                   ": every rank of a job on one machine runs as one user, or "
                                   "every rank is given the same WEFT_TOKEN";
    store = CoordinatorStore::connect(w.master_addr, w.master_port + 1, ctx.token, deadline, origin);
    store->served_by(0);
  } else if (meets_through_mpi(w)) {
    StoreRendezvous met = rendezvous_through_mpi(w, deadline);
    ctx.store = std::move(met.store);
    ctx.host = met.host;
    ctx.job_id = met.job_id;
    ctx.token = met.token;
    ctx.keepalive = std::move(met.keepalive);
    return;
  } else {
    throw Error(ErrorCode::InvalidArgument,
                "rank " + std::to_string(w.rank) + " of " + std::to_string(w.size) + " (from " +
                    w.launcher +
                    ") has no rendezvous store: launch with weftrun or mpirun, or set "
                    "WEFT_STORE_ADDR (host:port of a weft store), or MASTER_ADDR and MASTER_PORT");
  }
  // From here on this rank's death (its connection closing before it leaves) stops every peer
  // still setting up, naming it, instead of leaving them to WEFT_TIMEOUT.
  store->join_as(w.rank, w.size);
  ctx.host = store->local_host();
  ctx.store = std::move(store);
}

// Backend auto: CUDA tensors go to native NCCL over the same ranks when every rank has a GPU of
// its own (this one: as many visible GPUs as ranks on this node), set up at the first
// collective given one (see GroupContext::make_device_route). A group split from the world
// makes its own, over its ranks, meeting under its own tag.
void route_cuda_tensors_to_nccl(const World& w, GroupContext& ctx, const CommOptions& options) {
  ctx.device_route_here = nccl_visible_gpus() >= w.local_size;
  std::shared_ptr<Store> store = ctx.store ? ctx.store : std::make_shared<MemoryStore>();
  GroupContext route = ctx;
  route.backend = "nccl";
  route.make_transport = nullptr;
  route.store = store;
  ctx.make_device_route = [w, route, options](const DeviceRouteGroup& group) {
    World member = w;  // this process, as a rank of the group (its GPU stays cuda:local_rank)
    member.rank = group.rank;
    member.size = group.size;
    GroupContext context = route;
    context.group_tag = group.group_tag + ".cuda";
    auto native = make_native_nccl_backend(
        member, std::make_shared<PrefixStore>(context.group_tag, context.store), w.local_rank,
        deadline_after(options.timeout));
    WEFT_INFO("CUDA tensors of group " << group.group_tag << " go over native NCCL on cuda:"
                                       << w.local_rank);
    return std::make_unique<Communicator>(std::move(native), std::move(context), options);
  };
}

}  // namespace

std::unique_ptr<Communicator> init_from_env(const std::string& backend_flag) {
  World w = World::from_env();
  log::set_rank(w.rank);
  CommOptions options = CommOptions::from_env();
  const std::string requested = backend_flag.empty() ? env::get("WEFT_BACKEND") : backend_flag;
  std::string backend =
      choose_backend(requested, backend_flag.empty() ? "WEFT_BACKEND" : "--backend", w);
  GroupContext ctx;
  ctx.backend = backend;
  ctx.job_id = w.job_id;
  ctx.token = env::get("WEFT_TOKEN");
  Deadline deadline = deadline_after(options.timeout);

  // MPI's ranks meet inside MPI: no store.
  if (backend == "mpi") {
    auto native = make_native_mpi_backend(w, deadline);
    WEFT_INFO("connected " << w.describe() << " over native MPI");
    return std::make_unique<Communicator>(std::move(native), std::move(ctx), options);
  }

  // NCCL: one GPU per local rank; NCCL's unique id goes through the store.
  // A lone rank started without any launcher needs no store server: an in-process one serves.
  const bool alone = w.size == 1 && env::get("WEFT_STORE_ADDR").empty();
  if (backend == "nccl") {
    if (alone)
      ctx.store = std::make_shared<MemoryStore>();  // a lone rank needs no launcher
    else
      connect_store(w, ctx, deadline);
    auto group_store = std::make_shared<PrefixStore>(ctx.group_tag, ctx.store);
    auto native = make_native_nccl_backend(w, group_store, w.local_rank, deadline);
    WEFT_INFO("connected " << w.describe() << " over native NCCL on cuda:" << w.local_rank);
    return std::make_unique<Communicator>(std::move(native), std::move(ctx), options);
  }

  TransportSetup setup;
  setup.rank = w.rank;
  setup.size = w.size;
  setup.group_tag = ctx.group_tag;
  setup.deadline = deadline;
  if (backend == "mpi-ring") {
    ctx.make_transport = [](const TransportSetup& s) { return make_mpi_transport(s); };
    auto transport = make_mpi_transport(setup);
    WEFT_INFO("connected " << w.describe() << " over mpi-ring");
    return std::make_unique<Communicator>(std::move(transport), std::move(ctx), options);
  }

  if (alone && backend != "nccl-ring") {
    // One rank moves no bytes: an in-process group of one needs no store or sockets.
    ctx.backend = "inproc";
    if (requested == "auto") route_cuda_tensors_to_nccl(w, ctx, options);
    auto hub = std::make_shared<InprocHub>(1);
    ctx.make_transport = [hub](const TransportSetup& s) {
      return make_inproc_transport(hub->group(s.group_tag, s.size), s.rank);
    };
    return std::make_unique<Communicator>(make_inproc_transport(hub, 0), std::move(ctx), options);
  }

  if (alone)
    ctx.store = std::make_shared<MemoryStore>();  // nccl-ring on one GPU, no launcher
  else
    connect_store(w, ctx, deadline);
  if (backend == "nccl-ring") {
    const int device = w.local_rank;
    ctx.make_transport = [device](const TransportSetup& s) {
      return make_nccl_transport(s, device);
    };
  } else {
    ctx.make_transport = backend == "tcp" ? make_tcp_transport : make_shm_transport;
  }
  // Ranks on several nodes: each node's ranks also meet over shared memory, and allreduces go
  // inside each node, then across the nodes (comm/hierarchy.h). Every rank over tcp gathers the
  // node keys (one small allgather at set-up), whatever its own launcher variables say: a rank
  // that decided alone to skip it would pair its next collective with its peers' gather. The
  // communicator learns from the keys which ranks share a node.
  if (backend == "tcp") {
    ctx.make_node_transport = make_shm_transport;
    ctx.node_key = this_node_key(w);
  }
  auto store = std::make_shared<PrefixStore>(ctx.group_tag, ctx.store);
  setup.store = store.get();
  setup.shared_store = store;
  setup.job_id = ctx.job_id;
  setup.token = ctx.token;
  setup.host = ctx.host;
  auto transport = ctx.make_transport(setup);
  if (requested == "auto") route_cuda_tensors_to_nccl(w, ctx, options);
  WEFT_INFO("connected " << w.describe() << " over " << backend);
  return std::make_unique<Communicator>(std::move(transport), std::move(ctx), options);
}

}  // namespace weft::comm
