#include "train/corpus.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "runtime/error.h"

namespace weft::train {
namespace {

TEST(Corpus, GeneratedCorpusIsDeterministicText) {
  std::string a = generated_corpus(), b = generated_corpus();
  EXPECT_EQ(a, b);
  EXPECT_GE(a.size(), 1u << 20);
  EXPECT_NE(a.find(". "), std::string::npos);
}

TEST(Corpus, BatchesArePureFunctionsOfTheStepAndTargetsAreShifted) {
  Corpus c = Corpus::load("", 16);
  std::vector<int32_t> in1(4 * 16), tg1(4 * 16), in2(4 * 16), tg2(4 * 16);
  c.train_batch(7, 8, 4, 4, 16, in1.data(), tg1.data());
  c.train_batch(7, 8, 4, 4, 16, in2.data(), tg2.data());
  EXPECT_EQ(in1, in2);
  for (int t = 0; t + 1 < 16; t++) EXPECT_EQ(tg1[t], in1[t + 1]);
  // Ranks reading slices of the same global batch see what one reader of the whole batch sees.
  std::vector<int32_t> whole(8 * 16), wt(8 * 16);
  c.train_batch(7, 8, 0, 8, 16, whole.data(), wt.data());
  EXPECT_TRUE(std::equal(in1.begin(), in1.end(), whole.begin() + 4 * 16));
  // Another step gives other sequences.
  c.train_batch(8, 8, 4, 4, 16, in2.data(), tg2.data());
  EXPECT_NE(in1, in2);
}

TEST(Corpus, EvalSequencesComeFromTheHeldOutTail) {
  std::string path = ::testing::TempDir() + "/weft_corpus_test.txt";
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 1000; i++) f << (i < 900 ? 'a' : 'z');  // held-out tenth is all 'z'
  }
  Corpus c = Corpus::load(path, 8);
  EXPECT_EQ(c.train_tokens(), 900u);
  std::vector<int32_t> in(3 * 8), tg(3 * 8);
  c.eval_batch(0, 3, 8, in.data(), tg.data());
  for (int32_t v : in) EXPECT_EQ(v, 'z');
  c.train_batch(0, 64, 0, 3, 8, in.data(), tg.data());
  for (int32_t v : in) EXPECT_EQ(v, 'a');
  std::remove(path.c_str());
}

TEST(Corpus, MissingOrShortFilesAreClearErrors) {
  EXPECT_THROW(Corpus::load("/nonexistent/weft.txt", 8), Error);
  std::string path = ::testing::TempDir() + "/weft_corpus_short.txt";
  { std::ofstream(path) << "tiny"; }
  EXPECT_THROW(Corpus::load(path, 64), Error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace weft::train
