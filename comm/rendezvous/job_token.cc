#include "comm/rendezvous/job_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/random.h"
#include "runtime/socket.h"
#include "runtime/unique_fd.h"

namespace weft::comm {
namespace {

constexpr char kSecretName[] = "secret";
constexpr size_t kSecretBytes = 16;
constexpr size_t kMaxSecretChars = 256;

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Refuses what another user could have made or can read: the secret would not be this user's.
void check_private(int fd, const std::string& path, bool directory) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("fstat(" + path + ")");
  const char* kind = directory ? "directory" : "file";
  std::string fix = " Remove it, or give every rank the same WEFT_TOKEN (or another TMPDIR).";
  if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    throw Error(ErrorCode::InvalidArgument,
                "weft's per-user secret " + path + " is not a plain " + kind + "." + fix);
  if (st.st_uid != ::geteuid())
    throw Error(ErrorCode::InvalidArgument,
                "weft's per-user secret " + std::string(kind) + " " + path + " belongs to uid " +
                    std::to_string(st.st_uid) + ", not to this process's uid " +
                    std::to_string(::geteuid()) + ": another user made it." + fix);
  if ((st.st_mode & 077) != 0)
    throw Error(ErrorCode::InvalidArgument, "weft's per-user secret " + std::string(kind) + " " +
                                                path + " has mode " + octal_mode(st.st_mode) +
                                                ": other users may read it." + fix);
}

// The secret in the file, or "" when the file does not exist yet.
std::string read_secret(int dir_fd, const std::string& path) {
  UniqueFd fd(::openat(dir_fd, kSecretName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return "";
    throw_errno("opening weft's per-user secret " + path);
  }
  check_private(fd.get(), path, false);
  char buf[kMaxSecretChars + 2];
  size_t got = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("reading weft's per-user secret " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (got == sizeof buf) break;
  }
  std::string secret(buf, got);
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  bool printable = !secret.empty() && secret.size() <= kMaxSecretChars;
  for (char c : secret) printable = printable && std::isgraph(static_cast<unsigned char>(c));
  if (!printable)
    throw Error(ErrorCode::InvalidArgument,
                "weft's per-user secret " + path +
                    " is not a token (1 to 256 printable characters); remove it and weft makes "
                    "a new one");
  return secret;
}

// Writes a fresh secret under a temporary name, then links it into place: a reader sees the
// whole secret or none, and of two ranks creating it at once, the first link wins.
void create_secret(int dir_fd, const std::string& dir) {
  std::string temp = std::string(kSecretName) + ".tmp" + random_hex(8);  // unique per caller
  UniqueFd fd(
      ::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw_errno("creating weft's per-user secret in " + dir);
  std::string secret = random_hex(kSecretBytes);
  bool written =
      ::write(fd.get(), secret.data(), secret.size()) == static_cast<ssize_t>(secret.size()) &&
      ::fsync(fd.get()) == 0;
  int error = written ? 0 : errno;
  if (written && ::linkat(dir_fd, temp.c_str(), dir_fd, kSecretName, 0) != 0 && errno != EEXIST)
    error = errno;  // EEXIST: another rank's secret won, and is the one everyone reads
  ::unlinkat(dir_fd, temp.c_str(), 0);
  if (error != 0) {
    errno = error;
    throw_errno("creating weft's per-user secret in " + dir);
  }
}

}  // namespace

bool same_token(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); i++)
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

std::string user_secret_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  return base + "/weft-" + std::to_string(::geteuid());
}

std::string user_private_dir() {
  const std::string dir = user_secret_dir();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw_errno("creating weft's per-user directory " + dir);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_fd) throw_errno("opening weft's per-user directory " + dir + " (a symlink?)");
  check_private(dir_fd.get(), dir, true);
  return dir;
}

std::string user_secret(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw_errno("creating " + dir + " for weft's per-user secret");
  // O_NOFOLLOW: a symlink planted at `dir` by another user is refused, not followed.
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_fd)
    throw Error(ErrorCode::InvalidArgument,
                "weft's per-user secret directory " + dir + " cannot be opened (" +
                    std::strerror(errno) +
                    "): a symlink or another file is in its place. Remove it, or give every rank "
                    "the same WEFT_TOKEN (or another TMPDIR).");
  check_private(dir_fd.get(), dir, true);
  const std::string path = dir + "/" + kSecretName;
  std::string secret = read_secret(dir_fd.get(), path);
  if (!secret.empty()) return secret;
  create_secret(dir_fd.get(), dir);
  return read_secret(dir_fd.get(), path);
}

std::string coordinator_token(const std::string& host, const std::string& place) {
  std::string token = env::get("WEFT_TOKEN");
  if (!token.empty()) return token;
  if (is_loopback_address(host)) return user_secret(user_secret_dir());
  if (env::get("WEFT_INSECURE") == "1") {
    WEFT_WARN("WEFT_INSECURE=1: " << place
                                  << " lets other machines reach this job's coordinator and it "
                                     "has no WEFT_TOKEN, so anyone who can reach it can join "
                                     "the job and read its data");
    return "";
  }
  throw Error(ErrorCode::InvalidArgument,
              place +
                  " lets other machines reach the job's coordinator, so the job needs a token: "
                  "run `export WEFT_TOKEN=$(openssl rand -hex 16)` once and give every node that "
                  "same value (or set WEFT_INSECURE=1 to run without one on a trusted network)");
}

MasterStoreAccess master_store_access(const World& w) {
  MasterStoreAccess access;
  access.bind_host = env::get("WEFT_STORE_BIND");
  if (access.bind_host.empty()) access.bind_host = w.master_addr;
  access.token = env::get("WEFT_TOKEN");
  if (!access.token.empty()) return access;

  const bool here = is_local_address(w.master_addr);
  if (here && w.local_size == w.size) {
    const std::string dir = user_secret_dir();
    access.token = user_secret(dir);
    access.secret_path = dir + "/" + kSecretName;
    return access;
  }
  const std::string store = w.master_addr + ":" + std::to_string(w.master_port + 1);
  if (env::get("WEFT_INSECURE") == "1") {
    WEFT_WARN(
        "WEFT_INSECURE=1: this job spans machines and has no WEFT_TOKEN, so anyone who can "
        "reach its store at "
        << store << " or its ranks' ports can join it and read its data");
    return access;
  }
  const bool slurm = w.launcher == "slurm" || w.launcher == "pmix";
  std::string why;
  if (here)
    why = (slurm ? "SLURM_NTASKS=" + std::to_string(w.size) + " but " +
                       std::to_string(w.local_size) + " on this node"
                 : "WORLD_SIZE=" + std::to_string(w.size) +
                       " but LOCAL_WORLD_SIZE=" + std::to_string(w.local_size)) +
          ": ranks on other machines";
  else
    why = (w.master_from_slurm
               ? "rank 0's host " + w.master_addr + " (the first of SLURM_STEP_NODELIST)"
               : "MASTER_ADDR=" + w.master_addr) +
          " is not an address of this machine";
  throw Error(ErrorCode::InvalidArgument,
              "rank " + std::to_string(w.rank) + ": this job spans machines (" + why +
                  ") and WEFT_TOKEN is not set, so anyone who can reach its store at " + store +
                  " could join it as a rank and read its data. Before the launcher, run "
                  "`export WEFT_TOKEN=$(openssl rand -hex 16)` once and give every node that "
                  "same value (or set WEFT_INSECURE=1 to run without one on a trusted network)");
}

}  // namespace weft::comm
