#include "launcher/launch_options.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string_view>

#include "comm/backend_registry.h"
#include "launcher/node_layout.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::launcher {
namespace {

constexpr const char* kExample = "weftrun -n 4 -- ./my_program --its-flags";

// Long flags offered as "did you mean" suggestions for a mistyped flag.
constexpr std::string_view kKnownFlags[] = {
    "--np",        "--backend",       "--timeout",    "--grace",         "--heartbeat-timeout",
    "--help",      "--help-env",      "--tag-output", "--no-tag-output", "--preempt-timeout",
    "--elastic",   "--min-ranks",     "--max-restarts",
    "--nnodes", "--node-rank", "--coordinator", "--tls-cert", "--tls-key", "--tls-ca"};

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string suggestion_for(std::string_view flag) {
  std::string_view name = flag.substr(0, flag.find('='));
  std::string_view best;
  size_t best_distance = 3;  // further than two edits away is not a typo
  for (std::string_view known : kKnownFlags) {
    size_t d = edit_distance(name, known);
    if (d < best_distance) {
      best_distance = d;
      best = known;
    }
  }
  return best.empty() ? "" : " (did you mean " + std::string(best) + "?)";
}

// A flag's value comes either glued ("--timeout=30", "-n4") or as the next argument.
class ArgCursor {
 public:
  explicit ArgCursor(const std::vector<std::string>& args) : args_(args) {}
  bool done() const { return i_ >= args_.size(); }
  const std::string& peek() const { return args_[i_]; }
  std::string take() { return args_[i_++]; }
  std::vector<std::string> rest() {
    std::vector<std::string> out(args_.begin() + static_cast<std::ptrdiff_t>(i_), args_.end());
    i_ = args_.size();
    return out;
  }
  // The value of `flag`, from the glued text or the following argument. `what` describes it.
  std::string value_of(const std::string& flag, std::optional<std::string> glued,
                       const std::string& what) {
    if (glued) {
      if (glued->empty()) fail(flag + " needs a value: " + what);
      return *glued;
    }
    // "--" or another long flag where the value should be means the value was forgotten.
    if (done() || peek() == "--" || peek().rfind("--", 0) == 0)
      fail(flag + " needs a value: " + what);
    return take();
  }

 private:
  const std::vector<std::string>& args_;
  size_t i_ = 0;
};

int parse_rank_count(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    fail(flag + " expects a whole number of ranks, got '" + text + "' (for example: -n 4)");
  if (n < 1) fail(flag + " must be at least 1, got " + text + " (for example: -n 4)");
  if (n > kMaxRanks)
    fail(flag + " " + text + " is more ranks than weftrun starts on one machine (at most " +
         std::to_string(kMaxRanks) + ")");
  return static_cast<int>(n);
}

int parse_restart_count(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || n < 0 || n > 1'000'000)
    fail(flag + " expects a number of restarts from 0, got '" + text +
         "' (for example: " + flag + " 3)");
  return static_cast<int>(n);
}

double parse_seconds(const std::string& flag, const std::string& text, bool allow_zero) {
  char* end = nullptr;
  double s = std::strtod(text.c_str(), &end);
  bool number = !text.empty() && *end == '\0' && std::isfinite(s);
  if (!number || s < 0 || (!allow_zero && s == 0))
    fail(flag + " expects a " + (allow_zero ? "non-negative" : "positive") +
         " number of seconds, got '" + text + "' (for example: " + flag + " 30)");
  return s;
}

std::string parse_backend(const std::string& text) {
  for (const comm::BackendInfo& b : comm::backends())
    if (text == b.name) return text;
  fail("unknown backend '" + text + "': choose " + comm::backend_names());
}

}  // namespace

LaunchOptions parse_launch_options(const std::vector<std::string>& args) {
  LaunchOptions options;
  // --help and --help-env win over every other mistake before "--": whoever asks for help
  // after a typo should get the help, not another error.
  for (const std::string& a : args) {
    if (a == "--") break;
    if (a == "-h" || a == "--help") {
      options.action = LaunchOptions::Action::help;
      return options;
    }
    if (a == "--help-env") {
      options.action = LaunchOptions::Action::help_env;
      return options;
    }
  }

  bool saw_separator = false;
  bool saw_rank_count = false;
  std::optional<int> min_ranks;
  bool saw_max_restarts = false;
  ArgCursor cursor(args);
  while (!cursor.done()) {
    std::string arg = cursor.take();
    if (arg == "--") {
      saw_separator = true;
      options.command = cursor.rest();
      break;
    }
    // Split "--flag=value"; short "-n4" is handled below.
    std::string flag = arg;
    std::optional<std::string> glued;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      flag = arg.substr(0, arg.find('='));
      glued = arg.substr(arg.find('=') + 1);
    } else if (arg.rfind("-n", 0) == 0 && arg.size() > 2 &&
               (std::isdigit(static_cast<unsigned char>(arg[2])) || arg[2] == '=' ||
                arg[2] == '-')) {
      flag = "-n";
      glued = arg.substr(arg[2] == '=' ? 3 : 2);
    }

    if (flag == "-n" || flag == "-np" || flag == "--np") {
      options.num_ranks =
          parse_rank_count(flag, cursor.value_of(flag, glued, "the number of ranks, e.g. -n 4"));
      saw_rank_count = true;
    } else if (flag == "--backend") {
      options.backend = parse_backend(cursor.value_of(flag, glued, comm::backend_names()));
    } else if (flag == "--timeout") {
      std::string text = cursor.value_of(flag, glued, "seconds, e.g. --timeout 60");
      parse_seconds(flag, text, /*allow_zero=*/false);
      options.timeout = text;
    } else if (flag == "--grace") {
      options.grace_seconds = parse_seconds(
          flag, cursor.value_of(flag, glued, "seconds, e.g. --grace 5"), /*allow_zero=*/true);
    } else if (flag == "--heartbeat-timeout") {
      options.heartbeat_timeout_seconds = parse_seconds(
          flag, cursor.value_of(flag, glued, "seconds, e.g. --heartbeat-timeout 10"),
          /*allow_zero=*/true);
    } else if (flag == "--preempt-timeout") {
      options.preempt_timeout_seconds = parse_seconds(
          flag, cursor.value_of(flag, glued, "seconds, e.g. --preempt-timeout 120"),
          /*allow_zero=*/true);
    } else if (flag == "--elastic") {
      if (glued) fail(flag + " takes no value");
      options.elastic = true;
    } else if (flag == "--min-ranks") {
      min_ranks = parse_rank_count(flag, cursor.value_of(flag, glued, "ranks, e.g. --min-ranks 2"));
    } else if (flag == "--max-restarts") {
      std::string text = cursor.value_of(flag, glued, "a count, e.g. --max-restarts 3");
      options.max_restarts = parse_restart_count(flag, text);
      saw_max_restarts = true;
    } else if (flag == "--nnodes") {
      options.num_nodes = parse_node_count(cursor.value_of(flag, glued, "nodes, e.g. --nnodes 2"));
    } else if (flag == "--node-rank") {
      options.node_rank = parse_node_rank(cursor.value_of(flag, glued, "e.g. --node-rank 0"));
    } else if (flag == "--coordinator") {
      options.coordinator = cursor.value_of(flag, glued, "HOST:PORT, e.g. 10.0.0.1:29400");
    } else if (flag == "--tls-cert") {
      options.tls.cert = cursor.value_of(flag, glued, "a PEM file, e.g. --tls-cert server.pem");
    } else if (flag == "--tls-key") {
      options.tls.key = cursor.value_of(flag, glued, "a PEM file, e.g. --tls-key server.key");
    } else if (flag == "--tls-ca") {
      options.tls.ca = cursor.value_of(flag, glued, "a PEM file, e.g. --tls-ca ca.pem");
    } else if (flag == "--tag-output" || flag == "--no-tag-output") {
      if (glued) fail(flag + " takes no value");
      options.tag_output = flag == "--tag-output";
    } else if (!arg.empty() && arg[0] == '-') {
      fail("unknown flag '" + arg + "'" + suggestion_for(arg) + "; run weftrun --help for the " +
           "flags, and put the program's own flags after '--': " + kExample);
    } else {
      fail("'" + arg + "' comes before '--': weftrun needs '--' between its flags and the " +
           "program, as in " + kExample);
    }
  }

  if (!saw_rank_count)
    fail("-n is required: how many ranks to start, as in " + std::string(kExample));
  if (!saw_separator) fail("missing '--' and the program to run, as in " + std::string(kExample));
  if (options.command.empty() || options.command[0].empty())
    fail("no program after '--': give the program and its arguments, as in " +
         std::string(kExample));
  if ((min_ranks || saw_max_restarts) && !options.elastic)
    fail(std::string(min_ranks ? "--min-ranks" : "--max-restarts") +
         " needs --elastic: without it a failed job is not restarted");
  options.min_ranks = min_ranks.value_or(options.num_ranks);
  if (options.min_ranks > options.num_ranks)
    fail("--min-ranks " + std::to_string(options.min_ranks) + " is more than the " +
         std::to_string(options.num_ranks) + " ranks of -n: a restart never grows the job");
  check_node_layout(options);
  comm::check_tls_flags(options.tls);
  return options;
}

std::string usage_text() {
  return R"(usage: weftrun -n N [flags] -- PROGRAM [ARGS...]
       weftrun --nnodes M --node-rank I --coordinator HOST:PORT -n N [flags] -- PROGRAM ...

Starts N ranks of PROGRAM on this machine, with a coordinator they meet through, and
prints their output line by line as "[rank K] ...". Across M machines, run one weftrun per
machine with the same -n: node I starts ranks I*N..I*N+N-1, and all meet at HOST:PORT.

flags:
  -n N, --np N           number of ranks to start (required, 1..)" +
         std::to_string(kMaxRanks) + R"()
  --backend B            collective backend for the ranks (sets WEFT_BACKEND), one of
                         )" +
         comm::backend_names() + R"(
  --timeout S            seconds any collective may wait before failing (sets WEFT_TIMEOUT)
  --grace S              after a rank fails, seconds the others get to exit on their own before
                         weftrun sends SIGTERM, then SIGKILL 2 s later (default 1)
  --heartbeat-timeout S  a rank that sends no heartbeat for S seconds (hung, stopped) is
                         declared lost and the others fail naming it (default
                         WEFT_HEARTBEAT_TIMEOUT, 5; 0 = never)
  --preempt-timeout S    after passing on SIGTERM, SIGUSR1, SIGINT or SIGHUP, seconds the ranks
                         get to save a checkpoint and exit before SIGKILL (default: the longer
                         of --grace and 10 s)
  --elastic              when a rank fails or is declared lost, end that generation (stop the
                         others as above) and start every rank again under a new one, in which
                         weft-train resumes from its newest checkpoint (WEFT_RESTART_COUNT > 0
                         implies --resume when --ckpt-dir is set)
  --min-ranks A          with --elastic: a rank that fails first in two generations in a row at
                         one size, or a size the ranks refuse (exit 2: the global batch or layout
                         does not fit), makes the next generation one rank smaller, down to A
                         (default N: always the same size)
  --max-restarts R       with --elastic: restarts allowed in all (default 3)
  --nnodes M             machines in the job, one weftrun each (default 1)
  --node-rank I          this machine's place among them, 0..M-1 (default 0)
  --coordinator H:P      where the ranks of every node meet, the same on every node: an
                         address of node 0 that every node reaches (node 0's weftrun serves
                         the coordinator there, on that address only) or of a
                         weft-coordinator. Each rank listens on the address of its machine
                         that reaches H. Unless H is loopback, every node needs the same
                         WEFT_TOKEN (export WEFT_TOKEN=$(openssl rand -hex 16)), or
                         WEFT_INSECURE=1 on a trusted network
  --tls-cert FILE        the coordinator weftrun serves speaks TLS with this PEM certificate
                         (it must name the coordinator's host, e.g. 127.0.0.1 on one node);
                         the ranks, and the weftruns of other nodes, need WEFT_TLS_CA
  --tls-key FILE         the PEM private key of --tls-cert (required with it)
  --tls-ca FILE          mutual TLS: the coordinator refuses clients without a certificate
                         this PEM CA signed (set WEFT_TLS_CERT and WEFT_TLS_KEY for them)
  --tag-output           prefix every output line with "[rank K] " (default)
  --no-tag-output        print the ranks' lines unchanged
  -h, --help             this text
  --help-env             the environment variables weft reads, with defaults

Exit status:
  0      every rank exited 0
  1      the job failed: a rank exited with an error (weftrun names the rank and its code)
  2      bad usage: a mistake on weftrun's command line, a program that cannot be started,
         or a rank that exited with 2 (a mistake in the program's own flags)
  75     the job was preempted: every rank saved a checkpoint and stopped (weft-train)
  128+N  a rank was killed by signal N (or exited with 128+N, as a shell reports a killed
         child), or weftrun itself got signal N and passed it on (SIGINT: 130, SIGTERM: 143)

Each rank runs in a process group of its own, and weftrun signals the whole group, so what a
rank starts (a wrapper script's child, data-loader workers) ends with it. When a rank fails,
weftrun names it, tells the others through the rendezvous store (ranks still setting up need
not wait for it), stops those still running after the grace period, and removes the dead
rank's files in /dev/shm; files left there by jobs whose processes are gone are swept when
weftrun starts. A rank the coordinator declares lost (silent past the heartbeat timeout: hung
or stopped) fails the job likewise, and gets SIGKILL when the grace period ends.
SIGINT, SIGTERM, SIGHUP and SIGUSR1 sent to weftrun are passed on to every rank; ranks still
running --preempt-timeout later get SIGKILL, and a second signal kills them at once. weft-train
with --ckpt-dir takes SIGTERM and SIGUSR1 as a preemption notice (Slurm's
`#SBATCH --signal=B:USR1@120`): its ranks finish the step they are in, agree on it, commit a
checkpoint there and exit with status 75; a job whose ranks all end so exits 75 (never
restarted by --elastic).
With --elastic each restart is printed with its reason, the generation and the new size; the
ranks get WEFT_RESTART_COUNT (0, then 1, 2, ...) and rejoin the same coordinator under the new
generation; a restart never outlives --max-restarts.

examples:
  weftrun -n 4 --backend shm -- ./weft-train --steps 100
  # on 10.0.0.1 and on 10.0.0.2 (I = 0 and 1), after the same export WEFT_TOKEN=...:
  weftrun --nnodes 2 --node-rank I --coordinator 10.0.0.1:29400 -n 4 -- ./weft-train
  weftrun -n 4 --elastic --min-ranks 2 -- ./weft-train --steps 1000 --ckpt-dir ckpt --ckpt-every 50
)";
}

std::string env_help_text() {
  size_t name_width = 4, default_width = 7;
  for (const env::Var& v : env::all()) {
    name_width = std::max(name_width, std::string_view(v.name).size());
    default_width = std::max(default_width, std::string_view(v.default_value).size());
  }
  std::ostringstream os;
  auto row = [&](std::string_view name, std::string_view def, std::string_view meaning) {
    os << "  " << name << std::string(name_width - name.size() + 2, ' ') << def
       << std::string(default_width - def.size() + 2, ' ') << meaning << "\n";
  };
  os << "Environment variables weft reads (an empty default means weftrun sets it):\n\n";
  row("NAME", "DEFAULT", "MEANING");
  for (const env::Var& v : env::all()) row(v.name, v.default_value, v.meaning);
  return os.str();
}

}  // namespace weft::launcher
