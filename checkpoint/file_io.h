#pragma once
// The file operations a checkpoint is made of: a file written so that a crash leaves either the
// old contents or the new (temporary file, fsync, rename, fsync of the directory), whole-file
// reads, and reads of byte ranges (pread) from a file kept open. Every failure is an Error
// naming the file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "runtime/unique_fd.h"

namespace weft::checkpoint {

namespace fs = std::filesystem;

// Replaces `path` with `contents` atomically: readers see the old file or the new one, never
// a part, even if the process or the machine dies in between.
void write_file_atomically(const fs::path& path, const std::string& contents);
// Makes the directory's entries (files created or renamed in it) durable.
void fsync_directory(const fs::path& dir);
// The whole file; Error(Io) naming it when it cannot be read.
std::string read_whole_file(const fs::path& path);

// A file opened for reading byte ranges.
class ReadOnlyFile {
 public:
  explicit ReadOnlyFile(fs::path path);  // Error(Io) naming the file when it cannot be opened
  const fs::path& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Exactly `bytes` bytes from `offset`; Error(Corrupt) naming the file when it ends sooner.
  void read(uint64_t offset, size_t bytes, void* out) const;

 private:
  fs::path path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
};

}  // namespace weft::checkpoint
