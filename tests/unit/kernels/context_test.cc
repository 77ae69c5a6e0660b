// CpuContext and the one guard over OpenBLAS's process-wide thread count: set for a scope, back
// on every way out of it, an exception included.
#include "kernels/context.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "runtime/error.h"

namespace weft::kernels::cpu {
namespace {

TEST(CpuContext, CarriesItsThreadCountAndRefusesNone) {
  EXPECT_EQ(CpuContext(3).threads(), 3);
  try {
    CpuContext bad(0);
    FAIL() << "CpuContext(0) should throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("CpuContext(0)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BlasThreads(0), Error);
}

TEST(BlasThreads, SetsForItsScopeAndNests) {
  BlasThreads outer(2);
  EXPECT_EQ(blas_threads(), 2);
  {
    BlasThreads inner(1);
    EXPECT_EQ(blas_threads(), 1);
    {
      BlasThreads same(1);  // already 1: changes nothing, restores nothing
      EXPECT_EQ(blas_threads(), 1);
    }
    EXPECT_EQ(blas_threads(), 1);
  }
  EXPECT_EQ(blas_threads(), 2);
}

TEST(BlasThreads, AnExceptionRestoresTheCount) {
  BlasThreads outer(2);
  try {
    BlasThreads one(1);
    ASSERT_EQ(blas_threads(), 1);
    throw std::runtime_error("a kernel failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(blas_threads(), 2);
}

}  // namespace
}  // namespace weft::kernels::cpu
