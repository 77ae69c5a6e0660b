// weft-cuda-reduce-bench: bandwidth of the collectives' CUDA reduction kernel
// (kernels::cuda::reduce, out = a op b) beside a device-to-device cudaMemcpy of the same size.
//
// Both are bound by device memory, so the fair yardstick is bytes moved per second: a reduce of
// S bytes per operand reads 2S and writes S (3S in all), a copy of S bytes reads S and writes S
// (2S). The ratio of the two GB/s figures is how close the kernel gets to what a
// device-to-device copy (a copy kernel on one GPU) reaches; the target is >= 85% at 256 MiB.
// Each size is timed with CUDA events around a batch of back-to-back launches, after warm-up;
// the median over samples is reported. Sizes whose operands fit in L2 together are marked: there
// the ratio reflects cache hints (the reduce loads and stores evict-first, the copy does not),
// not device memory. --op avg times the sum pass only: a collective divides once, at its end.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/reduce.h"
#include "runtime/dtype.h"

namespace weft::bench {
namespace {

struct Options {
  std::vector<size_t> sizes;
  DType dtype = DType::f32;
  ReduceOp op = ReduceOp::sum;
  size_t samples = 50;
  size_t warmup = 5;
};

// Device memory, freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    WEFT_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(bytes, 1)));
    // Ordinary finite values in every dtype (0x3c3c...: 0.0115 as f32 or bf16, 1.06 as f16),
    // and every page touched before timing.
    WEFT_CUDA_CHECK(cudaMemset(data_, 0x3c, bytes));
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return data_; }

 private:
  void* data_ = nullptr;
};

class Event {
 public:
  Event() { WEFT_CUDA_CHECK(cudaEventCreate(&event_)); }
  ~Event() { cudaEventDestroy(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

class Stream {
 public:
  Stream() { WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Median seconds per call of `launch`. Small sizes take a few microseconds, near the launch
// overhead and the events' resolution, so each sample times a batch of calls that moves about
// 256 MiB (at most 1000 calls: below ~256 KiB a call costs its launch, not its bytes).
template <typename Launch>
double median_seconds(const Options& options, size_t bytes, cudaStream_t stream, Launch launch) {
  const size_t batch =
      std::clamp<size_t>((size_t{256} << 20) / std::max<size_t>(bytes, 1), 1, 1000);
  for (size_t i = 0; i < options.warmup * batch; i++) launch();
  Event start, stop;
  std::vector<double> seconds;
  for (size_t s = 0; s < options.samples; s++) {
    WEFT_CUDA_CHECK(cudaEventRecord(start.get(), stream));
    for (size_t i = 0; i < batch; i++) launch();
    WEFT_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    WEFT_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    float ms = 0.0f;
    WEFT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    seconds.push_back(ms / 1e3 / static_cast<double>(batch));
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

std::string size_name(size_t bytes) {
  if (bytes >= (size_t{1} << 20) && bytes % (size_t{1} << 20) == 0) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

int run(const Options& options) {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::fprintf(stderr,
                 "weft-cuda-reduce-bench: no CUDA device visible (%s); run it on a machine with "
                 "a GPU\n",
                 status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 1;
  }
  cudaDeviceProp prop{};
  WEFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const size_t element = dtype_size(options.dtype);
  const size_t largest = *std::max_element(options.sizes.begin(), options.sizes.end());
  DeviceBuffer a(largest), b(largest), out(largest);
  Stream stream;
  // The buffers were filled on the legacy stream, which the timing stream does not wait for.
  WEFT_CUDA_CHECK(cudaDeviceSynchronize());
  const size_t l2 = static_cast<size_t>(prop.l2CacheSize);

  std::printf("# weft-cuda-reduce-bench: %s, %s %s, median of %zu samples after %zu warm-up\n",
              prop.name, dtype_name(options.dtype), reduce_op_name(options.op), options.samples,
              options.warmup);
  std::printf("# GB/s = (bytes read + bytes written) / time; reduce moves 3x size, copy 2x; "
              "L2 %zu MiB: rows marked L2 fit in it\n", l2 >> 20);
  std::printf("%12s %14s %14s %12s %12s\n", "size", "reduce GB/s", "copy GB/s", "reduce us",
              "reduce/copy");
  for (size_t size : options.sizes) {
    const size_t count = size / element;
    const size_t bytes = count * element;  // a whole number of elements
    const double reduce_s = median_seconds(options, bytes, stream.get(), [&] {
      kernels::cuda::reduce(out.get(), a.get(), b.get(), count, options.dtype, options.op,
                            stream.get());
    });
    const double copy_s = median_seconds(options, bytes, stream.get(), [&] {
      WEFT_CUDA_CHECK(
          cudaMemcpyAsync(out.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, stream.get()));
    });
    const double reduce_gbs = reduce_s > 0 ? 3.0 * bytes / reduce_s / 1e9 : 0.0;
    const double copy_gbs = copy_s > 0 ? 2.0 * bytes / copy_s / 1e9 : 0.0;
    std::printf("%12s %14.1f %14.1f %12.2f %11.1f%%%s\n", size_name(bytes).c_str(), reduce_gbs,
                copy_gbs, reduce_s * 1e6, copy_gbs > 0 ? 100.0 * reduce_gbs / copy_gbs : 0.0,
                3 * bytes <= l2 ? "  L2" : "");
  }
  return 0;
}

}  // namespace
}  // namespace weft::bench

int main(int argc, char** argv) {
  using namespace weft;
  using namespace weft::bench;
  std::string sizes = "4K,64K,1M,4M,16M,64M,256M", dtype = "f32", op = "sum", samples, warmup;
  FlagParser flags(
      "weft-cuda-reduce-bench: the CUDA reduction kernel's bandwidth beside a device-to-device "
      "copy");
  flags.add_value("sizes", "LIST", "bytes per operand, e.g. 1M,64M,256M", &sizes);
  flags.add_value("dtype", "TYPE", "f32, f16, bf16, f64, i32, i64 or u8", &dtype);
  flags.add_value("op", "OP", "sum, avg, max, min or prod", &op);
  flags.add_value("samples", "N", "timed samples per size; the median is shown (default 50)",
                  &samples);
  flags.add_value("warmup", "N", "untimed batches before the samples (default 5)", &warmup);
  try {
    bool help = false;
    flags.parse(argc, argv, &help);
    if (help) {
      std::printf("%s", flags.usage().c_str());
      return 0;
    }
    Options options;
    options.sizes = parse_size_list(sizes, "sizes");
    options.dtype = parse_dtype(
        parse_choice(dtype, "dtype", {"f32", "f16", "bf16", "f64", "i32", "i64", "u8"}));
    options.op = parse_reduce_op(parse_choice(op, "op", {"sum", "avg", "max", "min", "prod"}));
    options.samples = parse_count(samples, "samples", options.samples);
    options.warmup = parse_count(warmup, "warmup", options.warmup);
    return run(options);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "weft-cuda-reduce-bench: %s\n\n%s", e.what(), flags.usage().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weft-cuda-reduce-bench: %s\n", e.what());
    return 1;
  }
}
