#include "train/rank_agreement.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "runtime/error.h"

namespace weft::train {
namespace {

// An allgather between threads standing in for ranks: each call returns once every rank made it.
class Exchange {
 public:
  explicit Exchange(int ranks) : slots_(ranks) {}
  std::vector<uint64_t> gather(int rank, const std::vector<uint64_t>& mine) {
    std::unique_lock lock(mu_);
    const int generation = generation_;
    slots_[rank] = mine;
    if (++arrived_ == static_cast<int>(slots_.size())) {
      result_.clear();
      for (const auto& s : slots_) result_.insert(result_.end(), s.begin(), s.end());
      arrived_ = 0;
      generation_++;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
    return result_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<uint64_t>> slots_;
  std::vector<uint64_t> result_;
  int arrived_ = 0, generation_ = 0;
};

// Runs `check(rank, gather)` on every rank at once; returns each rank's error ("" when none).
std::vector<std::string> on_ranks(int ranks,
                                  const std::function<void(int, const GatherWords&)>& check) {
  Exchange exchange(ranks);
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; r++)
    threads.emplace_back([&, r] {
      try {
        check(r, [&](const std::vector<uint64_t>& mine) { return exchange.gather(r, mine); });
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

FlagValues flags(const std::string& seed, const std::string& lr) {
  return {{"--layers", "2"}, {"--seed", seed}, {"--lr", lr}, {"--data", "contents 00ab"}};
}

TEST(RankAgreement, RanksWithTheSameFlagsGoOn) {
  for (const std::string& e : on_ranks(3, [](int, const GatherWords& gather) {
         check_flags_agree(flags("1", "0.001"), gather);
       }))
    EXPECT_EQ(e, "");
}

// The case: --seed 1 --lr 1e-3 on one rank, --seed 2 --lr 5e-3 on the other. Every rank
// stops, naming each differing flag with both ranks' values, and nothing about the others.
TEST(RankAgreement, EveryRankNamesEachDifferingFlagWithEveryValue) {
  auto errors = on_ranks(2, [](int rank, const GatherWords& gather) {
    check_flags_agree(rank == 0 ? flags("1", "0.001") : flags("2", "0.005"), gather);
  });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("--seed (1 on rank 0; 2 on rank 1)"), std::string::npos) << e;
    EXPECT_NE(e.find("--lr (0.001 on rank 0; 0.005 on rank 1)"), std::string::npos) << e;
    EXPECT_EQ(e.find("--layers"), std::string::npos) << e;
    EXPECT_NE(e.find("before step 1"), std::string::npos) << e;
  }
  EXPECT_EQ(errors[0], errors[1]);
}

// Ranks are grouped by value, and a flag whose text is longer on one rank (a long path) still
// comes through whole.
TEST(RankAgreement, RanksAreGroupedByValue) {
  const std::string long_value(300, 'x');
  auto errors = on_ranks(4, [&](int rank, const GatherWords& gather) {
    FlagValues f = flags("1", "0.001");
    if (rank == 2) f[3].second = long_value;
    check_flags_agree(f, gather);
  });
  for (const std::string& e : errors)
    EXPECT_NE(e.find("--data (contents 00ab on ranks 0, 1, 3; " + long_value + " on rank 2)"),
              std::string::npos)
        << e;
}

TEST(RankAgreement, DescribesFlagsOnlySomeRanksHave) {
  EXPECT_EQ(describe_disagreement({flags("1", "1"), flags("1", "1")}), "");
  FlagValues fewer = {{"--layers", "2"}};
  EXPECT_EQ(describe_disagreement({{{"--layers", "2"}, {"--zero1", "on"}}, fewer}),
            "--zero1 (on on rank 0; (not given) on rank 1)");
}

TEST(RankAgreement, ManyRanksAreCounted) {
  std::vector<FlagValues> per_rank(12, flags("1", "1"));
  per_rank[11] = flags("2", "1");
  EXPECT_EQ(describe_disagreement(per_rank),
            "--seed (1 on ranks 0, 1, 2, 3, ... (11 ranks); 2 on rank 11)");
}

// Replicas whose flags agree but whose initial parameters differ (different builds) stop too.
TEST(RankAgreement, ReplicasWithDifferentParametersStop) {
  for (const std::string& e :
       on_ranks(3, [](int, const GatherWords& gather) { check_replicas_agree(42, gather); }))
    EXPECT_EQ(e, "");
  auto errors = on_ranks(3, [](int rank, const GatherWords& gather) {
    check_replicas_agree(rank == 1 ? 7 : 42, gather);
  });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("000000000000002a on ranks 0, 2"), std::string::npos) << e;
    EXPECT_NE(e.find("0000000000000007 on rank 1"), std::string::npos) << e;
    EXPECT_NE(e.find("same binary"), std::string::npos) << e;
  }
}

// Rank 0 cannot open its --log-json: every rank stops with its reason and code, none waits.
TEST(RankAgreement, AnErrorOnOneRankStopsEveryRank) {
  for (const std::string& e :
       on_ranks(3, [](int, const GatherWords& gather) { stop_together(std::nullopt, gather); }))
    EXPECT_EQ(e, "");
  auto errors = on_ranks(3, [](int rank, const GatherWords& gather) {
    std::optional<Error> error;
    if (rank == 0) error = Error(ErrorCode::InvalidArgument, "cannot open the JSON log 'x'");
    stop_together(error, gather);
  });
  EXPECT_EQ(errors[0], "InvalidArgument: cannot open the JSON log 'x'");
  EXPECT_EQ(errors[1], "InvalidArgument: rank 0 stopped: cannot open the JSON log 'x'");
  EXPECT_EQ(errors[2], errors[1]);
}

// SIGTERM reached rank 2 alone so far: every rank stops, naming the signal rank 2 got.
TEST(RankAgreement, APreemptionSignalOnOneRankStopsEveryRankAtTheSameStep) {
  std::vector<int> agreed(4, -1);
  on_ranks(4, [&](int rank, const GatherWords& gather) {
    agreed[rank] = agree_on_preemption(rank == 2 ? 15 : 0, gather);
  });
  EXPECT_EQ(agreed, std::vector<int>(4, 15));
  on_ranks(4, [&](int rank, const GatherWords& gather) {
    agreed[rank] = agree_on_preemption(0, gather);
  });
  EXPECT_EQ(agreed, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace weft::train
