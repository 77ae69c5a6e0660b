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
  std::byte* host(int which, size_t bytes) override {
    if (areas_[which].size() < bytes) {
      wait();
      areas_[which].assign(bytes, std::byte{0xAB});  // garbage until a copy lands
    }
    return areas_[which].data();
  }
  void to_host(std::byte* host, const void* device, size_t bytes) override {
    queue_.push_back({host, device, bytes});
    counts_->to_host += bytes;
  }
  void to_device(void* device, const std::byte* host, size_t bytes) override {
    queue_.push_back({device, host, bytes});
    counts_->to_device += bytes;
  }
  void wait() override {
    for (const Copy& c : queue_) std::memcpy(c.dst, c.src, c.bytes);
    queue_.clear();
  }

 private:
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
    Communicator::Context ctx;
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

// A device route (backend auto with a GPU per rank) takes every op on CUDA tensors; host tensors
// stay on the communicator. Here the route is itself an in-process group whose staging counts
// its copies, so the test sees which communicator moved which bytes, and that the route is made
// once, on the first op that needs it.
TEST(DeviceRoute, CudaTensorsTakeTheRouteAndHostTensorsStay) {
  const int n = 2;
  std::vector<CopyCounts> main_counts(n), route_counts(n);
  std::vector<std::atomic<int>> routes_made(n);
  auto hub = std::make_shared<comm::InprocHub>(n);
  auto route_hub = std::make_shared<comm::InprocHub>(n);
  std::latch checks_done(n);
  run_rank_threads(n, [&](int r) {
    auto staged_by = [r](std::vector<CopyCounts>& counts) {
      return [&counts, r](int) { return std::make_unique<DeferredStaging>(&counts[r]); };
    };
    Communicator::Context ctx;
    ctx.backend = "inproc";
    ctx.make_staging = staged_by(main_counts);
    ctx.make_device_route = [&, r] {
      ++routes_made[r];
      Communicator::Context route;
      route.backend = "route";
      route.make_staging = staged_by(route_counts);
      return std::make_unique<Communicator>(comm::make_inproc_transport(route_hub, r),
                                            std::move(route), small_chunks());
    };
    Communicator comm(comm::make_inproc_transport(hub, r), std::move(ctx), small_chunks());

    CheckMatrix host;
    host.counts = {0, 5, 301};
    host.dtypes = {DType::f32, DType::i64};
    for (const auto& f : check_collectives(comm, host)) ADD_FAILURE() << f;
    EXPECT_EQ(routes_made[r].load(), 0) << "host tensors made a route";

    CheckMatrix device = host;
    device.device = Device::cuda(0);
    for (const auto& f : check_collectives(comm, device)) ADD_FAILURE() << f;
    EXPECT_EQ(main_counts[r].to_host.load(), 0u) << "the communicator staged a CUDA tensor itself";
    EXPECT_GT(route_counts[r].to_host.load(), 0u);

    // An abort reaches the route: its next op fails instead of waiting for peers.
    checks_done.arrive_and_wait();  // no rank aborts while another still checks
    EXPECT_EQ(routes_made[r].load(), 1) << "a route per op instead of one";
    comm.abort("test over");
    std::vector<float> x(4);
    EXPECT_THROW(comm.allreduce(Tensor::flat(x.data(), DType::f32, 4, Device::cuda(0))).wait(),
                 Error);
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
