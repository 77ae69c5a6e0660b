#pragma once
// What the GPU tests share: skipping where no device is visible, device arrays that copy to
// and from host vectors, bf16 rounding of host data, random inputs and a closeness check that
// names the first elements that differ.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/half.h"

namespace weft::gpu_test {

// True when CUDA reports at least one device. Without a GPU (or without a driver) the runtime
// reports an error instead, which counts as none.
inline bool has_cuda_device() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

inline void check(cudaError_t status, const char* what) {
  ASSERT_EQ(status, cudaSuccess) << what << ": " << cudaGetErrorString(status);
}

inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = bf16(v[i]);
  return out;
}

inline std::vector<float> to_float(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = static_cast<float>(v[i]);
  return out;
}

// The values bf16 can hold nearest to v: what a bf16 kernel actually receives, and so what
// the f32 CPU reference must be given for a fair comparison.
inline std::vector<float> round_to_bf16(const std::vector<float>& v) {
  return to_float(to_bf16(v));
}

// Device memory for n elements of T, freed on destruction. upload/download copy whole host
// vectors of any element type of T's size (weft::bf16 for __nv_bfloat16, say).
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    void* memory = nullptr;
    if (n > 0) check(cudaMalloc(&memory, n * sizeof(T)), "cudaMalloc");
    data_ = static_cast<T*>(memory);
  }
  template <typename U>
  explicit DeviceArray(const std::vector<U>& host) : DeviceArray(host.size()) {
    upload(host);
  }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(DeviceArray&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), n_(std::exchange(other.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&&) = delete;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  // From host floats: as they are for a float array, rounded to nearest even for bf16.
  static DeviceArray from_floats(const std::vector<float>& host) {
    DeviceArray array(host.size());
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      array.upload(to_bf16(host));
    } else {
      array.upload(host);
    }
    return array;
  }
  // Back to host floats (bf16 widened exactly).
  std::vector<float> to_floats() const {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      return to_float(download<bf16>());
    } else {
      return download();
    }
  }

  T* get() const { return data_; }
  size_t size() const { return n_; }

  template <typename U>
  void upload(const std::vector<U>& host) {
    static_assert(sizeof(U) == sizeof(T));
    ASSERT_EQ(host.size(), n_);
    if (n_ == 0) return;
    check(cudaMemcpy(data_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "upload");
    // From pageable memory the copy may still be landing; the tests' streams are non-blocking.
    check(cudaStreamSynchronize(nullptr), "finishing the upload");
  }
  template <typename U = T>
  std::vector<U> download() const {
    static_assert(sizeof(U) == sizeof(T));
    std::vector<U> host(n_);
    if (n_ > 0) {
      check(cudaDeviceSynchronize(), "kernels before download");
      check(cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    }
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t n_ = 0;
};

// Base fixture: skips the test without a device; gives it a stream of its own (not the legacy
// default stream, so a kernel that ignores its stream argument would show up as a race).
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device visible; GPU tests need one";
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  void TearDown() override {
    if (stream_ != nullptr) {
      check(cudaStreamSynchronize(stream_), "kernels of the test");
      cudaStreamDestroy(stream_);
    }
  }
  cudaStream_t stream() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<int32_t> random_ints(size_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// |actual - expected| <= atol + rtol * |expected| everywhere; otherwise fails naming how many
// elements differ and the first few.
inline void expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                         float rtol, float atol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < actual.size(); i++) {
    const float tolerance = atol + rtol * std::fabs(expected[i]);
    const bool close = std::fabs(actual[i] - expected[i]) <= tolerance;
    if (!close || std::isnan(actual[i]) != std::isnan(expected[i])) {
      if (bad < 5) {
        first += " [" + std::to_string(i) + "] got " + std::to_string(actual[i]) + " want " +
                 std::to_string(expected[i]) + ";";
      }
      bad++;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << actual.size()
                     << " elements differ beyond rtol " << rtol << ", atol " << atol << ":"
                     << first;
}

inline float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

// The values a kernel on T actually receives: the CPU reference must be given these.
template <typename T>
std::vector<float> representable(const std::vector<float>& v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return round_to_bf16(v);
  } else {
    return v;
  }
}

// The CPU reference in f32 against the kernel on T. f32 differs from the CPU only in summation
// order and the last bits of exp; bf16 rounds its inputs, outputs and intermediates to an
// 8-bit mantissa (2^-8 relative). The absolute part scales with the largest expected value, so
// a result that cancels to near zero is judged against the size of what cancelled. `looseness`
// widens both for ops whose bf16 intermediates compound (attention's backward).
template <typename T>
void expect_close_as(const std::vector<float>& actual, const std::vector<float>& expected,
                     const std::string& what, float looseness = 1.0f) {
  const float scale = std::max(max_abs(expected), 1e-6f);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    expect_close(actual, expected, 2e-2f * looseness, 1e-2f * scale * looseness, what + " (bf16)");
  } else {
    expect_close(actual, expected, 1e-4f * looseness, 1e-5f * scale * looseness, what + " (f32)");
  }
}

using FloatTypes = ::testing::Types<float, __nv_bfloat16>;

// Test names: "float" and "bf16".
struct FloatTypeNames {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, __nv_bfloat16> ? "bf16" : "f32";
  }
};

}  // namespace weft::gpu_test
