#include "launcher/shm_cleanup.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace weft::launcher {
namespace {

namespace fs = std::filesystem;

class ShmCleanup : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-shm-cleanup-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void touch(const std::string& name) { std::ofstream(dir_ / name) << "x"; }
  fs::path dir_;
};

TEST_F(ShmCleanup, RemovesOnlyThisJobsFiles) {
  for (const char* name : {"weft-j12ab-world-r0", "weft-j12ab-split-3-1-r2", "weft-j12abc-world-r0",
                           "weft-j12-world-r0", "other-j12ab-x", "weft-j12ab"})
    touch(name);
  std::vector<std::string> removed = remove_job_shm_files(dir_, "j12ab");
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"weft-j12ab-split-3-1-r2", "weft-j12ab-world-r0"}));
  EXPECT_TRUE(fs::exists(dir_ / "weft-j12abc-world-r0"));
  EXPECT_TRUE(fs::exists(dir_ / "weft-j12-world-r0"));
  EXPECT_TRUE(fs::exists(dir_ / "other-j12ab-x"));
  EXPECT_TRUE(fs::exists(dir_ / "weft-j12ab"));
}

TEST_F(ShmCleanup, RefusesIdsThatCouldReachOtherJobs) {
  touch("weft-j1-x-world-r0");
  EXPECT_TRUE(remove_job_shm_files(dir_, "").empty());
  EXPECT_TRUE(remove_job_shm_files(dir_, "j1-x").empty());
  EXPECT_TRUE(remove_job_shm_files(dir_, "../j1").empty());
  EXPECT_TRUE(fs::exists(dir_ / "weft-j1-x-world-r0"));
  EXPECT_TRUE(remove_job_shm_files(dir_ / "missing", "j1").empty());  // no throw
}

}  // namespace
}  // namespace weft::launcher
