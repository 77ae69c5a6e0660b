// Communicator::batch_p2p and send_recv over the in-process transport: a ring exchange of
// 16 MiB each way, the per-peer order across batches and plain send/recv, mismatches named on
// both sides, and arguments refused before any message moves. The multi-process tests run the
// ring over tcp and shm (where send-then-recv of 16 MiB deadlocks), and mpi_test over mpirun.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/inproc_group.h"
#include "tests/support/stall_cases.h"

namespace weft::testing {
namespace {

using comm::Communicator;
using comm::P2P;

comm::CommOptions options() {
  comm::CommOptions o;
  o.timeout = std::chrono::seconds(20);
  return o;
}

Tensor f32(std::vector<float>& v) { return Tensor::flat(v.data(), DType::f32, v.size()); }

class BatchP2P : public ::testing::TestWithParam<int> {};

TEST_P(BatchP2P, RingExchangeOf16MiBEachWay) {
  run_inproc_group(GetParam(), options(), [&](Communicator& comm) {
    for (const auto& f : check_batch_p2p(comm, (16u << 20) / sizeof(float))) ADD_FAILURE() << f;
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, BatchP2P, ::testing::Values(2, 3, 4),
                         [](const auto& info) { return std::to_string(info.param) + "ranks"; });

// Rank 0 sends four messages in three calls, rank 1 receives them in three other calls: each
// lands in the buffer of the same position, whatever mix of calls either side used.
TEST(BatchP2PInproc, MessagesToOnePeerKeepCallOrder) {
  run_inproc_group(2, options(), [&](Communicator& comm) {
    std::vector<std::vector<float>> m;
    for (int k = 0; k < 4; k++) m.emplace_back(5 + k, comm.rank() == 0 ? 10.0f * k : -1.0f);
    if (comm.rank() == 0) {
      comm.send(f32(m[0]), 1).wait();
      const P2P two[] = {{P2P::send, f32(m[1]), 1}, {P2P::send, f32(m[2]), 1}};
      comm.batch_p2p(two).wait();
      comm.send(f32(m[3]), 1).wait();
    } else {
      const P2P two[] = {{P2P::recv, f32(m[0]), 0}, {P2P::recv, f32(m[1]), 0}};
      comm.batch_p2p(two).wait();
      comm.recv(f32(m[2]), 0).wait();
      const P2P one[] = {{P2P::recv, f32(m[3]), 0}};
      comm.batch_p2p(one).wait();
      for (int k = 0; k < 4; k++)
        for (float x : m[k]) ASSERT_EQ(x, 10.0f * k) << "message " << k;
    }
  });
}

TEST(BatchP2PInproc, AnEmptyBatchCompletes) {
  run_inproc_group(2, options(), [&](Communicator& comm) {
    comm.batch_p2p({}).wait();
    comm.barrier().wait();
  });
}

// The receiver compares each message's fingerprint with its own: a count that differs fails it
// with InvalidArgument naming both, and the sender hears of it at its next op.
TEST(BatchP2PInproc, AMismatchedCountFailsNamingBothSides) {
  std::vector<std::string> seen(2);
  run_inproc_group(2, options(), [&](Communicator& comm) {
    const int r = comm.rank(), peer = 1 - r;
    std::vector<float> out(r == 0 ? 100 : 99, 1.0f), in(100, 0.0f);
    try {
      comm.send_recv(f32(out), peer, f32(in), peer).wait();
      comm.barrier().wait();
      ADD_FAILURE() << "rank " << r << " did not fail";
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::InvalidArgument) << e.what();
      seen[r] = e.what();
    }
  });
  // Rank 0 receives 100 from rank 1's 99 (and the reverse is fine): it names both counts.
  EXPECT_NE(seen[0].find("f32 x 99"), std::string::npos) << seen[0];
  EXPECT_NE(seen[0].find("f32 x 100"), std::string::npos) << seen[0];
  EXPECT_FALSE(seen[1].empty());
}

// Each rank receives from the other before sending: after StallNotices::kPatience both fail
// with InvalidArgument naming both receives, long before the 20 s timeout.
TEST(BatchP2PInproc, ReceivesWaitingOnEachOtherFailNamingBoth) {
  std::vector<std::string> seen(2);
  std::vector<double> seconds(2);
  run_inproc_group(2, options(), [&](Communicator& comm) {
    const int r = comm.rank();
    std::vector<float> v(3, 1.0f);
    auto start = std::chrono::steady_clock::now();
    try {
      comm.recv(f32(v), 1 - r).wait();
      ADD_FAILURE() << "rank " << r << " did not fail";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
      seen[r] = e.what();
    }
    seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  for (int r = 0; r < 2; r++) {
    EXPECT_NE(seen[r].find("recv #1 (f32 x 3, peer 0)"), std::string::npos) << seen[r];
    EXPECT_NE(seen[r].find("recv #1 (f32 x 3, peer 1)"), std::string::npos) << seen[r];
    EXPECT_LT(seconds[r], 2.0);
  }
}

// A receive that waits long for a peer that is only late sends a stall notice; the peer, having
// sent the message by the time it reads the notice, drops it (run_late_sender). A notice with no
// room to go is given up once the op's data has arrived (run_notice_behind_full_mailbox).
TEST(BatchP2PInproc, ALateSenderIsNoDeadlock) {
  run_inproc_group(2, options(), [&](Communicator& comm) { EXPECT_EQ(run_late_sender(comm), 0); });
}

TEST(BatchP2PInproc, ANoticeWithNoRoomIsGivenUpOnceTheDataArrived) {
  run_inproc_group(3, options(), [&](Communicator& comm) {
    EXPECT_EQ(run_notice_behind_full_mailbox(comm), 0);
  });
}

// An op deadline shorter than StallNotices::kPatience: the receive's first wait, which sleeps
// toward the notices' patience, still ends at the deadline, not 200 ms on.
TEST(BatchP2PInproc, AReceiveTimesOutAtADeadlineShorterThanThePatience) {
  comm::CommOptions o = options();
  o.timeout = std::chrono::milliseconds(40);
  run_inproc_group(2, o, [&](Communicator& comm) {
    if (comm.rank() == 1) {  // sends nothing, and stays until rank 0 has given up
      std::this_thread::sleep_for(std::chrono::milliseconds(600));
      return;
    }
    std::vector<float> v(2);
    auto start = std::chrono::steady_clock::now();
    try {
      comm.recv(f32(v), 1).wait();
      ADD_FAILURE() << "the receive completed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Timeout) << e.what();
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
    EXPECT_LT(ms, 150.0);
  });
}

TEST(BatchP2PInproc, BadArgumentsAreRefusedBeforeAnyTraffic) {
  run_inproc_group(2, options(), [&](Communicator& comm) {
    const int peer = 1 - comm.rank();
    std::vector<float> a(4, static_cast<float>(comm.rank())), b(4, -1.0f);
    auto expect_refused = [&](std::span<const P2P> ops, const std::string& says) {
      try {
        comm.batch_p2p(ops).wait();
        ADD_FAILURE() << "accepted; expected " << says;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
        EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
      }
    };
    const P2P bad_peer[] = {{P2P::send, f32(a), peer}, {P2P::recv, f32(b), 2}};
    expect_refused(bad_peer, "peer 2 is not a rank of this group of 2");
    const P2P two_devices[] = {
        {P2P::send, f32(a), peer},
        {P2P::recv, Tensor::flat(b.data(), DType::f32, 4, Device::cuda(0)), peer}};
    expect_refused(two_devices, "every message of a batch must be on one device");
    std::vector<P2P> too_many(65, P2P{P2P::send, f32(a), peer});
    expect_refused(too_many, "at most 64 each way");
    // Nothing moved and no sequence number was spent: the ranks still pair up.
    comm.send_recv(f32(a), peer, f32(b), peer).wait();
    for (float x : b) EXPECT_EQ(x, static_cast<float>(peer));
  });
}

}  // namespace
}  // namespace weft::testing
