#include "launcher/program_path.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/error.h"

namespace weft::launcher {
namespace {

namespace fs = std::filesystem;

class ProgramPath : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-program-path-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "a");
    fs::create_directories(dir_ / "b");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string make_file(const fs::path& path, mode_t mode) {
    std::ofstream(path) << "#!/bin/sh\n";
    ::chmod(path.c_str(), mode);
    return path.string();
  }
  std::string error_of(const std::string& name, const std::string& path) {
    try {
      resolve_program(name, path);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      return e.what();
    }
    ADD_FAILURE() << "resolving '" << name << "' did not fail";
    return "";
  }

  fs::path dir_;
};

TEST_F(ProgramPath, FindsTheFirstExecutableOnPath) {
  make_file(dir_ / "a" / "tool", 0644);  // not executable: skipped
  std::string exe = make_file(dir_ / "b" / "tool", 0755);
  std::string path = (dir_ / "a").string() + ":" + (dir_ / "b").string();
  EXPECT_EQ(resolve_program("tool", path), exe);
}

TEST_F(ProgramPath, ExplicitPathsAreUsedAsGiven) {
  std::string exe = make_file(dir_ / "prog", 0755);
  EXPECT_EQ(resolve_program(exe, "/nonexistent"), exe);
  EXPECT_EQ(resolve_program("/bin/sh", ""), "/bin/sh");
}

TEST_F(ProgramPath, NotFoundOnPathSaysWhereItLooked) {
  std::string path = (dir_ / "a").string();
  std::string m = error_of("no-such-tool", path);
  EXPECT_NE(m.find("program 'no-such-tool' was not found on PATH (" + path + ")"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("./no-such-tool"), std::string::npos) << m;
}

TEST_F(ProgramPath, OnlyANonExecutableMatchSuggestsChmod) {
  std::string file = make_file(dir_ / "a" / "script", 0644);
  std::string m = error_of("script", (dir_ / "a").string());
  EXPECT_NE(m.find(file + " is not executable"), std::string::npos) << m;
  EXPECT_NE(m.find("chmod +x"), std::string::npos) << m;
}

TEST_F(ProgramPath, ExplicitPathErrors) {
  std::string missing = (dir_ / "missing").string();
  std::string m = error_of(missing, "");
  EXPECT_NE(m.find("cannot run '" + missing + "': No such file or directory"), std::string::npos)
      << m;
  m = error_of((dir_ / "a").string() + "/", "");
  EXPECT_NE(m.find("is a directory"), std::string::npos) << m;
  std::string plain = make_file(dir_ / "plain", 0644);
  m = error_of(plain, "");
  EXPECT_NE(m.find("not executable; make it so with: chmod +x " + plain), std::string::npos) << m;
}

TEST_F(ProgramPath, EmptyPathEntryMeansTheCurrentDirectory) {
  make_file(dir_ / "here", 0755);
  fs::path old = fs::current_path();
  fs::current_path(dir_);
  std::string found = resolve_program("here", "/nonexistent::/also-not");
  fs::current_path(old);
  EXPECT_EQ(found, "./here");
}

}  // namespace
}  // namespace weft::launcher
