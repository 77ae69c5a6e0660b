#include "checkpoint/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/error.h"

namespace weft::checkpoint {
namespace {

void write_all(int fd, const char* data, size_t bytes, const fs::path& path) {
  while (bytes > 0) {
    ssize_t n = ::write(fd, data, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("writing " + path.string());
    data += n;
    bytes -= static_cast<size_t>(n);
  }
}

}  // namespace

void fsync_directory(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("opening directory " + dir.string());
  if (::fsync(fd.get()) != 0) throw_errno("fsync of directory " + dir.string());
}

void write_file_atomically(const fs::path& path, const std::string& contents) {
  // The temporary name is unique per process, so two writers never share a temporary file;
  // the rename decides which whole file stays.
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw_errno("creating " + tmp.string());
    write_all(fd.get(), contents.data(), contents.size(), tmp);
    if (::fsync(fd.get()) != 0) throw_errno("fsync of " + tmp.string());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    throw_errno("renaming " + tmp.string() + " to " + path.string());
  }
  fsync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

std::string read_whole_file(const fs::path& path) {
  ReadOnlyFile file(path);
  std::string out(file.size(), '\0');
  file.read(0, out.size(), out.data());
  return out;
}

ReadOnlyFile::ReadOnlyFile(fs::path path) : path_(std::move(path)) {
  fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd_) throw_errno("opening " + path_.string());
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw_errno("stat of " + path_.string());
  size_ = static_cast<uint64_t>(st.st_size);
}

void ReadOnlyFile::read(uint64_t offset, size_t bytes, void* out) const {
  auto* p = static_cast<char*>(out);
  while (bytes > 0) {
    ssize_t n = ::pread(fd_.get(), p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("reading " + path_.string());
    if (n == 0)
      throw Error(ErrorCode::Corrupt, path_.string() + " ends at byte " + std::to_string(offset) +
                                          ", before the " + std::to_string(bytes) +
                                          " more bytes expected there (truncated?)");
    p += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
}

}  // namespace weft::checkpoint
