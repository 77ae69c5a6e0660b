#include "launcher/launch_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/backend_registry.h"
#include "runtime/error.h"
#include "tests/unit/launcher/launch_error.h"

namespace weft::launcher {
namespace {

using Args = std::vector<std::string>;

TEST(LaunchOptions, ParsesTheFullCommandLine) {
  LaunchOptions o =
      parse_launch_options({"-n", "4", "--backend", "shm", "--timeout", "30", "--grace", "1.5",
                            "--no-tag-output", "--", "prog", "-n", "7", "--", "x"});
  EXPECT_EQ(o.action, LaunchOptions::Action::run);
  EXPECT_EQ(o.num_ranks, 4);
  EXPECT_EQ(o.backend, "shm");
  EXPECT_EQ(o.timeout, "30");
  EXPECT_DOUBLE_EQ(o.grace_seconds, 1.5);
  EXPECT_FALSE(o.tag_output);
  // Everything after the first "--" belongs to the program, flags that look like ours too.
  EXPECT_EQ(o.command, (Args{"prog", "-n", "7", "--", "x"}));
}

TEST(LaunchOptions, DefaultsLeaveBackendAndTimeoutToTheEnvironment) {
  LaunchOptions o = parse_launch_options({"-n", "2", "--", "prog"});
  EXPECT_EQ(o.num_ranks, 2);
  EXPECT_FALSE(o.backend.has_value());
  EXPECT_FALSE(o.timeout.has_value());
  EXPECT_TRUE(o.tag_output);
  EXPECT_DOUBLE_EQ(o.grace_seconds, 1.0);
}

TEST(LaunchOptions, AcceptsGluedAndAlternativeSpellings) {
  EXPECT_EQ(parse_launch_options({"-n3", "--", "p"}).num_ranks, 3);
  EXPECT_EQ(parse_launch_options({"-n=5", "--", "p"}).num_ranks, 5);
  EXPECT_EQ(parse_launch_options({"--np", "6", "--", "p"}).num_ranks, 6);
  EXPECT_EQ(parse_launch_options({"-np", "7", "--", "p"}).num_ranks, 7);
  EXPECT_EQ(parse_launch_options({"--np=8", "--", "p"}).num_ranks, 8);
  LaunchOptions o = parse_launch_options(
      {"--backend=tcp", "--timeout=2.5", "-n", "1", "--no-tag-output", "--tag-output", "--", "p"});
  EXPECT_EQ(o.backend, "tcp");
  EXPECT_EQ(o.timeout, "2.5");
  EXPECT_TRUE(o.tag_output);  // the last of the pair wins
  EXPECT_EQ(parse_launch_options({"-n", "1", "--backend", "auto", "--", "p"}).backend, "auto");
}

TEST(LaunchOptions, HelpWinsOverOtherMistakes) {
  EXPECT_EQ(parse_launch_options({"--help"}).action, LaunchOptions::Action::help);
  EXPECT_EQ(parse_launch_options({"--bogus", "-h"}).action, LaunchOptions::Action::help);
  EXPECT_EQ(parse_launch_options({"--help-env"}).action, LaunchOptions::Action::help_env);
  // After "--" it is the program's --help.
  LaunchOptions o = parse_launch_options({"-n", "1", "--", "prog", "--help"});
  EXPECT_EQ(o.action, LaunchOptions::Action::run);
}

TEST(LaunchOptions, UnknownFlagIsNamedWithASuggestion) {
  std::string m = error_of({"-n", "2", "--backnd", "tcp", "--", "p"});
  EXPECT_NE(m.find("unknown flag '--backnd'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean --backend?"), std::string::npos) << m;
  m = error_of({"-n", "2", "--frobnicate", "--", "p"});
  EXPECT_NE(m.find("unknown flag '--frobnicate'"), std::string::npos) << m;
  EXPECT_EQ(m.find("did you mean"), std::string::npos) << m;
  EXPECT_NE(m.find("after '--'"), std::string::npos) << m;
  m = error_of({"-x", "-n", "2", "--", "p"});
  EXPECT_NE(m.find("unknown flag '-x'"), std::string::npos) << m;
}

TEST(LaunchOptions, MissingRankCountValue) {
  for (const Args& args : {Args{"-n"}, Args{"-n", "--", "p"}, Args{"-n", "--backend", "tcp"},
                           Args{"-n=", "--", "p"}}) {
    std::string m = error_of(args);
    EXPECT_NE(m.find("-n needs a value"), std::string::npos) << m;
  }
}

TEST(LaunchOptions, RankCountMustBeAPositiveWholeNumber) {
  std::string m = error_of({"-n", "0", "--", "p"});
  EXPECT_NE(m.find("-n must be at least 1, got 0"), std::string::npos) << m;
  m = error_of({"-n", "-3", "--", "p"});
  EXPECT_NE(m.find("-n must be at least 1, got -3"), std::string::npos) << m;
  m = error_of({"-n", "four", "--", "p"});
  EXPECT_NE(m.find("-n expects a whole number, got 'four'"), std::string::npos) << m;
  m = error_of({"-n", "2.5", "--", "p"});
  EXPECT_NE(m.find("got '2.5'"), std::string::npos) << m;
  m = error_of({"-n", "99999999999999999999", "--", "p"});
  EXPECT_NE(m.find("whole number"), std::string::npos) << m;
  m = error_of({"-n", std::to_string(kMaxRanks + 1), "--", "p"});
  EXPECT_NE(m.find("at most " + std::to_string(kMaxRanks)), std::string::npos) << m;
}

TEST(LaunchOptions, RankCountIsRequired) {
  std::string m = error_of({"--", "p"});
  EXPECT_NE(m.find("-n is required"), std::string::npos) << m;
}

TEST(LaunchOptions, MissingSeparatorOrProgram) {
  std::string m = error_of({"-n", "2"});
  EXPECT_NE(m.find("missing '--' and the program"), std::string::npos) << m;
  m = error_of({"-n", "2", "--"});
  EXPECT_NE(m.find("no program after '--'"), std::string::npos) << m;
  m = error_of({"-n", "2", "--", ""});
  EXPECT_NE(m.find("no program after '--'"), std::string::npos) << m;
  // The common slip: the program without "--".
  m = error_of({"-n", "2", "./train", "--steps", "3"});
  EXPECT_NE(m.find("'./train' comes before '--'"), std::string::npos) << m;
}

TEST(LaunchOptions, EveryBackendARankAcceptsIsAccepted) {
  for (const char* backend : {"auto", "tcp", "shm", "mpi-ring", "mpi", "nccl-ring", "nccl"})
    EXPECT_EQ(parse_launch_options({"-n", "2", "--backend", backend, "--", "p"}).backend, backend);
}

TEST(LaunchOptions, UnknownBackend) {
  std::string m = error_of({"-n", "2", "--backend", "udp", "--", "p"});
  EXPECT_NE(m.find("--backend: unknown backend 'udp': use one of " + comm::backend_names()),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("auto, tcp, shm, mpi-ring, mpi, nccl-ring, nccl"), std::string::npos) << m;
  m = error_of({"-n", "2", "--backend"});
  EXPECT_NE(m.find("--backend needs a value"), std::string::npos) << m;
}

// `--tls-ca=$CA` with CA unset must not quietly turn mutual TLS off: an empty value is refused,
// glued or apart.
TEST(LaunchOptions, AnEmptyValueIsRefusedNamingTheFlag) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-n", "2", "--tls-ca=", "--", "p"},
        std::vector<std::string>{"-n", "2", "--tls-ca", "", "--", "p"}}) {
    std::string m = error_of(args);
    EXPECT_NE(m.find("--tls-ca needs a value, got an empty one"), std::string::npos) << m;
  }
  std::string m = error_of({"-n=", "--", "p"});
  EXPECT_NE(m.find("-n needs a value"), std::string::npos) << m;
}

TEST(LaunchOptions, TimeoutAndGraceMustBeSeconds) {
  std::string m = error_of({"-n", "2", "--timeout", "0", "--", "p"});
  EXPECT_NE(m.find("--timeout expects a positive number of seconds, got '0'"), std::string::npos)
      << m;
  m = error_of({"-n", "2", "--timeout", "soon", "--", "p"});
  EXPECT_NE(m.find("got 'soon'"), std::string::npos) << m;
  m = error_of({"-n", "2", "--timeout", "inf", "--", "p"});
  EXPECT_NE(m.find("got 'inf'"), std::string::npos) << m;
  m = error_of({"-n", "2", "--grace", "-1", "--", "p"});
  EXPECT_NE(m.find("--grace expects a non-negative number of seconds"), std::string::npos) << m;
  EXPECT_DOUBLE_EQ(parse_launch_options({"-n", "1", "--grace", "0", "--", "p"}).grace_seconds, 0);
  m = error_of({"-n", "2", "--heartbeat-timeout", "soon", "--", "p"});
  EXPECT_NE(m.find("--heartbeat-timeout expects a non-negative number of seconds"),
            std::string::npos)
      << m;
  EXPECT_FALSE(parse_launch_options({"-n", "1", "--", "p"}).heartbeat_timeout_seconds);
  EXPECT_DOUBLE_EQ(
      *parse_launch_options({"-n", "1", "--heartbeat-timeout=2.5", "--", "p"})
           .heartbeat_timeout_seconds,
      2.5);
}

TEST(LaunchOptions, ElasticFlags) {
  LaunchOptions o = parse_launch_options({"-n", "4", "--", "p"});
  EXPECT_FALSE(o.elastic);
  EXPECT_EQ(o.min_ranks, 4);  // never smaller
  EXPECT_FALSE(o.preempt_timeout_seconds);
  o = parse_launch_options({"-n", "4", "--elastic", "--min-ranks=2", "--max-restarts", "0",
                            "--preempt-timeout", "120", "--", "p"});
  EXPECT_TRUE(o.elastic);
  EXPECT_EQ(o.min_ranks, 2);
  EXPECT_EQ(o.max_restarts, 0);
  EXPECT_EQ(*o.preempt_timeout_seconds, 120.0);
  std::string m = error_of({"-n", "4", "--min-ranks", "2", "--", "p"});
  EXPECT_NE(m.find("--min-ranks needs --elastic"), std::string::npos) << m;
  m = error_of({"-n", "4", "--max-restarts", "2", "--", "p"});
  EXPECT_NE(m.find("--max-restarts needs --elastic"), std::string::npos) << m;
  m = error_of({"-n", "2", "--elastic", "--min-ranks", "3", "--", "p"});
  EXPECT_NE(m.find("--min-ranks 3 is more than the 2 ranks of -n"), std::string::npos) << m;
  m = error_of({"-n", "2", "--elastic", "--max-restarts", "-1", "--", "p"});
  EXPECT_NE(m.find("--max-restarts must be at least 0, got -1"), std::string::npos) << m;
  m = error_of({"-n", "2", "--elastic=yes", "--", "p"});
  EXPECT_NE(m.find("--elastic takes no value"), std::string::npos) << m;
}

TEST(LaunchOptions, SwitchesTakeNoValue) {
  std::string m = error_of({"-n", "2", "--tag-output=yes", "--", "p"});
  EXPECT_NE(m.find("--tag-output takes no value"), std::string::npos) << m;
}

TEST(LaunchOptions, HelpTextsNameEveryFlagAndVariable) {
  std::string usage = usage_text();
  for (const char* flag : {"-n N", "--backend", "--timeout", "--grace", "--heartbeat-timeout",
                           "--preempt-timeout", "--elastic", "--min-ranks", "--max-restarts",
                           "--tag-output", "--no-tag-output", "--help-env"})
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  EXPECT_NE(usage.find(comm::backend_names()), std::string::npos);
  // The exit codes, each with its one meaning.
  for (const char* code : {"\n  0 ", "\n  1 ", "\n  2 ", "\n  75 ", "\n  128+N "})
    EXPECT_NE(usage.find(code), std::string::npos) << code;
  EXPECT_NE(usage.find("a rank was killed by signal N"), std::string::npos) << usage;
  std::string env = env_help_text();
  for (const char* var : {"WEFT_RANK", "WEFT_WORLD_SIZE", "WEFT_TIMEOUT", "WEFT_BACKEND",
                          "WEFT_STORE_ADDR", "WEFT_TOKEN", "WEFT_JOB_ID", "WEFT_RESTART_COUNT"})
    EXPECT_NE(env.find(var), std::string::npos) << var;
  // The default sits on the variable's row.
  size_t row = env.find("  WEFT_TIMEOUT");
  ASSERT_NE(row, std::string::npos);
  std::string line = env.substr(row, env.find('\n', row) - row);
  EXPECT_NE(line.find("300"), std::string::npos) << line;
}

}  // namespace
}  // namespace weft::launcher
