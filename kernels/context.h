#pragma once
// What a CPU kernel runs with. Every kernel in kernels/*.h takes a CpuContext first, as every
// kernel in kernels/cuda takes a CudaContext (kernels/cuda/context.h), so the two sides have the
// same signatures and a caller names the device once, in the context it passes. Both live in
// their kernels' namespace, so an unqualified call such as matmul_forward(ctx, ...) finds the
// kernel of ctx's device.
//
// No kernel reads a process-wide setting behind its caller: the thread count a kernel uses is
// the context's. The one process-wide setting left is OpenBLAS's thread count
// (openblas_set_num_threads is global to the process, with no per-call or per-thread form in
// the OpenBLAS weft builds on), and BlasThreads below is the only way weft changes it.
namespace weft::kernels::cpu {

class CpuContext {
 public:
  // A kernel given this context may run on `threads` threads: its own (attention's heads) or
  // the BLAS's inside one product (matmul). Throws InvalidArgument for threads < 1.
  explicit CpuContext(int threads);

  int threads() const { return threads_; }

 private:
  int threads_;
};

// Sets OpenBLAS's process-wide thread count to `threads` for the guard's lifetime, then puts
// back the count it found, on every way out of the scope (an exception included). Does nothing
// when the count is already `threads`, so a guard per kernel call costs one read.
//
// The setting is shared by every thread of the process, so guards must nest on one thread:
// whoever runs kernels on several threads at once holds a guard at their contexts' thread count
// around all of them (ModelLanes does, at 1), and the kernels' own guards then change nothing.
// A matmul kernel holds one at its context's count; attention holds one at 1 while its threads
// run single-threaded products.
class BlasThreads {
 public:
  // Throws InvalidArgument for threads < 1.
  explicit BlasThreads(int threads);
  ~BlasThreads();
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int previous_;
  bool changed_;
};

// OpenBLAS's process-wide thread count now: for logs and tests, never an input to a kernel.
int blas_threads();

}  // namespace weft::kernels::cpu
