#pragma once
// The fixture of the kernel tests: GpuTest's stream, with the CudaContext the kernels take
// (cuBLAS handles and workspace on it), and the one-thread CpuContext of the CPU references.
#include <optional>

#include "kernels/context.h"
#include "kernels/cuda/context.h"
#include "tests/gpu/gpu_test_support.h"

namespace weft::gpu_test {

// The CPU kernels are the references; their thread count changes no value they compute.
inline const kernels::cpu::CpuContext kCpu{1};

class KernelTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    ctx_.emplace(0, stream());
  }
  void TearDown() override {
    ctx_.reset();  // its handles are bound to the stream GpuTest destroys
    GpuTest::TearDown();
  }
  const kernels::cuda::CudaContext& ctx() const { return *ctx_; }

 private:
  std::optional<kernels::cuda::CudaContext> ctx_;
};

}  // namespace weft::gpu_test
