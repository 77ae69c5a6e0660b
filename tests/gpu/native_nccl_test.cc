// The native NCCL backend on the ranks one GPU allows: a group of one (NCCL refuses two ranks
// on one GPU; multi-rank runs need a machine with several GPUs, one per rank). Checks that every
// collective runs on every dtype and op with the results a group of one must give, that the
// fingerprint exchange and split work, and the abort and wrong-memory error paths.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "comm/native_backend.h"
#include "comm/nccl/backends.h"
#include "comm/rendezvous/store_memory.h"
#include "runtime/cuda_buffer.h"
#include "runtime/error.h"
#include "runtime/world.h"
#include "tests/gpu/gpu_test_support.h"

namespace weft {
namespace {

using comm::Fingerprint;
using comm::NativeOp;
using comm::OpKind;

class NativeNcclTest : public gpu_test::GpuTest {
 protected:
  void SetUp() override {
    gpu_test::GpuTest::SetUp();
    if (IsSkipped()) return;
    backend_ = comm::make_native_nccl_backend(World{}, std::make_shared<comm::MemoryStore>(),
                                              0, deadline_after(std::chrono::seconds(60)));
  }
  NativeOp op(OpKind kind, DType dtype, size_t count, ReduceOp reduce = ReduceOp::sum,
              int root = -1) {
    return NativeOp{Fingerprint{++seq_, kind, dtype, reduce, root, count},
                    deadline_after(std::chrono::seconds(30))};
  }
  std::unique_ptr<comm::NativeBackend> backend_;
  uint64_t seq_ = 0;
};

std::vector<uint8_t> pattern(size_t bytes, uint8_t seed) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; i++) v[i] = static_cast<uint8_t>((i * 7 + seed) % 61);
  return v;
}

TEST_F(NativeNcclTest, GroupOfOneKeepsDataThroughEveryCollectiveDtypeAndOp) {
  ASSERT_EQ(backend_->size(), 1);
  EXPECT_STREQ(backend_->name(), "nccl");
  for (DType dtype : kAllDTypes) {
    const size_t count = 1001;
    const size_t bytes = count * dtype_size(dtype);
    auto input = pattern(bytes, 3);
    CudaBuffer in(bytes, 0), out(bytes, 0);
    in.upload(input.data(), bytes);
    std::vector<uint8_t> got(bytes);
    for (ReduceOp reduce : kAllReduceOps) {
      auto o = op(OpKind::allreduce, dtype, count, reduce);
      backend_->check_agreement(o);
      backend_->allreduce(in.data(), out.data(), count, dtype, reduce, o);
      out.download(got.data(), bytes);
      EXPECT_EQ(got, input) << dtype_name(dtype) << " " << reduce_op_name(reduce);
      auto r = op(OpKind::reduce_scatter, dtype, count, reduce);
      backend_->reduce_scatter(in.data(), out.data(), count, dtype, reduce, r);
      out.download(got.data(), bytes);
      EXPECT_EQ(got, input) << "reduce_scatter " << dtype_name(dtype);
      auto rd = op(OpKind::reduce, dtype, count, reduce, 0);
      backend_->reduce(in.data(), out.data(), count, dtype, reduce, 0, rd);
      out.download(got.data(), bytes);
      EXPECT_EQ(got, input) << "reduce " << dtype_name(dtype);
    }
    backend_->allgather(in.data(), out.data(), count, dtype, op(OpKind::allgather, dtype, count));
    out.download(got.data(), bytes);
    EXPECT_EQ(got, input) << "allgather " << dtype_name(dtype);
    backend_->alltoall(in.data(), out.data(), count, dtype, op(OpKind::alltoall, dtype, count));
    out.download(got.data(), bytes);
    EXPECT_EQ(got, input) << "alltoall " << dtype_name(dtype);
    backend_->broadcast(in.data(), count, dtype, 0, op(OpKind::broadcast, dtype, count, {}, 0));
    in.download(got.data(), bytes);
    EXPECT_EQ(got, input) << "broadcast " << dtype_name(dtype);
  }
}

TEST_F(NativeNcclTest, HostMemoryIsRefusedNamingTheDevice) {
  std::vector<float> host(16);
  try {
    backend_->allreduce(host.data(), host.data(), 16, DType::f32, ReduceOp::sum,
                        op(OpKind::allreduce, DType::f32, 16));
    FAIL() << "expected InvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

TEST_F(NativeNcclTest, SplitGivesAGroupOfOneOrNothing) {
  auto child = backend_->split(5, 0, deadline_after(std::chrono::seconds(30)));
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->size(), 1);
  CudaBuffer data(4 * sizeof(float), 0);
  child->check_agreement(op(OpKind::barrier, DType::u8, 1));
  child->allreduce(data.data(), data.data(), 4, DType::f32, ReduceOp::sum,
                   op(OpKind::allreduce, DType::f32, 4));
  EXPECT_EQ(backend_->split(-1, 0, deadline_after(std::chrono::seconds(30))), nullptr);
}

TEST_F(NativeNcclTest, AbortFailsLaterOpsWithItsReason) {
  backend_->abort("test says stop");
  backend_->abort("a second abort is harmless");
  CudaBuffer data(64, 0);
  try {
    backend_->allreduce(data.data(), data.data(), 16, DType::f32, ReduceOp::sum,
                        op(OpKind::allreduce, DType::f32, 16));
    FAIL() << "expected Aborted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Aborted);
    EXPECT_NE(std::string(e.what()).find("test says stop"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("allreduce"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace weft
