#include "comm/wire.h"

#include <gtest/gtest.h>

#include "runtime/error.h"

namespace weft::comm {
namespace {

Fingerprint fp(uint64_t seq, size_t count) {
  return Fingerprint{seq, OpKind::allreduce, DType::f32, ReduceOp::sum, -1, count};
}

TEST(Wire, HeaderRoundTripsTheFingerprint) {
  Fingerprint a{42, OpKind::broadcast, DType::bf16, ReduceOp::max, 3, 1000};
  FrameHeader h = data_header(a, 2000);
  EXPECT_EQ(fingerprint_of(h), a);
  EXPECT_EQ(h.bytes, 2000u);
  EXPECT_NO_THROW(check_frame(h, a, 2000, 1, 0, "test"));
}

TEST(Wire, ExchangeFramesAndAbortCodesRoundTrip) {
  Fingerprint x{9, OpKind::reduce, DType::u8, ReduceOp::sum, -1, 0};
  x.exchange = true;
  EXPECT_EQ(fingerprint_of(data_header(x, 64)), x);
  EXPECT_EQ(decode(encode(x)), x);
  EXPECT_EQ(x.describe(), "reduce #9 (its fingerprint exchange)");
  for (ErrorCode c : {ErrorCode::InvalidArgument, ErrorCode::Aborted, ErrorCode::Timeout})
    EXPECT_EQ(decode_abort_code(abort_header(10, c).abort_code), c);
  EXPECT_EQ(decode_abort_code(0), ErrorCode::Aborted);    // older peers send 0
  EXPECT_EQ(decode_abort_code(999), ErrorCode::Aborted);  // and nonsense is Aborted too
}

TEST(Wire, MismatchNamesBothRanksAndValues) {
  FrameHeader h = data_header(fp(7, 100), 400);
  try {
    check_frame(h, fp(7, 99), 396, 1, 0, "test");
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(m.find("rank 0 called allreduce #7 (f32 x 100, sum)"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1 called allreduce #7 (f32 x 99, sum)"), std::string::npos) << m;
  }
}

TEST(Wire, SequenceMismatchIsCaught) {
  EXPECT_THROW(check_frame(data_header(fp(8, 10), 40), fp(7, 10), 40, 1, 0, "t"), Error);
}

TEST(Wire, BadMagicIsCorrupt) {
  FrameHeader h = data_header(fp(1, 1), 4);
  h.magic = 0;
  try {
    check_frame(h, fp(1, 1), 4, 1, 0, "t");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Corrupt);
  }
}

TEST(Wire, SendPairsWithRecv) {
  Fingerprint send{1, OpKind::send, DType::i32, ReduceOp::sum, 1, 5};
  Fingerprint recv{1, OpKind::recv, DType::i32, ReduceOp::sum, 0, 5};
  EXPECT_NO_THROW(check_frame(data_header(send, 20), recv, 20, 1, 0, "t"));
  recv.count = 6;
  EXPECT_THROW(check_frame(data_header(send, 20), recv, 24, 1, 0, "t"), Error);
}

}  // namespace
}  // namespace weft::comm
