#pragma once
// weftrun's command line, parsed and validated without touching processes or the file system.
// Every mistake is an Error(InvalidArgument) whose message says what was wrong and how to fix it.
#include <optional>
#include <string>
#include <vector>

#include "comm/rendezvous/coordinator.h"

namespace weft::launcher {

struct LaunchOptions {
  enum class Action { run, help, help_env };
  Action action = Action::run;

  int num_ranks = 0;                   // -n N
  std::optional<std::string> backend;  // --backend B, exported as WEFT_BACKEND
  std::optional<std::string> timeout;  // --timeout S (validated text), exported as WEFT_TIMEOUT
  double grace_seconds = 1.0;          // --grace S: how long the other ranks get after one fails
  // --heartbeat-timeout S: a rank silent this long is declared lost (else WEFT_HEARTBEAT_TIMEOUT)
  std::optional<double> heartbeat_timeout_seconds;
  // --preempt-timeout S: after weftrun passes on SIGTERM/SIGUSR1/SIGINT/SIGHUP, how long the ranks
  // get to save and exit before SIGKILL (unset: the longer of --grace and 10 s)
  std::optional<double> preempt_timeout_seconds;
  // --elastic: a failed generation is ended and the ranks started again (elastic_policy.h)
  bool elastic = false;
  int min_ranks = 0;     // --min-ranks A: the smallest size a restart may shrink to (default N)
  int max_restarts = 3;  // --max-restarts R
  bool tag_output = true;              // --tag-output / --no-tag-output: "[rank K] " prefixes
  // Several hosts (node_layout.h): one weftrun per node, each starting -n ranks.
  int num_nodes = 1;                       // --nnodes M
  int node_rank = 0;                       // --node-rank I, 0..M-1
  std::optional<std::string> coordinator;  // --coordinator HOST:PORT, where every node meets
  comm::TlsFiles tls;  // --tls-cert, --tls-key, --tls-ca: the coordinator weftrun serves
  std::vector<std::string> command;    // program and its arguments, everything after "--"
};

inline constexpr int kMaxRanks = 4096;

// `args` are the arguments after argv[0].
LaunchOptions parse_launch_options(const std::vector<std::string>& args);

// Text for --help.
std::string usage_text();
// Text for --help-env: every variable of runtime/env.h's registry with its default and meaning.
std::string env_help_text();

}  // namespace weft::launcher
