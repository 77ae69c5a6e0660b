// The direct path's agreement when one rank's tensors cannot be registered because they live
// on a GPU: ranks as threads of one process over the shm transport, rank 0 passing tensors
// labelled cuda:0 (host memory, staged by a stand-in that copies at once), rank 1 registered
// memory. Rank 0 still takes part in the agreement, saying its buffer is not registered, so
// both take the FIFOs and get the reference, instead of rank 1 waiting for it in place. Only
// the output must be registered: with rank 0's input on the GPU and its output in registered
// host memory, the input is staged into the output and the op runs in place.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "comm/communicator.h"
#include "comm/group_context.h"
#include "comm/rendezvous/store_memory.h"
#include "comm/transport/shm/transport_shm.h"
#include "tests/support/inproc_group.h"
#include "tests/support/typed_values.h"

namespace weft::testing {
namespace {

class ImmediateStaging final : public comm::DeviceStaging {
 public:
  std::byte* host(int which, size_t bytes, Deadline) override {
    if (areas_[which].size() < bytes) areas_[which].resize(bytes);
    return areas_[which].data();
  }
  void to_host(std::byte* host, const void* device, size_t bytes) override {
    std::memcpy(host, device, bytes);
  }
  void to_device(void* device, const std::byte* host, size_t bytes) override {
    std::memcpy(device, host, bytes);
  }
  void wait(Deadline) override {}

 private:
  std::vector<std::byte> areas_[2];
};

TEST(DirectStaged, ARankWithGpuTensorsTakesTheFifosWithItsPeers) {
  constexpr size_t kCount = 100'003;
  auto store = std::make_shared<comm::MemoryStore>();
  const std::string job = "directstaged_" + std::to_string(getpid());
  run_rank_threads(2, [&](int r) {
    comm::TransportSetup s;
    s.store = store.get();
    s.rank = r;
    s.size = 2;
    s.job_id = job;
    s.group_tag = "world";
    s.deadline = Clock::now() + std::chrono::seconds(20);
    comm::GroupContext ctx;
    ctx.backend = "shm";
    ctx.make_staging = [](int) { return std::make_unique<ImmediateStaging>(); };
    comm::CommOptions options;
    options.timeout = std::chrono::seconds(20);
    options.direct_bytes = 0;
    comm::Communicator comm(comm::make_shm_transport(s), std::move(ctx), options);

    std::vector<char> input = make_data(r, kCount, DType::f32);
    std::vector<char> plain_out(input.size());
    comm::RegisteredBuffer in = comm.alloc(kCount * 4), out = comm.alloc(kCount * 4);
    std::memcpy(in.data(), input.data(), kCount * 4);
    // Rank 0: both on the "GPU" (staged), then only the input (staged into host memory).
    const Device gpu = Device::cuda(0);
    auto t = [&](void* p, Device d) { return Tensor::flat(p, DType::f32, kCount, d); };
    if (r == 0) {
      comm.allreduce(t(input.data(), gpu), t(plain_out.data(), gpu), ReduceOp::sum).wait();
      comm.allreduce(t(input.data(), gpu), t(out.data(), Device::cpu()), ReduceOp::sum).wait();
    } else {
      comm.allreduce(t(in.data(), Device::cpu()), t(plain_out.data(), Device::cpu()), ReduceOp::sum)
          .wait();
      comm.allreduce(t(in.data(), Device::cpu()), t(out.data(), Device::cpu()), ReduceOp::sum)
          .wait();
    }
    for (const void* result :
         {static_cast<const void*>(plain_out.data()), static_cast<const void*>(out.data())})
      for (size_t i = 0; i < kCount; i++)
        ASSERT_EQ(get_value(result, DType::f32, i), reference(2, i, DType::f32, ReduceOp::sum))
            << "rank " << r << " element " << i;
    EXPECT_EQ(comm.direct_ops(), 1u);  // the second op
  });
}

}  // namespace
}  // namespace weft::testing
