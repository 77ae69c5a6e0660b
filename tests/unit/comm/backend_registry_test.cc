#include "comm/backend_registry.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "runtime/error.h"

namespace weft::comm {
namespace {

TEST(BackendRegistry, EveryBackendIsListedOnceAutoFirst) {
  std::set<std::string> seen;
  for (const BackendInfo& b : backends()) EXPECT_TRUE(seen.insert(b.name).second) << b.name;
  EXPECT_EQ(std::string(backends().front().name), "auto");
  EXPECT_EQ(backend_names(), "auto, tcp, shm, mpi-ring, mpi, nccl-ring, nccl");
}

TEST(BackendRegistry, AnUnknownNameIsRefusedNamingTheFlagAndEveryBackend) {
  EXPECT_EQ(std::string(find_backend("mpi-ring").name), "mpi-ring");
  for (const char* bad : {"", "udp", "MPI", "nccl ", "inproc"}) {
    try {
      find_backend(bad, "WEFT_BACKEND");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("WEFT_BACKEND: unknown backend '" + std::string(bad) +
                                           "': use one of " + backend_names()),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(BackendRegistry, MemoryFiltersNameWhatEachBackendMovesAsItIs) {
  EXPECT_EQ(backend_names(BackendMemory::host), "tcp, shm, mpi-ring, mpi, nccl-ring");
  EXPECT_EQ(backend_names(BackendMemory::device), "nccl-ring, nccl");
}

TEST(BackendRegistry, HelpHasALinePerBackend) {
  const std::string help = backend_help("  ");
  for (const BackendInfo& b : backends())
    EXPECT_NE(help.find("  " + std::string(b.name)), std::string::npos) << b.name;
}

}  // namespace
}  // namespace weft::comm
