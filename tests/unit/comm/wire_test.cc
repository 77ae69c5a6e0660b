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

// A stall notice: rank 0 waits in its first recv from rank 1, having sent rank 1 nothing.
FrameHeader notice_from_0(uint64_t sent_to_1) {
  Fingerprint waits{1, OpKind::recv, DType::f32, ReduceOp::sum, 1, 2};
  waits.stalled = true;
  FrameHeader h = data_header(waits, 0);
  h.abort_code = static_cast<uint32_t>(sent_to_1);
  return h;
}

TEST(Wire, AStallNoticeRoundTripsAndSaysWhatTheSenderSent) {
  SendLedger ledger(2);
  Fingerprint send{3, OpKind::send, DType::f32, ReduceOp::sum, 1, 2};
  EXPECT_FALSE(is_stall_notice(ledger.header(send, 8, 1)));
  EXPECT_EQ(ledger.sent(1), 3u);
  Fingerprint waits{1, OpKind::recv, DType::f32, ReduceOp::sum, 1, 2};
  waits.stalled = true;
  FrameHeader h = ledger.header(waits, 0, 1);
  EXPECT_TRUE(is_stall_notice(h));
  EXPECT_EQ(h.abort_code, 3u);
  EXPECT_EQ(fingerprint_of(h), waits);
  EXPECT_EQ(decode(encode(waits)), waits);
}

TEST(Wire, AStallNoticeIsStaleOnceItsMessageWasSent) {
  Fingerprint want{1, OpKind::recv, DType::f32, ReduceOp::sum, 0, 2};
  EXPECT_EQ(judge_notice(notice_from_0(0), want, 1, 1, 0, "t"), NoticeVerdict::stale);
  // The sender had posted the message this rank waits for before it stalled: on its way.
  EXPECT_EQ(judge_notice(notice_from_0(1), want, 0, 1, 0, "t"), NoticeVerdict::early);
}

TEST(Wire, ReceivesWaitingOnEachOtherNameBothCalls) {
  Fingerprint want{1, OpKind::recv, DType::i32, ReduceOp::sum, 0, 5};
  Fingerprint collective{4, OpKind::allreduce, DType::f32, ReduceOp::sum, -1, 2};
  for (const Fingerprint& w : {want, collective}) {
    try {
      judge_notice(notice_from_0(0), w, 0, 1, 0, "t");
      ADD_FAILURE() << "no deadlock reported against " << w.describe();
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(m.find("rank 0 waits in recv #1 (f32 x 2, peer 1)"), std::string::npos) << m;
      EXPECT_NE(m.find("rank 1 waits in " + w.describe()), std::string::npos) << m;
    }
  }
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
