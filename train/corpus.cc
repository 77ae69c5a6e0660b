#include "train/corpus.h"

#include <cctype>
#include <fstream>
#include <iterator>

#include "runtime/checksum.h"
#include "runtime/error.h"

namespace weft::train {
namespace {

// SplitMix64: a fixed, portable mixing function, so batches are identical on every machine.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void copy_sequence(const std::vector<uint8_t>& bytes, size_t start, int seq, int32_t* in,
                   int32_t* tgt) {
  for (int t = 0; t < seq; t++) {
    in[t] = bytes[start + t];
    tgt[t] = bytes[start + t + 1];
  }
}

}  // namespace

std::string generated_corpus() {
  static const char* subjects[] = {"the cat", "a dog", "the old man", "my sister", "the bird",
                                   "a child", "the teacher", "our neighbour", "the fox", "she",
                                   "he", "the farmer", "a sailor", "the queen", "the robot"};
  static const char* verbs[] = {"sees", "likes", "follows", "finds", "paints", "remembers",
                                "carries", "watches", "builds", "opens", "hears", "greets"};
  static const char* objects[] = {"the river", "a red ball", "the small house", "an apple",
                                  "the garden", "a letter", "the moon", "a song", "the door",
                                  "a book", "the market", "the blue boat", "a window"};
  static const char* endings[] = {" in the morning", " at night", " with care", "", " again",
                                  " near the hill", " every day", ""};
  std::string text;
  text.reserve(1 << 20);
  uint64_t state = 42;
  auto pick = [&](size_t n) { return static_cast<size_t>((state = mix(state)) % n); };
  while (text.size() < (1u << 20)) {
    std::string s = subjects[pick(std::size(subjects))];
    s += " ";
    s += verbs[pick(std::size(verbs))];
    s += " ";
    s += objects[pick(std::size(objects))];
    s += endings[pick(std::size(endings))];
    s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    text += s + (pick(5) == 0 ? ".\n" : ". ");
  }
  return text;
}

Corpus Corpus::load(const std::string& path, int seq) {
  Corpus c;
  if (path.empty()) {
    std::string text = generated_corpus();
    c.bytes_.assign(text.begin(), text.end());
    c.source_ = "built-in corpus";
  } else {
    std::ifstream f(path, std::ios::binary);
    if (!f)
      throw Error(ErrorCode::InvalidArgument,
                  "--data " + path + ": cannot open the file; give a readable text file");
    c.bytes_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    c.source_ = path;
  }
  c.split_ = c.bytes_.size() - c.bytes_.size() / 10;
  size_t need = static_cast<size_t>(seq) + 1;
  if (c.split_ < need * 2 || c.bytes_.size() - c.split_ < need)
    throw Error(ErrorCode::InvalidArgument,
                "--data " + c.source_ + ": " + std::to_string(c.bytes_.size()) +
                    " bytes is too short for --seq " + std::to_string(seq) + " (need at least " +
                    std::to_string(need * 20) + ")");
  return c;
}

uint64_t Corpus::checksum() const { return weft::checksum(bytes_.data(), bytes_.size()); }

void Corpus::train_batch(uint64_t step, int batch, int first, int count, int seq,
                         int32_t* inputs, int32_t* targets) const {
  size_t starts = split_ - static_cast<size_t>(seq) - 1;  // valid start offsets
  for (int k = 0; k < count; k++) {
    uint64_t id = step * static_cast<uint64_t>(batch) + static_cast<uint64_t>(first + k);
    size_t start = static_cast<size_t>(mix(id) % starts);
    copy_sequence(bytes_, start, seq, inputs + static_cast<size_t>(k) * seq,
                  targets + static_cast<size_t>(k) * seq);
  }
}

void Corpus::eval_batch(uint64_t index, int count, int seq, int32_t* inputs,
                        int32_t* targets) const {
  size_t per = static_cast<size_t>(seq);
  size_t slots = (bytes_.size() - split_ - 1) / per;  // non-overlapping held-out windows
  for (int k = 0; k < count; k++) {
    size_t start = split_ + ((index + static_cast<uint64_t>(k)) % slots) * per;
    copy_sequence(bytes_, start, seq, inputs + static_cast<size_t>(k) * seq,
                  targets + static_cast<size_t>(k) * seq);
  }
}

}  // namespace weft::train
