#include "runtime/cuda_stream.h"

#include <algorithm>
#include <thread>

#include "runtime/cuda_device.h"
#include "runtime/error.h"

namespace weft {
namespace {

// Destructors switch to the handle's device without throwing.
template <typename Fn>
void on_device_quietly(int device, Fn fn) {
  int previous = -1;
  bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device &&
                  cudaSetDevice(device) == cudaSuccess;
  fn();
  if (switched) cudaSetDevice(previous);
}

}  // namespace

void CudaStream::Destroy::operator()(cudaStream_t s) const {
  on_device_quietly(device, [s] { cudaStreamDestroy(s); });
}

CudaStream::CudaStream(int device) {
  require_cuda_device(device, "creating a CUDA stream");
  CudaDeviceGuard on(device);
  cudaStream_t s = nullptr;
  check_cuda_status(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
                    "cudaStreamCreateWithFlags on cuda:" + std::to_string(device));
  handle_ = decltype(handle_)(s, Destroy{device});
}

void CudaStream::wait(Deadline deadline, const std::string& what) const {
  using namespace std::chrono_literals;
  // Collective work on a GPU is mostly short (a reduction of one segment): poll back to back
  // for a few microseconds, then sleep in doubling steps up to a cap.
  constexpr auto kSpin = 20us;
  constexpr auto kMaxSleep = 200us;
  Clock::time_point spin_until = Clock::now() + kSpin;
  auto nap = std::chrono::microseconds(5);
  for (;;) {
    cudaError_t status = cudaStreamQuery(get());
    if (status == cudaSuccess) return;
    if (status != cudaErrorNotReady) check_cuda_status(status, what);
    Clock::time_point now = Clock::now();
    if (now >= deadline)
      throw Error(ErrorCode::Timeout,
                  what + " on cuda:" + std::to_string(device()) +
                      " did not finish within WEFT_TIMEOUT: the GPU is hung or busy with other "
                      "work; raise WEFT_TIMEOUT if it is only slow");
    if (now < spin_until) continue;
    std::this_thread::sleep_for(std::min<Clock::duration>(nap, deadline - now));
    nap = std::min(nap * 2, std::chrono::duration_cast<std::chrono::microseconds>(kMaxSleep));
  }
}

void CudaEvent::Destroy::operator()(cudaEvent_t e) const {
  on_device_quietly(device, [e] { cudaEventDestroy(e); });
}

CudaEvent::CudaEvent(int device) {
  require_cuda_device(device, "creating a CUDA event");
  CudaDeviceGuard on(device);
  cudaEvent_t e = nullptr;
  check_cuda_status(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                    "cudaEventCreateWithFlags on cuda:" + std::to_string(device));
  handle_ = decltype(handle_)(e, Destroy{device});
}

void CudaEvent::record(const CudaStream& stream) {
  check_cuda_status(cudaEventRecord(get(), stream.get()), "cudaEventRecord");
}

bool CudaEvent::query(const std::string& what) const {
  cudaError_t status = cudaEventQuery(get());
  if (status == cudaErrorNotReady) return false;
  check_cuda_status(status, what);
  return true;
}

}  // namespace weft
