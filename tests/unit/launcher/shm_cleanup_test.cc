#include "launcher/shm_cleanup.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace weft::launcher {
namespace {

namespace fs = std::filesystem;

// A pid that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

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

TEST_F(ShmCleanup, OrphanedFilesOfTheJobAreThoseWhoseOwnerIsGone) {
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getpid());
  for (const std::string& name :
       std::vector<std::string>{"weft-j1-world-r2-p" + dead, "weft-j1-world.s0c1-r0-p" + dead,
                                "weft-j1-world-r0-p" + live, "weft-j2-world-r2-p" + dead,
                                "weft-j1-world-r3", "weft-j1-world-r3-p", "weft-j1-x-p0"})
    touch(name);
  EXPECT_EQ(
      sorted(remove_orphaned_job_shm_files(dir_, "j1")),
      (std::vector<std::string>{"weft-j1-world-r2-p" + dead, "weft-j1-world.s0c1-r0-p" + dead}));
  EXPECT_TRUE(fs::exists(dir_ / ("weft-j1-world-r0-p" + live)));  // a rank still running
  EXPECT_TRUE(fs::exists(dir_ / ("weft-j2-world-r2-p" + dead)));  // another job
  EXPECT_TRUE(fs::exists(dir_ / "weft-j1-world-r3"));             // no owner to ask
  EXPECT_TRUE(fs::exists(dir_ / "weft-j1-world-r3-p"));
  EXPECT_TRUE(fs::exists(dir_ / "weft-j1-x-p0"));
  EXPECT_TRUE(remove_orphaned_job_shm_files(dir_, "j1-world").empty());
}

TEST_F(ShmCleanup, SweepTakesEveryJobsOrphansOfThisUserOnly) {
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getpid());
  for (const std::string& name :
       std::vector<std::string>{"weft-ja-world-r0-p" + dead, "weft-jb-world-r1-p" + dead,
                                "weft-jc-world-r0-p" + live, "other-jd-world-r0-p" + dead})
    touch(name);
  fs::create_directory(dir_ / ("weft-je-world-r0-p" + dead));  // not a file of ours
  bool root = ::geteuid() == 0;
  const passwd* nobody = ::getpwnam("nobody");
  std::string foreign = "weft-jf-world-r0-p" + dead;
  if (root && nobody) {
    touch(foreign);
    ASSERT_EQ(::chown((dir_ / foreign).c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  }
  EXPECT_EQ(sorted(sweep_orphaned_shm_files(dir_)),
            (std::vector<std::string>{"weft-ja-world-r0-p" + dead, "weft-jb-world-r1-p" + dead}));
  EXPECT_TRUE(fs::exists(dir_ / ("weft-jc-world-r0-p" + live)));
  EXPECT_TRUE(fs::exists(dir_ / ("other-jd-world-r0-p" + dead)));
  EXPECT_TRUE(fs::exists(dir_ / ("weft-je-world-r0-p" + dead)));
  if (root && nobody) {
    EXPECT_TRUE(fs::exists(dir_ / foreign)) << "another user's file was swept";
  }
  EXPECT_TRUE(sweep_orphaned_shm_files(dir_ / "missing").empty());  // no throw
}

}  // namespace
}  // namespace weft::launcher
