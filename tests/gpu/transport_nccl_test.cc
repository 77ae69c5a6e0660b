// The nccl transport on the one rank a single GPU allows: messages to itself (NCCL pairs a
// rank's send and receive to itself within one group) from device and host memory, a
// communicator over it, and the mismatch and abort paths.
#include <gtest/gtest.h>

#include <vector>

#include "comm/communicator.h"
#include "comm/group_context.h"
#include "comm/nccl/backends.h"
#include "comm/rendezvous/store_memory.h"
#include "comm/transport_setup.h"
#include "runtime/cuda_buffer.h"
#include "runtime/error.h"
#include "tests/gpu/gpu_test_support.h"

namespace weft {
namespace {

using comm::Fingerprint;
using comm::OpKind;

class NcclTransportTest : public gpu_test::GpuTest {
 protected:
  void SetUp() override {
    gpu_test::GpuTest::SetUp();
    if (IsSkipped()) return;
    comm::TransportSetup setup;
    setup.store = &store_;
    setup.deadline = deadline_after(std::chrono::seconds(60));
    transport_ = comm::make_nccl_transport(setup, 0);
  }
  // Posts a send to and a receive from this rank, waits for both.
  void loop(const void* from, void* to, size_t bytes, const Fingerprint& sent,
            const Fingerprint& expected) {
    auto deadline = deadline_after(std::chrono::seconds(30));
    auto r = transport_->irecv(0, to, bytes, expected);
    auto s = transport_->isend(0, from, bytes, sent);
    comm::wait(*transport_, r, deadline, 0, expected);
    comm::wait(*transport_, s, deadline, 0, sent);
  }
  comm::MemoryStore store_;
  std::unique_ptr<comm::Transport> transport_;
};

const Fingerprint kFp{1, OpKind::allreduce, DType::f32, ReduceOp::sum, -1, 1000};

TEST_F(NcclTransportTest, DeviceMemoryLoopsBack) {
  const size_t n = 1000;
  std::vector<float> data(n), back(n);
  for (size_t i = 0; i < n; i++) data[i] = static_cast<float>(i) * 0.25f;
  CudaBuffer from(n * sizeof(float), 0), to(n * sizeof(float), 0);
  from.upload(data.data(), n * sizeof(float));
  loop(from.data(), to.data(), n * sizeof(float), kFp, kFp);
  to.download(back.data(), n * sizeof(float));
  EXPECT_EQ(back, data);
}

TEST_F(NcclTransportTest, HostMemoryIsStagedThroughTheGpu) {
  std::vector<int64_t> data = {1, -2, 3, -4, 5}, back(5);
  Fingerprint fp{2, OpKind::allgather, DType::i64, ReduceOp::sum, -1, 5};
  for (int round = 0; round < 3; round++) {  // slots and their staging buffers are reused
    loop(data.data(), back.data(), 5 * sizeof(int64_t), fp, fp);
    EXPECT_EQ(back, data);
    data[0] += 10;
  }
  loop(nullptr, nullptr, 0, fp, fp);  // zero bytes: headers only
}

TEST_F(NcclTransportTest, MismatchedCollectivesFailNamingBoth) {
  CudaBuffer from(4000, 0), to(4000, 0);
  Fingerprint other = kFp;
  other.op = OpKind::reduce_scatter;
  try {
    loop(from.data(), to.data(), 4000, kFp, other);
    FAIL() << "expected InvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("reduce_scatter"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("allreduce"), std::string::npos) << e.what();
  }
  // The transport is failed now: later requests say so.
  auto r = transport_->irecv(0, to.data(), 4, kFp);
  EXPECT_THROW(transport_->test(r), Error);
}

TEST_F(NcclTransportTest, AbortFailsPendingRequests) {
  CudaBuffer buffer(64, 0);
  auto r = transport_->irecv(0, buffer.data(), 64, kFp);
  transport_->abort("test says stop");
  try {
    comm::wait(*transport_, r, deadline_after(std::chrono::seconds(10)), 0, kFp);
    FAIL() << "expected Aborted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Aborted) << e.what();
    EXPECT_NE(std::string(e.what()).find("test says stop"), std::string::npos) << e.what();
  }
}

TEST_F(NcclTransportTest, CommunicatorOfOneRunsOverIt) {
  comm::GroupContext context;
  context.backend = "nccl-ring";
  comm::Communicator communicator(std::move(transport_), context, comm::CommOptions{});
  std::vector<float> data = {1, 2, 3};
  communicator.allreduce(Tensor::flat(data.data(), DType::f32, 3)).wait();
  communicator.barrier().wait();
  EXPECT_EQ(data, (std::vector<float>{1, 2, 3}));
}

}  // namespace
}  // namespace weft
