#include "runtime/backend_names.h"

#include <gtest/gtest.h>

namespace weft {
namespace {

TEST(BackendNames, EveryBackendARankAcceptsIsListedOnce) {
  for (const char* name : {"auto", "tcp", "shm", "mpi-ring", "mpi", "nccl-ring", "nccl"})
    EXPECT_TRUE(is_backend_name(name)) << name;
  for (const char* name : {"", "udp", "MPI", "nccl ", "inproc"})
    EXPECT_FALSE(is_backend_name(name)) << name;
  EXPECT_EQ(backend_names_text(), "auto, tcp, shm, mpi-ring, mpi, nccl-ring or nccl");
}

}  // namespace
}  // namespace weft
