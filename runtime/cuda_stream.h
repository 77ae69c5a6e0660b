#pragma once
// CudaStream and CudaEvent: owned CUDA streams and the events that mark points on them.
// Move-only; destroyed on their device. Part of weft_runtime_cuda.
//
// Streams are created non-blocking: work on them never waits for the legacy default stream,
// which other libraries (and careless code) use implicitly.
#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <type_traits>

#include "runtime/clock.h"

namespace weft {

class CudaStream {
 public:
  CudaStream() = default;
  // A new non-blocking stream on cuda:`device`. Throws Unavailable without that device.
  explicit CudaStream(int device);
  CudaStream(CudaStream&&) noexcept = default;
  CudaStream& operator=(CudaStream&&) noexcept = default;

  cudaStream_t get() const { return handle_.get(); }
  int device() const { return handle_.get_deleter().device; }

  // Returns once the work queued on the stream so far is done. Polls cudaStreamQuery, sleeping
  // briefly between polls, so that a hung kernel or copy fails the caller at `deadline`
  // (Timeout naming `what`) instead of blocking it for ever as cudaStreamSynchronize would.
  void wait(Deadline deadline, const std::string& what) const;

 private:
  struct Destroy {
    int device;  // no initializer: it would hide the default constructor from unique_ptr
    void operator()(cudaStream_t s) const;
  };
  std::unique_ptr<std::remove_pointer_t<cudaStream_t>, Destroy> handle_;
};

// An event without timing (cheaper to record and to query): "has the stream got this far?".
class CudaEvent {
 public:
  CudaEvent() = default;
  explicit CudaEvent(int device);
  CudaEvent(CudaEvent&&) noexcept = default;
  CudaEvent& operator=(CudaEvent&&) noexcept = default;

  cudaEvent_t get() const { return handle_.get(); }
  // Marks the current end of `stream`'s queued work.
  void record(const CudaStream& stream);
  // True once everything queued on the stream before record() has run. Never blocks. Throws
  // weft::Error (naming `what`) when that work failed.
  bool query(const std::string& what) const;

 private:
  struct Destroy {
    int device;  // no initializer: it would hide the default constructor from unique_ptr
    void operator()(cudaEvent_t e) const;
  };
  std::unique_ptr<std::remove_pointer_t<cudaEvent_t>, Destroy> handle_;
};

}  // namespace weft
