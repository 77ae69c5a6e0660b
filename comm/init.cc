// init_from_env: from "a process started by some launcher" to a world Communicator.
#include "comm/communicator.h"
#include "comm/store_tcp.h"
#include "comm/transport_inproc.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/world.h"

namespace weft::comm {
namespace {

std::string choose_backend(const std::string& requested, const World& w) {
  if (requested != "auto" && requested != "tcp" && requested != "shm")
    throw Error(ErrorCode::InvalidArgument,
                "unknown backend '" + requested + "': use auto, tcp or shm");
  if (requested == "auto") return w.local_size == w.size ? "shm" : "tcp";
  if (requested == "shm" && w.local_size != w.size)
    throw Error(ErrorCode::InvalidArgument,
                "backend shm needs every rank on one node, but this job has " +
                    std::to_string(w.local_size) + " of " + std::to_string(w.size) +
                    " ranks here; use --backend tcp");
  return requested;
}

// Where the rendezvous store is: weftrun names it; under torchrun rank 0 serves one on
// MASTER_PORT + 1 (torchrun's own store already holds MASTER_PORT).
std::shared_ptr<TcpStore> connect_store(const World& w, const std::string& token,
                                        std::shared_ptr<void>& keepalive, Deadline deadline) {
  std::string addr = env::get("WEFT_STORE_ADDR");
  if (!addr.empty()) return TcpStore::connect(addr, token, deadline);
  if (!w.master_addr.empty() && w.master_port > 0) {
    if (w.rank == 0)
      keepalive = std::make_shared<TcpStoreServer>("0.0.0.0", w.master_port + 1, token);
    return TcpStore::connect(w.master_addr, w.master_port + 1, token, deadline);
  }
  throw Error(ErrorCode::InvalidArgument,
              "rank " + std::to_string(w.rank) + " of " + std::to_string(w.size) + " (from " +
                  w.launcher +
                  ") has no rendezvous store: launch with weftrun, or set WEFT_STORE_ADDR "
                  "(host:port of a weft store), or MASTER_ADDR and MASTER_PORT");
}

}  // namespace

std::unique_ptr<Communicator> init_from_env(const std::string& backend_flag) {
  World w = World::from_env();
  log::set_rank(w.rank);
  CommOptions options = CommOptions::from_env();
  std::string backend =
      choose_backend(backend_flag.empty() ? env::get("WEFT_BACKEND") : backend_flag, w);
  Communicator::Context ctx;
  ctx.job_id = w.job_id;
  ctx.token = env::get("WEFT_TOKEN");
  Deadline deadline = deadline_after(options.timeout);

  if (w.size == 1 && env::get("WEFT_STORE_ADDR").empty()) {
    // One rank moves no bytes: an in-process group of one needs no store or sockets.
    auto hub = std::make_shared<InprocHub>(1);
    ctx.backend = backend;
    ctx.make_transport = [hub](const TransportSetup& s) {
      return make_inproc_transport(hub->group(s.group_tag, s.size), s.rank);
    };
    return std::make_unique<Communicator>(make_inproc_transport(hub, 0), std::move(ctx), options);
  }

  auto tcp_store = connect_store(w, ctx.token, ctx.keepalive, deadline);
  ctx.host = tcp_store->local_host();
  ctx.store = tcp_store;
  ctx.backend = backend;
  ctx.make_transport = backend == "tcp" ? make_tcp_transport : make_shm_transport;
  auto store = std::make_shared<PrefixStore>(ctx.group_tag, ctx.store);
  TransportSetup setup;
  setup.store = store.get();
  setup.rank = w.rank;
  setup.size = w.size;
  setup.job_id = w.job_id;
  setup.token = ctx.token;
  setup.group_tag = ctx.group_tag;
  setup.host = ctx.host;
  setup.deadline = deadline;
  auto transport = ctx.make_transport(setup);
  WEFT_INFO("connected " << w.describe() << " over " << backend);
  return std::make_unique<Communicator>(std::move(transport), std::move(ctx), options);
}

}  // namespace weft::comm
