#include "runtime/env.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "runtime/error.h"

namespace weft {
namespace {

TEST(Env, ParseBytesSuffixes) {
  EXPECT_EQ(env::parse_bytes("8", "x"), 8u);
  EXPECT_EQ(env::parse_bytes("1K", "x"), 1024u);
  EXPECT_EQ(env::parse_bytes("64M", "x"), 64u << 20);
  EXPECT_EQ(env::parse_bytes("1G", "x"), 1u << 30);
  EXPECT_EQ(env::parse_bytes("1.5K", "x"), 1536u);
  EXPECT_THROW(env::parse_bytes("12Q", "--sizes"), Error);
  EXPECT_THROW(env::parse_bytes("", "--sizes"), Error);
  EXPECT_THROW(env::parse_bytes("M", "--sizes"), Error);
}

TEST(Env, DefaultsAndOverrides) {
  unsetenv("WEFT_TIMEOUT");
  EXPECT_EQ(env::timeout().count(), 300000);
  setenv("WEFT_TIMEOUT", "2.5", 1);
  EXPECT_EQ(env::timeout().count(), 2500);
  setenv("WEFT_TIMEOUT", "soon", 1);
  EXPECT_THROW(env::timeout(), Error);
  setenv("WEFT_TIMEOUT", "-1", 1);
  EXPECT_THROW(env::timeout(), Error);
  unsetenv("WEFT_TIMEOUT");
}

TEST(Env, UnregisteredNameIsAProgrammerError) {
  try {
    env::get("WEFT_NOT_A_THING");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Internal);
  }
}

TEST(Env, RegistryHasUniqueDocumentedNames) {
  std::set<std::string> names;
  for (const auto& v : env::all()) {
    EXPECT_TRUE(names.insert(v.name).second) << v.name;
    EXPECT_GT(std::string(v.meaning).size(), 10u) << v.name;
  }
}

}  // namespace
}  // namespace weft
