#include "launcher/line_prefixer.h"

#include <gtest/gtest.h>

#include <string>

namespace weft::launcher {
namespace {

TEST(LinePrefixer, EmitsOnlyCompleteLines) {
  LinePrefixer p(rank_prefix(2, true));
  std::string out;
  p.feed("hel", out);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(p.has_partial_line());
  p.feed("lo\nwor", out);
  EXPECT_EQ(out, "[rank 2] hello\n");
  p.feed("ld\n\nx\n", out);
  EXPECT_EQ(out, "[rank 2] hello\n[rank 2] world\n[rank 2] \n[rank 2] x\n");
  EXPECT_FALSE(p.has_partial_line());
  p.finish(out);  // nothing pending: nothing added
  EXPECT_EQ(out, "[rank 2] hello\n[rank 2] world\n[rank 2] \n[rank 2] x\n");
}

TEST(LinePrefixer, FinishFlushesTheUnfinishedLastLine) {
  LinePrefixer p(rank_prefix(0, true));
  std::string out;
  p.feed("done\nno newline", out);
  p.finish(out);
  EXPECT_EQ(out, "[rank 0] done\n[rank 0] no newline\n");
}

TEST(LinePrefixer, BytePerByteMatchesOneChunk) {
  std::string text = "a\nbb\r\nccc\n\tdd";
  LinePrefixer whole(rank_prefix(7, true)), bytewise(rank_prefix(7, true));
  std::string a, b;
  whole.feed(text, a);
  for (char c : text) bytewise.feed(std::string_view(&c, 1), b);
  whole.finish(a);
  bytewise.finish(b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, "[rank 7] a\n[rank 7] bb\r\n[rank 7] ccc\n[rank 7] \tdd\n");
}

TEST(LinePrefixer, AnEndlessLineIsCutInsteadOfBufferedForever) {
  LinePrefixer p(rank_prefix(1, true));
  std::string out;
  p.feed(std::string(LinePrefixer::kMaxLineBytes + 10, 'x'), out);
  EXPECT_EQ(out, "[rank 1] " + std::string(LinePrefixer::kMaxLineBytes + 10, 'x') + "\n");
}

TEST(LinePrefixer, UntaggedOutputPassesThrough) {
  EXPECT_EQ(rank_prefix(3, false), "");
  LinePrefixer p(rank_prefix(3, false));
  std::string out;
  p.feed("plain\n", out);
  EXPECT_EQ(out, "plain\n");
}

}  // namespace
}  // namespace weft::launcher
