// Every collective x dtype x reduce op x size on 1..5 ranks (threads over the in-process
// transport), for each allreduce algorithm, against the sequential reference. The multi-process
// tests run the same matrix over tcp and shm.
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "tests/support/collective_checks.h"
#include "tests/support/inproc_group.h"

namespace weft::testing {
namespace {

using comm::AllreduceAlgo;
using comm::CommOptions;
using comm::Communicator;

CommOptions small_options(AllreduceAlgo algo) {
  CommOptions o;
  o.timeout = std::chrono::seconds(20);
  o.algo = algo;
  o.small_bytes = 256;    // so recursive doubling and ring both see the test sizes
  o.segment_bytes = 64;   // so sizes of a few hundred elements span many slices
  return o;
}

struct Case {
  int ranks;
  AllreduceAlgo algo;
};

class InprocCollectives : public ::testing::TestWithParam<Case> {};

TEST_P(InprocCollectives, MatchSequentialReference) {
  auto [n, algo] = GetParam();
  run_inproc_group(n, small_options(algo), [&](Communicator& comm) {
    auto failures = check_collectives(comm, CheckMatrix{});
    for (auto& f : failures) ADD_FAILURE() << f;
  });
}

INSTANTIATE_TEST_SUITE_P(
    AllRanks, InprocCollectives,
    ::testing::Values(Case{1, AllreduceAlgo::automatic}, Case{2, AllreduceAlgo::ring},
                      Case{2, AllreduceAlgo::recursive_doubling}, Case{3, AllreduceAlgo::ring},
                      Case{3, AllreduceAlgo::recursive_doubling}, Case{4, AllreduceAlgo::automatic},
                      Case{5, AllreduceAlgo::ring}, Case{5, AllreduceAlgo::recursive_doubling},
                      Case{2, AllreduceAlgo::one_shot}, Case{3, AllreduceAlgo::one_shot},
                      Case{4, AllreduceAlgo::one_shot}, Case{5, AllreduceAlgo::one_shot}),
    [](const auto& info) {
      const char* a = info.param.algo == AllreduceAlgo::ring                 ? "ring"
                      : info.param.algo == AllreduceAlgo::recursive_doubling ? "doubling"
                      : info.param.algo == AllreduceAlgo::one_shot           ? "one_shot"
                                                                             : "auto";
      return std::to_string(info.param.ranks) + "ranks_" + a;
    });

TEST(InprocCollectives, MismatchedCountsFailWithBothValues) {
  std::vector<std::string> messages(2);
  run_inproc_group(2, small_options(AllreduceAlgo::ring), [&](Communicator& comm) {
    std::vector<float> data(comm.rank() == 0 ? 100 : 99, 1.0f);
    try {
      comm.allreduce(Tensor::flat(data.data(), DType::f32, data.size())).wait();
      ADD_FAILURE() << "rank " << comm.rank() << " did not fail";
    } catch (const Error& e) {
      // The rank that sees the mismatch first fails with InvalidArgument and aborts the
      // group with that message, so its peer may fail with Aborted carrying the same text.
      EXPECT_TRUE(e.code() == ErrorCode::InvalidArgument || e.code() == ErrorCode::Aborted)
          << e.what();
      messages[comm.rank()] = e.what();
    }
  });
  for (auto& m : messages) {
    EXPECT_NE(m.find("f32 x 100"), std::string::npos) << m;
    EXPECT_NE(m.find("f32 x 99"), std::string::npos) << m;
  }
}

// Rooted ops exchange every rank's fingerprint first (exchange_fingerprints, Bruck's allgather):
// on 3, 5 and 6 ranks, one rank naming another root fails every rank with InvalidArgument
// naming both roots, whether the op is a broadcast or a reduce. (A rank still in the exchange's
// last step may hear it from one that finished first, with the same words.)
TEST(InprocCollectives, EveryRankSeesEveryRanksRoot) {
  for (int n : {3, 5, 6}) {
    for (bool reduce : {false, true}) {
      std::vector<std::string> messages(static_cast<size_t>(n));
      run_inproc_group(n, small_options(AllreduceAlgo::automatic), [&](Communicator& comm) {
        std::vector<float> in(4, 1.0f), out(4);
        int root = comm.rank() == n - 1 ? 1 : 0;
        Tensor t_in = Tensor::flat(in.data(), DType::f32, 4);
        try {
          if (reduce)
            comm.reduce(t_in, Tensor::flat(out.data(), DType::f32, 4), root).wait();
          else
            comm.broadcast(t_in, root).wait();
          ADD_FAILURE() << "rank " << comm.rank() << " of " << n << " did not fail";
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
          messages[static_cast<size_t>(comm.rank())] = e.what();
        }
      });
      for (const auto& m : messages) {
        EXPECT_NE(m.find("ranks disagree on a collective over inproc: rank 0 called"),
                  std::string::npos)
            << m;
        EXPECT_NE(m.find("root 0"), std::string::npos) << m;
        EXPECT_NE(m.find("rank " + std::to_string(n - 1) + " called"), std::string::npos) << m;
        EXPECT_NE(m.find("root 1"), std::string::npos) << m;
      }
    }
  }
}

TEST(InprocCollectives, MismatchedDtypeFails) {
  run_inproc_group(3, small_options(AllreduceAlgo::automatic), [&](Communicator& comm) {
    std::vector<double> data(8, 1.0);
    DType t = comm.rank() == 1 ? DType::f64 : DType::i64;
    EXPECT_THROW(comm.allreduce(Tensor::flat(data.data(), t, 8)).wait(), Error);
  });
}

TEST(InprocCollectives, SplitFormsGroupsByColorOrderedByKey) {
  run_inproc_group(5, small_options(AllreduceAlgo::automatic), [&](Communicator& comm) {
    int color = comm.rank() % 2;
    auto sub = comm.split(color, -comm.rank());  // reversed order inside each group
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->size(), color == 0 ? 3 : 2);
    int32_t v = comm.rank();
    sub->allreduce(Tensor::flat(&v, DType::i32, 1), ReduceOp::sum).wait();
    EXPECT_EQ(v, color == 0 ? 0 + 2 + 4 : 1 + 3);
    int32_t r = sub->rank();
    EXPECT_EQ(r, color == 0 ? (4 - comm.rank()) / 2 : (3 - comm.rank()) / 2);
    // The parent still works after the split.
    int32_t w = 1;
    comm.allreduce(Tensor::flat(&w, DType::i32, 1)).wait();
    EXPECT_EQ(w, 5);
  });
}

TEST(InprocCollectives, NegativeColorJoinsNoGroup) {
  run_inproc_group(3, small_options(AllreduceAlgo::automatic), [&](Communicator& comm) {
    auto sub = comm.split(comm.rank() == 2 ? -1 : 0, 0);
    EXPECT_EQ(sub == nullptr, comm.rank() == 2);
  });
}

TEST(InprocCollectives, AbortFailsPendingWorkOnEveryRank) {
  run_inproc_group(3, small_options(AllreduceAlgo::ring), [&](Communicator& comm) {
    std::vector<float> data(10, 1.0f);
    if (comm.rank() == 0) {
      comm.abort("test abort");
      comm.abort("second abort is harmless");
    }
    // Ranks 1 and 2 wait on rank 0, which never takes part: they must fail, not hang.
    try {
      comm.allreduce(Tensor::flat(data.data(), DType::f32, 10)).wait();
      ADD_FAILURE() << "allreduce after abort succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Aborted) << e.what();
      EXPECT_NE(std::string(e.what()).find("test abort"), std::string::npos) << e.what();
    }
  });
}

TEST(InprocCollectives, AsyncOpsCompleteInOrder) {
  run_inproc_group(2, small_options(AllreduceAlgo::automatic), [&](Communicator& comm) {
    std::vector<std::vector<float>> bufs(16, std::vector<float>(300, 1.0f));
    std::vector<comm::Work> works;
    for (auto& b : bufs) works.push_back(comm.allreduce(Tensor::flat(b.data(), DType::f32, b.size())));
    for (auto& w : works) w.wait();
    for (auto& b : bufs) EXPECT_EQ(b[299], 2.0f);
  });
}

TEST(InprocCollectives, BadArgumentsAreRejectedBeforeAnyTraffic) {
  run_inproc_group(2, small_options(AllreduceAlgo::automatic), [&](Communicator& comm) {
    std::vector<float> a(10), b(9);
    EXPECT_THROW(comm.allreduce(Tensor::flat(a.data(), DType::f32, 10),
                                Tensor::flat(b.data(), DType::f32, 9), ReduceOp::sum),
                 Error);
    EXPECT_THROW(comm.broadcast(Tensor::flat(a.data(), DType::f32, 10), 2), Error);
    EXPECT_THROW(comm.alltoall(Tensor::flat(a.data(), DType::f32, 9), Tensor::flat(b.data(), DType::f32, 9)), Error);
    EXPECT_THROW(comm.send(Tensor::flat(a.data(), DType::f32, 10), -1), Error);
    comm.barrier().wait();  // the group is still in step
  });
}

}  // namespace
}  // namespace weft::testing
