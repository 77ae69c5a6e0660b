#pragma once
// Byte-level training data. Tokens are the bytes of a UTF-8 text (vocabulary 256), so any
// language trains. With no file, a deterministic corpus is generated in code (no download).
// The last tenth of the text is held out for evaluation and never trained on.
//
// Batches are a pure function of a position: sequence k of the global batch at step s starts
// at a pseudo-random offset derived from s*batch + k. A checkpoint only needs the step number
// to replay exactly the batches a run would have seen.
#include <cstdint>
#include <string>
#include <vector>

namespace weft::train {

class Corpus {
 public:
  // Reads `path`, or generates the built-in corpus when path is empty. Throws InvalidArgument
  // when the file is missing or too short for `seq`.
  static Corpus load(const std::string& path, int seq);

  size_t train_tokens() const { return split_; }
  size_t eval_tokens() const { return bytes_.size() - split_; }
  const std::string& source() const { return source_; }
  // Of the whole text: ranks compare it, since each may read its own copy of --data.
  uint64_t checksum() const;

  // Fills inputs and targets ([count, seq] each, targets shifted by one) with sequences
  // first..first+count-1 of global batch `step` (batch sequences per step).
  void train_batch(uint64_t step, int batch, int first, int count, int seq, int32_t* inputs,
                   int32_t* targets) const;
  // Held-out sequence `index` (cycling through the eval split in order).
  void eval_batch(uint64_t index, int count, int seq, int32_t* inputs, int32_t* targets) const;

 private:
  std::vector<uint8_t> bytes_;
  size_t split_ = 0;
  std::string source_;
};

// The generated corpus: simple English-like sentences from a small grammar, seeded, ~1 MiB.
std::string generated_corpus();

}  // namespace weft::train
