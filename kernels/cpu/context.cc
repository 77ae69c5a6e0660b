#include "kernels/context.h"

#include <cblas.h>

#include <string>

#include "runtime/error.h"

namespace weft::kernels::cpu {
namespace {

void check_threads(int threads, const char* what) {
  if (threads < 1) {
    throw Error(ErrorCode::InvalidArgument,
                std::string(what) + "(" + std::to_string(threads) +
                    "): a kernel needs at least one thread; pass the cores each rank may use");
  }
}

}  // namespace

CpuContext::CpuContext(int threads) : threads_(threads) { check_threads(threads, "CpuContext"); }

BlasThreads::BlasThreads(int threads) {
  check_threads(threads, "BlasThreads");
  previous_ = openblas_get_num_threads();
  changed_ = previous_ != threads;
  if (changed_) openblas_set_num_threads(threads);
}

BlasThreads::~BlasThreads() {
  if (changed_) openblas_set_num_threads(previous_);
}

int blas_threads() { return openblas_get_num_threads(); }

}  // namespace weft::kernels::cpu
