// kernels::cuda::square_sum_partials and scale against sums and products on the host, for f32
// and bf16, at sizes around the block and grid boundaries.
#include "kernels/cuda/grad_norm.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/gpu/kernel_test_support.h"

namespace weft {
namespace {

using gpu_test::DeviceArray;

template <typename T>
class GradNormGpuTest : public gpu_test::KernelTest {};
using StorageTypes = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(GradNormGpuTest, StorageTypes);

TYPED_TEST(GradNormGpuTest, SquareSumMatchesTheHostAndRepeatsExactly) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{255}, size_t{65537}, size_t{3} << 20}) {
    const auto x = gpu_test::representable<TypeParam>(gpu_test::random_floats(n, 11));
    auto d_x = DeviceArray<TypeParam>::from_floats(x);
    DeviceArray<float> partials(kernels::cuda::kSquareSumPartials);
    double want = 0;
    for (float v : x) want += static_cast<double>(v) * v;
    auto total = [&] {
      kernels::cuda::square_sum_partials(this->ctx(), d_x.get(), n, partials.get());
      EXPECT_EQ(cudaStreamSynchronize(this->stream()), cudaSuccess);
      double sum = 0;
      for (float p : partials.download()) sum += p;
      return sum;
    };
    const double got = total();
    EXPECT_NEAR(got, want, 1e-5 * want + 1e-12) << "n = " << n;
    EXPECT_EQ(total(), got) << "n = " << n << ": the same input must give the same bits";
  }
}

TYPED_TEST(GradNormGpuTest, ScaleMultipliesEveryElement) {
  const size_t n = 100003;
  const auto x = gpu_test::representable<TypeParam>(gpu_test::random_floats(n, 12));
  auto d_x = DeviceArray<TypeParam>::from_floats(x);
  kernels::cuda::scale(this->ctx(), d_x.get(), n, 0.25f);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; i++) want[i] = x[i] * 0.25f;  // exact in both: a power of two
  gpu_test::expect_close(d_x.to_floats(), want, 0.0f, 0.0f, "x * 0.25");
}

}  // namespace
}  // namespace weft
