#pragma once
// Span: what a communicator's op keeps of a Tensor (no shape: copying one allocates), and
// run_on_host(): how an op whose backend moves host memory runs on host copies of GPU memory.
#include <cstddef>

#include "comm/device_staging.h"
#include "runtime/clock.h"
#include "runtime/tensor.h"

namespace weft::comm {

// What an op keeps of a Tensor.
struct Span {
  void* data = nullptr;
  size_t numel = 0;
  DType dtype = DType::u8;
  int cuda_device = -1;  // -1: host memory
  Span() = default;
  explicit Span(const Tensor& t)
      : data(t.data()),
        numel(t.numel()),
        dtype(t.dtype()),
        cuda_device(t.device().is_cpu() ? -1 : t.device().index) {}
  size_t nbytes() const { return numel * dtype_size(dtype); }
  bool on_device() const { return cuda_device >= 0; }
  Span on_host(void* host) const {
    Span h = *this;
    h.data = host;
    h.cuda_device = -1;
    return h;
  }
};

// The CUDA device of whichever of an op's spans is on one (they share it), or -1.
inline int device_of(const Span& a, const Span& b) {
  return a.on_device() ? a.cuda_device : b.cuda_device;
}

// Runs fn(in, out) on host copies of whatever of `in` and `out` lives on a GPU: `in` (what the
// op reads) is copied over before, `out` (what it writes) copied back after; an empty Span is
// neither, and `out` may alias `in`. Without a staging (host spans, or a transport that moves
// device memory) fn runs on the spans as they are. Copies are waited for until `deadline`.
template <typename Fn>
void run_on_host(DeviceStaging* staging, Span in, Span out, const LazyDeadline& deadline, Fn&& fn) {
  if (!staging || (!in.on_device() && !out.on_device())) return fn(in, out);
  Span hin = in, hout = out;
  if (in.on_device()) {
    hin = in.on_host(staging->host(0, in.nbytes(), deadline.get()));
    staging->to_host(static_cast<std::byte*>(hin.data), in.data, in.nbytes());
  }
  // In place, the output reuses the input's copy, when it fits there: rank 0's in-place
  // allgather writes more than its input (the first block of the output).
  const bool shared = out.data == in.data && out.nbytes() <= in.nbytes();
  if (out.on_device())
    hout = out.on_host(shared ? hin.data : staging->host(1, out.nbytes(), deadline.get()));
  staging->wait(deadline.get());
  fn(hin, hout);
  if (!out.on_device()) return;
  staging->to_device(out.data, static_cast<std::byte*>(hout.data), out.nbytes());
  staging->wait(deadline.get());
}

}  // namespace weft::comm
