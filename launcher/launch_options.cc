#include "launcher/launch_options.h"

#include <algorithm>
#include <sstream>
#include <string_view>

#include "comm/backend_registry.h"
#include "launcher/node_layout.h"
#include "runtime/command_line.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::launcher {
namespace {

constexpr const char* kExample = "weftrun -n 4 -- ./my_program --its-flags";

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

// A number of seconds: positive (--timeout), or also 0 where 0 means "at once" or "never".
CLI::Validator seconds(bool allow_zero) {
  return CLI::Validator(
      [allow_zero, number = cli::finite_number(0)](std::string& text) -> std::string {
        std::string checked = text;  // read as every other number of weft's flags is
        if (number(checked).empty() && (allow_zero || std::stod(text) > 0)) return "";
        return std::string("expects a ") + (allow_zero ? "non-negative" : "positive") +
               " number of seconds, got '" + text + "' (for example: 30)";
      },
      "S");
}

}  // namespace

LaunchOptions parse_launch_options(const std::vector<std::string>& args) {
  LaunchOptions options;
  // --help and --help-env win over every other mistake before "--": whoever asks for help
  // after a typo should get the help, not another error.
  auto separator = std::find(args.begin(), args.end(), "--");
  if (cli::asks_for_help(args)) {
    options.action = LaunchOptions::Action::help;
    return options;
  }
  if (std::find(args.begin(), separator, "--help-env") != separator) {
    options.action = LaunchOptions::Action::help_env;
    return options;
  }

  // weftrun's own flags end at the first "--"; what follows is the program's, never parsed.
  std::vector<std::string> flags(args.begin(), separator);
  for (std::string& flag : flags)
    if (flag == "-np") flag = "--np";  // mpirun's spelling
  std::optional<int> min_ranks;
  CLI::App app("", "weftrun");
  app.add_option("-n", options.num_ranks)->check(cli::whole_number(1, kMaxRanks));
  app.add_option("--np", options.num_ranks)->check(cli::whole_number(1, kMaxRanks));
  app.add_option("--backend", options.backend)->check([](const std::string& name) {
    comm::find_backend(name);  // throws, naming the registry's list
    return std::string();
  });
  app.add_option("--timeout", options.timeout)->check(seconds(/*allow_zero=*/false));
  app.add_option("--grace", options.grace_seconds)->check(seconds(true));
  app.add_option("--heartbeat-timeout", options.heartbeat_timeout_seconds)->check(seconds(true));
  app.add_option("--preempt-timeout", options.preempt_timeout_seconds)->check(seconds(true));
  app.add_flag("--elastic", options.elastic);
  app.add_option("--min-ranks", min_ranks)->check(cli::whole_number(1, kMaxRanks));
  app.add_option("--max-restarts", options.max_restarts)->check(cli::whole_number(0, 1'000'000));
  app.add_option("--nnodes", options.num_nodes)->check(cli::whole_number(1, kMaxNodes));
  app.add_option("--node-rank", options.node_rank)->check(cli::whole_number(0, kMaxNodes - 1));
  app.add_option("--coordinator", options.coordinator);
  app.add_option("--tls-cert", options.tls.cert);
  app.add_option("--tls-key", options.tls.key);
  app.add_option("--tls-ca", options.tls.ca);
  app.add_flag("--tag-output,!--no-tag-output", options.tag_output);
  cli::parse(app, flags,
             "; run weftrun --help for the flags, and put the program's own flags after '--': " +
                 std::string(kExample),
             [](const std::string& arg) {
               return "'" + arg + "' comes before '--': weftrun needs '--' between its flags " +
                      "and the program, as in " + kExample;
             });

  if (options.num_ranks == 0)
    fail("-n is required: how many ranks to start, as in " + std::string(kExample));
  if (separator == args.end())
    fail("missing '--' and the program to run, as in " + std::string(kExample));
  options.command.assign(separator + 1, args.end());
  if (options.command.empty() || options.command[0].empty())
    fail("no program after '--': give the program and its arguments, as in " +
         std::string(kExample));
  bool saw_max_restarts = app.count("--max-restarts") > 0;
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
                         implies --resume when --ckpt-dir is set); across machines node 0
                         restarts with its own ranks alone and the others exit
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
