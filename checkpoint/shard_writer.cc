#include "checkpoint/shard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "checkpoint/checksum.h"
#include "checkpoint/file_io.h"
#include "checkpoint/safetensors.h"
#include "runtime/error.h"
#include "runtime/unique_fd.h"

namespace weft::checkpoint {
namespace {

// Writes through a buffer of one block, so that each block's checksum is taken once, from
// memory, as it goes out.
class BlockWriter {
 public:
  BlockWriter(fs::path path, uint64_t block_bytes)
      : path_(std::move(path)), block_bytes_(block_bytes) {
    fd_ = UniqueFd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd_) throw_errno("creating " + path_.string());
    buffer_.reserve(block_bytes_);
  }
  void write(const void* data, size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      size_t n = std::min<size_t>(bytes, block_bytes_ - buffer_.size());
      buffer_.insert(buffer_.end(), p, p + n);
      p += n;
      bytes -= n;
      if (buffer_.size() == block_bytes_) flush();
    }
  }
  // Writes the last block and makes the file durable.
  void finish(ShardReport& report) {
    flush();
    if (::fsync(fd_.get()) != 0) throw_errno("fsync of " + path_.string());
    report.bytes = written_;
    report.xxh64 = whole_.digest();
    report.block_bytes = block_bytes_;
    report.blocks = std::move(blocks_);
  }

 private:
  void flush() {
    if (buffer_.empty()) return;
    blocks_.push_back(xxh64(buffer_.data(), buffer_.size()));
    whole_.update(buffer_.data(), buffer_.size());
    const char* p = buffer_.data();
    size_t left = buffer_.size();
    while (left > 0) {
      ssize_t n = ::write(fd_.get(), p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("writing " + path_.string());
      p += n;
      left -= static_cast<size_t>(n);
    }
    written_ += buffer_.size();
    buffer_.clear();
  }

  fs::path path_;
  uint64_t block_bytes_;
  UniqueFd fd_;
  std::vector<char> buffer_;
  std::vector<uint64_t> blocks_;
  Xxh64Stream whole_;
  uint64_t written_ = 0;
};

}  // namespace

ShardReport write_shard(const fs::path& step_dir, int rank, int64_t step,
                        const std::vector<PieceData>& pieces, uint64_t block_bytes) {
  std::error_code ec;
  fs::create_directories(step_dir, ec);
  if (ec)
    throw Error(ErrorCode::Io,
                "cannot create checkpoint directory " + step_dir.string() + ": " + ec.message());
  ShardReport report;
  report.rank = rank;
  report.file = shard_file_name(rank);
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata = {
      {"format", kFormat}, {"step", std::to_string(step)}, {"rank", std::to_string(rank)}};
  uint64_t at = 0;
  for (const PieceData& p : pieces) {
    const uint64_t bytes = p.piece.elements() * sizeof(float);
    entries.push_back({p.piece.entry_name(), "F32", p.piece.entry_shape(), at, at + bytes});
    metadata[p.piece.entry_name()] = to_json(p.piece).dump();
    at += bytes;
  }
  const std::string header = encode_safetensors_header(entries, metadata);
  for (size_t i = 0; i < pieces.size(); i++)
    report.pieces.push_back({pieces[i].piece, header.size() + entries[i].begin});

  BlockWriter out(step_dir / report.file, block_bytes);
  out.write(header.data(), header.size());
  for (const PieceData& p : pieces) out.write(p.data, p.piece.elements() * sizeof(float));
  out.finish(report);
  fsync_directory(step_dir);
  return report;
}

}  // namespace weft::checkpoint
