#include "launcher/job_identity.h"

#include <gtest/gtest.h>

namespace weft::launcher {
namespace {

TEST(JobIdentity, IdsAreSafeForShmNamesAndTokensAreRandom) {
  JobIdentity a = JobIdentity::generate(), b = JobIdentity::generate();
  EXPECT_EQ(a.job_id.find_first_of("-/"), std::string::npos) << a.job_id;
  EXPECT_EQ(a.job_id[0], 'j');
  EXPECT_NE(a.job_id, b.job_id);
  EXPECT_EQ(a.token.size(), 32u);
  EXPECT_EQ(a.token.find_first_not_of("0123456789abcdef"), std::string::npos) << a.token;
  EXPECT_NE(a.token, b.token);
}

}  // namespace
}  // namespace weft::launcher
