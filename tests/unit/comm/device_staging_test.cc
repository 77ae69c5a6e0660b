// CUDA tensors on a host backend go through DeviceStaging. Here the "device" memory is host
// memory labelled cuda:0 and the staging a stand-in whose copies only happen at wait(), as
// asynchronous copies would: a communicator that used host data before waiting, wrote back
// too early, or skipped the staging would get wrong answers or wrong byte counts. The real
// CUDA staging runs in tests/gpu.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <latch>
#include <vector>

#include "comm/device_staging.h"
#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/inproc_group.h"

namespace weft::testing {
namespace {

using comm::CommOptions;
using comm::Communicator;
using comm::DeviceStaging;

struct CopyCounts {
  std::atomic<size_t> to_host{0}, to_device{0};
};

class DeferredStaging final : public DeviceStaging {
 public:
  explicit DeferredStaging(CopyCounts* counts) : counts_(counts) {}
  std::byte* host(int which, size_t bytes, Deadline deadline) override {
    if (areas_[which].size() < bytes) {
      wait(deadline);
      areas_[which].assign(bytes, std::byte{0xAB});  // garbage until a copy lands
    }
    return areas_[which].data();
  }
  void to_host(std::byte* host, const void* device, size_t bytes) override {
    check_inside_an_area(host, bytes);
    queue_.push_back({host, device, bytes});
    counts_->to_host += bytes;
  }
  void to_device(void* device, const std::byte* host, size_t bytes) override {
    check_inside_an_area(host, bytes);
    queue_.push_back({device, host, bytes});
    counts_->to_device += bytes;
  }
  void wait(Deadline deadline) override {
    // The op's deadline (WEFT_TIMEOUT from its start), never an unbounded one.
    if (deadline > Clock::now() + std::chrono::hours(1)) ADD_FAILURE() << "an unbounded wait";
    for (const Copy& c : queue_) std::memcpy(c.dst, c.src, c.bytes);
    queue_.clear();
  }

 private:
  // A copy that runs off the end of the host area it starts in would overrun pinned memory.
  void check_inside_an_area(const std::byte* host, size_t bytes) const {
    for (const auto& a : areas_)
      if (host >= a.data() && host + bytes <= a.data() + a.size()) return;
    ADD_FAILURE() << "a copy of " << bytes << " bytes runs outside the staging areas";
  }
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  CopyCounts* counts_;
  std::vector<std::byte> areas_[2];
  std::vector<Copy> queue_;
};

// Runs fn on n in-process ranks whose communicators stage "cuda" tensors with DeferredStaging.
void run_staged_group(int n, CommOptions options, std::vector<CopyCounts>& counts,
                      const std::function<void(Communicator&)>& fn) {
  auto hub = std::make_shared<comm::InprocHub>(n);
  run_rank_threads(n, [&](int r) {
    comm::GroupContext ctx;
    ctx.backend = "inproc";
    ctx.make_staging = [&counts, r](int device) {
      EXPECT_EQ(device, 0);
      return std::make_unique<DeferredStaging>(&counts[r]);
    };
    Communicator comm(comm::make_inproc_transport(hub, r), std::move(ctx), options);
    fn(comm);
  });
}

CommOptions small_chunks() {
  CommOptions o;
  o.timeout = std::chrono::seconds(20);
  o.small_bytes = 256;
  o.segment_bytes = 64;
  o.staging_chunk_bytes = 100;  // not a multiple of any element size: chunks with remainders
  return o;
}

TEST(DeviceStaging, EveryCollectiveOnCudaTensorsMatchesTheReference) {
  for (int n : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(n) + " ranks");
    std::vector<CopyCounts> counts(n);
    run_staged_group(n, small_chunks(), counts, [](Communicator& comm) {
      CheckMatrix m;
      m.counts = {0, 1, 7, 301};
      m.dtypes = {DType::f32, DType::bf16, DType::f64, DType::i32};
      m.device = Device::cuda(0);
      for (const auto& f : check_collectives(comm, m)) ADD_FAILURE() << f;
    });
  }
}

// An allreduce reads each element from the device once and writes it back once, whatever the
// chunking, in place or not.
TEST(DeviceStaging, AllreduceCopiesEachElementOnceEachWay) {
  const size_t count = 1001;
  std::vector<CopyCounts> counts(3);
  run_staged_group(3, small_chunks(), counts, [&](Communicator& comm) {
    std::vector<float> in(count), out(count);
    for (size_t i = 0; i < count; i++) in[i] = static_cast<float>(comm.rank() * 1000 + i);
    comm.allreduce(Tensor::flat(in.data(), DType::f32, count, Device::cuda(0)),
                   Tensor::flat(out.data(), DType::f32, count, Device::cuda(0)), ReduceOp::sum)
        .wait();
    for (size_t i = 0; i < count; i++)
      ASSERT_EQ(out[i], static_cast<float>(3000 + 3 * i)) << "element " << i;
    comm.allreduce(Tensor::flat(in.data(), DType::f32, count, Device::cuda(0))).wait();
    ASSERT_EQ(in, out);
  });
  for (auto& c : counts) {
    EXPECT_EQ(c.to_host.load(), 2 * count * sizeof(float));
    EXPECT_EQ(c.to_device.load(), 2 * count * sizeof(float));
  }
}

TEST(DeviceStaging, ChunkedAllreduceOfMismatchedSizesNamesBothTotals) {
  std::vector<CopyCounts> counts(2);
  try {
    run_staged_group(2, small_chunks(), counts, [](Communicator& comm) {
      size_t count = comm.rank() == 0 ? 1000 : 999;
      std::vector<float> data(count);
      comm.allreduce(Tensor::flat(data.data(), DType::f32, count, Device::cuda(0))).wait();
    });
    FAIL() << "expected a mismatch error";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("f32 x 1000"), std::string::npos) << what;
    EXPECT_NE(what.find("f32 x 999"), std::string::npos) << what;
  }
}

// batch_p2p on a host backend stages every message: sends copied out before, receives back after.
TEST(DeviceStaging, BatchP2PStagesEveryMessage) {
  for (int n : {2, 3}) {
    SCOPED_TRACE(std::to_string(n) + " ranks");
    std::vector<CopyCounts> counts(n);
    run_staged_group(n, small_chunks(), counts, [&](Communicator& comm) {
      for (const auto& f : check_batch_p2p(comm, 1000, Device::cuda(0))) ADD_FAILURE() << f;
    });
    for (const auto& c : counts) {
      EXPECT_GE(c.to_host.load(), 2 * 1000 * sizeof(float));
      EXPECT_GE(c.to_device.load(), 2 * 1000 * sizeof(float));
    }
  }
}

// In place, an op's output may be larger than its input (allgather, whose input is one block
// of the output): the staging must not write the output into the input's smaller copy.
TEST(DeviceStaging, InPlaceAllgatherAndReduceScatterStayInsideTheirAreas) {
  const int n = 3;
  const size_t block = 1000;
  std::vector<CopyCounts> counts(n);
  run_staged_group(n, small_chunks(), counts, [&](Communicator& comm) {
    const size_t r = static_cast<size_t>(comm.rank());
    std::vector<float> all(n * block, -1.0f);
    for (size_t i = 0; i < block; i++) all[r * block + i] = static_cast<float>(r * block + i);
    comm.allgather(Tensor::flat(all.data() + r * block, DType::f32, block, Device::cuda(0)),
                   Tensor::flat(all.data(), DType::f32, n * block, Device::cuda(0)))
        .wait();
    for (size_t i = 0; i < all.size(); i++) ASSERT_EQ(all[i], static_cast<float>(i)) << i;
    comm.reduce_scatter(Tensor::flat(all.data(), DType::f32, n * block, Device::cuda(0)),
                        Tensor::flat(all.data() + r * block, DType::f32, block, Device::cuda(0)),
                        ReduceOp::sum)
        .wait();
    for (size_t i = 0; i < block; i++)
      ASSERT_EQ(all[r * block + i], static_cast<float>(n * (r * block + i))) << i;
  });
}

// A device route (backend auto with a GPU per rank) takes every op on CUDA tensors; host tensors
// stay on the communicator. Here the route is itself an in-process group whose staging counts
// its copies, so the test sees which communicator moved which bytes, and that the route is made
// once, at the first collective that needs it, and only when every rank can make one.
struct RoutedGroup {
  int n;
  std::vector<bool> can_route;  // per rank: device_route_here
  std::vector<bool> maker_throws;  // per rank: making the route fails
  std::vector<CopyCounts> main_counts, route_counts;
  std::vector<std::atomic<int>> routes_made;
  std::vector<std::vector<comm::DeviceRouteGroup>> route_groups;  // per rank: what it made
  explicit RoutedGroup(std::vector<bool> can)
      : n(static_cast<int>(can.size())), can_route(std::move(can)), maker_throws(n, false),
        main_counts(n), route_counts(n), routes_made(n), route_groups(n) {}

  void run(const std::function<void(Communicator&)>& fn) {
    auto hub = std::make_shared<comm::InprocHub>(n);
    auto route_hub = std::make_shared<comm::InprocHub>(n);
    run_rank_threads(n, [&](int r) {
      auto staged_by = [r](std::vector<CopyCounts>& counts) {
        return [&counts, r](int) { return std::make_unique<DeferredStaging>(&counts[r]); };
      };
      comm::GroupContext ctx;
      ctx.backend = "inproc";
      ctx.make_staging = staged_by(main_counts);
      ctx.make_transport = [&](const comm::TransportSetup& s) {
        return comm::make_inproc_transport(hub->group(s.group_tag, s.size), s.rank);
      };
      ctx.device_route_here = can_route[r];
      ctx.make_device_route =
          [&, r](const comm::DeviceRouteGroup& group) -> std::unique_ptr<Communicator> {
        if (maker_throws[r]) throw Error(ErrorCode::Unavailable, "no NCCL here after all");
        ++routes_made[r];
        route_groups[r].push_back(group);
        comm::GroupContext route;
        route.backend = "route";
        route.make_staging = staged_by(route_counts);
        // Each group's route meets its own ranks (the world's, or a split group's).
        return std::make_unique<Communicator>(
            comm::make_inproc_transport(route_hub->group(group.group_tag, group.size),
                                        group.rank),
            std::move(route), small_chunks());
      };
      Communicator comm(comm::make_inproc_transport(hub, r), std::move(ctx), small_chunks());
      fn(comm);
    });
  }
};

CheckMatrix route_checks(Device device) {
  CheckMatrix m;
  m.counts = {0, 5, 301};
  m.dtypes = {DType::f32, DType::i64};
  m.device = device;
  return m;
}

TEST(DeviceRoute, CudaTensorsTakeTheRouteAndHostTensorsStay) {
  RoutedGroup g({true, true});
  std::latch checks_done(g.n);
  g.run([&](Communicator& comm) {
    const int r = comm.rank();
    // Point-to-point before any collective made the route: staged on both sides.
    std::vector<float> p2p(8, static_cast<float>(r));
    if (r == 0) comm.send(Tensor::flat(p2p.data(), DType::f32, 8, Device::cuda(0)), 1).wait();
    if (r == 1) comm.recv(Tensor::flat(p2p.data(), DType::f32, 8, Device::cuda(0)), 0).wait();
    EXPECT_EQ(p2p[7], 0.0f);
    EXPECT_EQ(g.routes_made[r].load(), 0) << "a point-to-point op made a route";
    for (const auto& f : check_collectives(comm, route_checks(Device::cpu()))) ADD_FAILURE() << f;
    EXPECT_EQ(g.routes_made[r].load(), 0) << "host tensors made a route";
    const size_t staged_before = g.main_counts[r].to_host.load();

    for (const auto& f : check_collectives(comm, route_checks(Device::cuda(0))))
      ADD_FAILURE() << f;
    EXPECT_EQ(g.main_counts[r].to_host.load(), staged_before)
        << "the communicator staged a CUDA tensor itself";
    EXPECT_GT(g.route_counts[r].to_host.load(), 0u);
    EXPECT_EQ(g.routes_made[r].load(), 1) << "a route per op instead of one";

    // An abort reaches the route: its next op fails instead of waiting for peers.
    checks_done.arrive_and_wait();  // no rank aborts while another still checks
    comm.abort("test over");
    std::vector<float> x(4);
    EXPECT_THROW(comm.allreduce(Tensor::flat(x.data(), DType::f32, 4, Device::cuda(0))).wait(),
                 Error);
  });
}

// batch_p2p on CUDA tensors takes the route once a collective has made it.
TEST(DeviceRoute, BatchP2PTakesTheRouteOnceMade) {
  RoutedGroup g({true, true, true});
  g.run([&](Communicator& comm) {
    const int r = comm.rank();
    std::vector<float> x(4, 1.0f);
    comm.allreduce(Tensor::flat(x.data(), DType::f32, 4, Device::cuda(0))).wait();
    ASSERT_EQ(g.routes_made[r].load(), 1);
    const size_t staged = g.main_counts[r].to_host.load();
    const size_t routed = g.route_counts[r].to_host.load();
    for (const auto& f : check_batch_p2p(comm, 1000, Device::cuda(0))) ADD_FAILURE() << f;
    EXPECT_EQ(g.main_counts[r].to_host.load(), staged) << "the communicator staged the batch";
    EXPECT_GE(g.route_counts[r].to_host.load(), routed + 2 * 1000 * sizeof(float));
  });
}

// A group made by split() routes its CUDA tensors too (it used to stage them through host
// memory): its route is made over the group's own ranks, under the group's tag, at its first
// collective on a CUDA tensor.
TEST(DeviceRoute, ASplitGroupMakesARouteOfItsOwnRanks) {
  RoutedGroup g({true, true, true, true});
  g.run([&](Communicator& comm) {
    const int r = comm.rank();
    auto half = comm.split(r % 2, -r);  // {0, 2} and {1, 3}, each in reverse order
    ASSERT_TRUE(half);
    for (const auto& f : check_collectives(*half, route_checks(Device::cuda(0))))
      ADD_FAILURE() << f;
    ASSERT_EQ(g.routes_made[r].load(), 1);
    const comm::DeviceRouteGroup& made = g.route_groups[r][0];
    EXPECT_EQ(made.size, 2);
    EXPECT_EQ(made.rank, half->rank());
    EXPECT_EQ(made.rank, r < 2 ? 1 : 0);
    EXPECT_NE(made.group_tag, "world");
    EXPECT_EQ(g.main_counts[r].to_host.load(), 0u) << "the split group staged a CUDA tensor";
    EXPECT_GT(g.route_counts[r].to_host.load(), 0u);
  });
}

// One rank without a GPU of its own: nobody makes a route (they would wait for it forever),
// and every rank stages.
TEST(DeviceRoute, NoRankRoutesUnlessEveryRankCan) {
  RoutedGroup g({true, false, true});
  g.run([&](Communicator& comm) {
    for (const auto& f : check_collectives(comm, route_checks(Device::cuda(0))))
      ADD_FAILURE() << f;
    EXPECT_EQ(g.routes_made[comm.rank()].load(), 0);
    EXPECT_GT(g.main_counts[comm.rank()].to_host.load(), 0u);
  });
}

// Every rank could, but one failed to make its route: the others drop theirs and all stage,
// rather than wait in a route that rank will never join.
TEST(DeviceRoute, ARouteOneRankFailedToMakeIsDroppedEverywhere) {
  RoutedGroup g({true, true, true});
  g.maker_throws[1] = true;
  g.run([&](Communicator& comm) {
    for (const auto& f : check_collectives(comm, route_checks(Device::cuda(0))))
      ADD_FAILURE() << f;
    EXPECT_EQ(g.route_counts[comm.rank()].to_host.load(), 0u) << "a dropped route was used";
    EXPECT_GT(g.main_counts[comm.rank()].to_host.load(), 0u);
  });
}

// A transport that moves device memory as it is (nccl-ring): the algorithms work on CUDA
// tensors in place, through the communicator's device BufferOps, and nothing is staged. Here the
// "device" is host memory again: an in-process transport that says it moves device memory, and
// BufferOps that count their calls and work on a scratch area of their own.
class DeviceMemoryTransport final : public comm::Transport {
 public:
  explicit DeviceMemoryTransport(std::unique_ptr<comm::Transport> inner) : t_(std::move(inner)) {}
  int rank() const override { return t_->rank(); }
  int size() const override { return t_->size(); }
  const char* name() const override { return "device-memory"; }
  bool moves_device_memory() const override { return true; }
  Request isend(int peer, const void* data, size_t bytes, const comm::Fingerprint& fp) override {
    return t_->isend(peer, data, bytes, fp);
  }
  Request irecv(int peer, void* data, size_t bytes, const comm::Fingerprint& fp) override {
    return t_->irecv(peer, data, bytes, fp);
  }
  bool test(Request r) override { return t_->test(r); }
  void wait_for_progress(const LazyDeadline& until) override { t_->wait_for_progress(until); }
  void abort(const std::string& reason) override { t_->abort(reason); }

 private:
  std::unique_ptr<comm::Transport> t_;
};

class CountingDeviceOps final : public comm::DeviceBufferOps {
 public:
  CountingDeviceOps(size_t scratch_bytes, std::atomic<size_t>* calls)
      : scratch_(scratch_bytes), calls_(calls) {}
  void copy(void* dst, const void* src, size_t bytes) override {
    ++*calls_;
    comm::host_buffer_ops().copy(dst, src, bytes);
  }
  void reduce(void* out, const void* a, const void* b, size_t count, DType dtype,
              ReduceOp op) override {
    ++*calls_;
    comm::host_buffer_ops().reduce(out, a, b, count, dtype, op);
  }
  void scale_down(void* data, size_t count, DType dtype, int divisor) override {
    ++*calls_;
    comm::host_buffer_ops().scale_down(data, count, dtype, divisor);
  }
  void* scratch() override { return scratch_.data(); }
  size_t scratch_bytes() const override { return scratch_.size(); }
  void set_deadline(Deadline deadline) override {
    // Every op hands over its own deadline (WEFT_TIMEOUT from its start), never an unbounded one.
    if (deadline > Clock::now() + std::chrono::hours(1)) ADD_FAILURE() << "an unbounded deadline";
  }

 private:
  std::vector<std::byte> scratch_;
  std::atomic<size_t>* calls_;
};

TEST(DeviceMemoryTransport, AlgorithmsWorkOnCudaTensorsInPlaceThroughDeviceOps) {
  const int n = 3;
  std::vector<CopyCounts> staged(n);
  std::vector<std::atomic<size_t>> device_calls(n);
  auto hub = std::make_shared<comm::InprocHub>(n);
  run_rank_threads(n, [&](int r) {
    comm::GroupContext ctx;
    ctx.backend = "device-memory";
    ctx.make_staging = [&staged, r](int) { return std::make_unique<DeferredStaging>(&staged[r]); };
    ctx.make_device_ops = [&device_calls, r](int device, size_t scratch_bytes) {
      EXPECT_EQ(device, 0);
      return std::make_unique<CountingDeviceOps>(scratch_bytes, &device_calls[r]);
    };
    Communicator comm(std::make_unique<DeviceMemoryTransport>(comm::make_inproc_transport(hub, r)),
                      std::move(ctx), small_chunks());
    CheckMatrix device = route_checks(Device::cuda(0));
    for (const auto& f : check_collectives(comm, device)) ADD_FAILURE() << f;
    EXPECT_GT(device_calls[r].load(), 0u) << "the algorithms did not use the device ops";
    EXPECT_EQ(staged[r].to_host.load(), 0u) << "a CUDA tensor was staged";
    // Host tensors on the same transport use the host's ops.
    const size_t before = device_calls[r].load();
    for (const auto& f : check_collectives(comm, route_checks(Device::cpu()))) ADD_FAILURE() << f;
    EXPECT_EQ(device_calls[r].load(), before) << "host tensors went through the device ops";
  });
}

// Without CUDA in the build, a CUDA tensor on a host backend is a clear error, not a crash.
TEST(DeviceStaging, BuildWithoutCudaSaysSo) {
#if defined(WEFT_TEST_BUILT_WITH_CUDA)
  GTEST_SKIP() << "built with CUDA: tests/gpu covers the real staging";
#else
  run_inproc_group(2, CommOptions{}, [](Communicator& comm) {
    float x = 1;
    try {
      comm.allreduce(Tensor::flat(&x, DType::f32, 1, Device::cuda(0))).wait();
      ADD_FAILURE() << "expected Unavailable";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Unavailable);
      EXPECT_NE(std::string(e.what()).find("built without CUDA"), std::string::npos) << e.what();
    }
  });
#endif
}

}  // namespace
}  // namespace weft::testing
