// weftrun --elastic's choice of the next generation (launcher/elastic_policy.h).
#include "launcher/elastic_policy.h"

#include <gtest/gtest.h>

#include "tests/support/text.h"

namespace weft::launcher {
namespace {

using weft::testing::contains;

Restart restart(std::variant<Restart, std::string> next) {
  EXPECT_TRUE(std::holds_alternative<Restart>(next)) << std::get<std::string>(next);
  return std::holds_alternative<Restart>(next) ? std::get<Restart>(next) : Restart{};
}

std::string stop(std::variant<Restart, std::string> next) {
  EXPECT_TRUE(std::holds_alternative<std::string>(next)) << std::get<Restart>(next).size;
  return std::holds_alternative<std::string>(next) ? std::get<std::string>(next) : "";
}

TEST(ElasticPolicy, ARankThatFailsOnceGetsAFreshOneAtTheSameSize) {
  ElasticPolicy policy(4, 2, 3);
  EXPECT_EQ(restart(policy.after({4, 2, false})).size, 4);
  EXPECT_EQ(restart(policy.after({4, 0, false})).size, 4);  // another rank: not the same fault
  EXPECT_EQ(policy.restarts(), 2);
}

TEST(ElasticPolicy, ARankThatFailsTwiceInARowShrinksTheJobDownToMinRanks) {
  ElasticPolicy policy(4, 3, 10);
  EXPECT_EQ(restart(policy.after({4, 3, false})).size, 4);
  Restart r = restart(policy.after({4, 3, false}));
  EXPECT_EQ(r.size, 3);
  EXPECT_TRUE(contains(r.why_size, "rank 3 failed first in two generations in a row at 4 ranks"))
      << r.why_size;
  EXPECT_EQ(restart(policy.after({3, 1, false})).size, 3);
  std::string why = stop(policy.after({3, 1, false}));
  EXPECT_TRUE(contains(why, "--min-ranks 3 forbids going smaller")) << why;
}

TEST(ElasticPolicy, ASizeTheRanksRefuseIsSkipped) {
  ElasticPolicy policy(4, 2, 10);
  policy.after({4, 3, false});
  EXPECT_EQ(restart(policy.after({4, 3, false})).size, 3);
  Restart r = restart(policy.after({3, 0, true}));  // batch 8 does not divide over 3 ranks
  EXPECT_EQ(r.size, 2);
  EXPECT_TRUE(contains(r.why_size, "the ranks refused 3 ranks")) << r.why_size;
}

TEST(ElasticPolicy, FlagsRefusedAtTheFirstSizeAreNotRetried) {
  ElasticPolicy policy(4, 1, 10);
  EXPECT_TRUE(contains(stop(policy.after({4, 0, true})), "a restart would fail the same way"));
}

TEST(ElasticPolicy, RestartsStopAtMaxRestarts) {
  ElasticPolicy policy(2, 1, 2);
  policy.after({2, 0, false});
  policy.after({2, 1, false});
  EXPECT_TRUE(contains(stop(policy.after({2, 0, false})), "--max-restarts 2 restarts used up"));
  ElasticPolicy never(2, 1, 0);
  EXPECT_TRUE(contains(stop(never.after({2, 0, false})), "--max-restarts 0"));
}

// weftrun --nnodes 2 -n 2: whichever rank failed, node 0 goes on with its own 2 ranks, and from
// then on as one node does.
TEST(ElasticPolicy, AcrossNodesARestartGoesOnWithNodeZerosRanksAlone) {
  ElasticPolicy policy(4, 2, 3);
  Restart r = restart(policy.after({4, 2, false, 2}));
  EXPECT_EQ(r.size, 2);
  EXPECT_TRUE(contains(r.why_size, "across nodes a restart goes on with node 0's ranks alone"))
      << r.why_size;
  EXPECT_EQ(restart(policy.after({2, 1, false})).size, 2);
  EXPECT_EQ(policy.restarts(), 2);
  ElasticPolicy bigger(8, 6, 3);  // --min-ranks counts the whole job's ranks
  EXPECT_TRUE(contains(stop(bigger.after({8, 0, false, 4})), "4, fewer than --min-ranks 6"));
}

}  // namespace
}  // namespace weft::launcher
