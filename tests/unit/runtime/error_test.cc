#include "runtime/error.h"

#include <gtest/gtest.h>

namespace weft {
namespace {

TEST(Error, WhatStartsWithTheCodeAndStripCodePrefixRemovesItOnce) {
  Error e(ErrorCode::InvalidArgument, "--lr must be positive");
  EXPECT_STREQ(e.what(), "InvalidArgument: --lr must be positive");
  EXPECT_EQ(strip_code_prefix(e), "--lr must be positive");
  // Quoted under another code, the inner text keeps only its own words.
  Error wrapped(ErrorCode::InvalidArgument, "rank 1: " + strip_code_prefix(e));
  EXPECT_STREQ(wrapped.what(), "InvalidArgument: rank 1: --lr must be positive");
}

TEST(Error, StripCodePrefixLeavesOtherTextAlone) {
  // Only the error's own code is a prefix; a message that happens to start with another
  // code's name, or with the name but no ": ", is left as it is.
  EXPECT_EQ(strip_code_prefix(Error(ErrorCode::Timeout, "PeerLost: rank 2")), "PeerLost: rank 2");
  EXPECT_EQ(strip_code_prefix(Error(ErrorCode::Io, "")), "");
}

}  // namespace
}  // namespace weft
