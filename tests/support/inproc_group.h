#pragma once
// Runs one function per rank on n threads, each with its own Communicator over one in-process
// hub: the fastest way to exercise every algorithm without processes or sockets.
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/group_context.h"
#include "comm/transport/inproc/transport_inproc.h"

namespace weft::testing {

inline std::unique_ptr<comm::Communicator> make_inproc_comm(std::shared_ptr<comm::InprocHub> hub,
                                                            int rank, comm::CommOptions options) {
  comm::GroupContext ctx;
  ctx.backend = "inproc";
  ctx.make_transport = [hub](const comm::TransportSetup& s) {
    return comm::make_inproc_transport(hub->group(s.group_tag, s.size), s.rank);
  };
  return std::make_unique<comm::Communicator>(comm::make_inproc_transport(hub, rank),
                                              std::move(ctx), options);
}

// Runs fn(rank) on n threads; an exception on any of them is rethrown here after all end.
inline void run_rank_threads(int n, const std::function<void(int)>& fn) {
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; r++)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// fn runs on every rank, each with its own communicator over one in-process hub.
inline void run_inproc_group(int n, comm::CommOptions options,
                             const std::function<void(comm::Communicator&)>& fn) {
  auto hub = std::make_shared<comm::InprocHub>(n);
  run_rank_threads(n, [&](int r) {
    auto comm = make_inproc_comm(hub, r, options);
    fn(*comm);
  });
}

}  // namespace weft::testing
