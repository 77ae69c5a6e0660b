// CUDA tensors through host backends with the real staging (pinned memory, cudaMemcpyAsync):
// several ranks sharing the one GPU, over the in-process transport (threads) and over shared
// memory (threads too: each rank still has its own FIFOs and staging). Checked against sums
// computed on the host.
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/group_context.h"
#include "comm/rendezvous/store_memory.h"
#include "comm/transport/inproc/transport_inproc.h"
#include "comm/transport/shm/transport_shm.h"
#include "comm/transport_setup.h"
#include "runtime/cuda_buffer.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/support/inproc_group.h"

namespace weft {
namespace {

using comm::CommOptions;
using comm::Communicator;

// One communicator per rank over `backend` ("inproc" or "shm"), all on this process's threads.
void run_ranks(int n, const std::string& backend, const std::function<void(Communicator&)>& fn) {
  auto hub = std::make_shared<comm::InprocHub>(n);
  auto store = std::make_shared<comm::MemoryStore>();
  CommOptions options;
  options.timeout = std::chrono::seconds(60);
  options.staging_chunk_bytes = 1 << 20;  // several chunks for the larger sizes below
  testing::run_rank_threads(n, [&](int r) {
    comm::GroupContext ctx;
    ctx.backend = backend;
    std::unique_ptr<comm::Transport> t;
    if (backend == "inproc") {
      t = comm::make_inproc_transport(hub, r);
    } else {
      comm::TransportSetup s;
      s.store = store.get();
      s.rank = r;
      s.size = n;
      s.job_id = "gpustaging" + std::to_string(getpid());
      s.token = "t";
      s.deadline = deadline_after(std::chrono::seconds(30));
      t = comm::make_shm_transport(s);
    }
    Communicator comm(std::move(t), std::move(ctx), options);
    fn(comm);
  });
}

class CudaTensorsOnHostBackends : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!gpu_test::has_cuda_device()) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_P(CudaTensorsOnHostBackends, AllreduceAndBroadcastMatchTheHostSums) {
  const int n = 3;
  for (size_t count : {size_t{1}, size_t{1000}, size_t{(3u << 20) / 4 + 5}}) {
    SCOPED_TRACE(std::to_string(count) + " floats");
    run_ranks(n, GetParam(), [&](Communicator& comm) {
      std::vector<float> mine(count);
      for (size_t i = 0; i < count; i++) mine[i] = static_cast<float>((comm.rank() + 1) * (i % 97));
      CudaBuffer in(count * sizeof(float), 0), out(count * sizeof(float), 0);
      in.upload(mine.data(), mine.size() * sizeof(float));
      comm.allreduce(in.view(DType::f32, count), out.view(DType::f32, count), ReduceOp::sum)
          .wait();
      std::vector<float> got(count);
      out.download(got.data(), got.size() * sizeof(float));
      for (size_t i = 0; i < count; i++)
        ASSERT_EQ(got[i], static_cast<float>(6 * (i % 97))) << "allreduce element " << i;

      comm.broadcast(in.view(DType::f32, count), 1).wait();
      in.download(got.data(), got.size() * sizeof(float));
      for (size_t i = 0; i < count; i++)
        ASSERT_EQ(got[i], static_cast<float>(2 * (i % 97))) << "broadcast element " << i;
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, CudaTensorsOnHostBackends,
                         ::testing::Values("inproc", "shm"));

}  // namespace
}  // namespace weft
