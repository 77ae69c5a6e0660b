#include "runtime/error.h"

#include <gtest/gtest.h>

namespace weft {
namespace {

TEST(Error, WhatStartsWithTheCodeAndMessageIsTheTextWithoutIt) {
  Error e(ErrorCode::InvalidArgument, "--lr must be positive");
  EXPECT_STREQ(e.what(), "InvalidArgument: --lr must be positive");
  EXPECT_EQ(e.message(), "--lr must be positive");
  // Quoted under another code, the inner text keeps only its own words.
  Error wrapped(ErrorCode::InvalidArgument, "rank 1: " + e.message());
  EXPECT_STREQ(wrapped.what(), "InvalidArgument: rank 1: --lr must be positive");
}

TEST(Error, MessageIsExactlyWhatWasGiven) {
  // Text that happens to start with another code's name is the message's own, kept whole.
  EXPECT_EQ(Error(ErrorCode::Timeout, "PeerLost: rank 2").message(), "PeerLost: rank 2");
  EXPECT_EQ(Error(ErrorCode::Io, "").message(), "");
}

}  // namespace
}  // namespace weft
