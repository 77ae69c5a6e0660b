// weft-coordinator: a job's coordinator (comm/rendezvous/coordinator.h) run alone, for jobs
// across machines: start it on one node, then every rank (on any node) with
// WEFT_STORE_ADDR=<this host>:<port> and the same WEFT_TOKEN. It serves until SIGINT or SIGTERM.
// Exit codes: 0 stopped by a signal, 2 bad usage, 1 could not serve.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "comm/rendezvous/coordinator.h"
#include "comm/rendezvous/job_token.h"
#include "runtime/command_line.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace {

constexpr char kUsage[] =
    "usage: weft-coordinator --port PORT [--bind HOST] [--token-file FILE]\n"
    "                        [--heartbeat-timeout SECONDS]\n"
    "                        [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]\n"
    "\n"
    "Runs a weft job's coordinator (rendezvous, store, heartbeats) until SIGINT or SIGTERM.\n"
    "Start every rank with WEFT_STORE_ADDR=HOST:PORT and the job's WEFT_TOKEN.\n"
    "\n"
    "  --port PORT              the port to listen on (0: a free one, printed)\n"
    "  --bind HOST              the address to listen on (default 127.0.0.1, this machine\n"
    "                           only; 0.0.0.0 = every interface)\n"
    "  --token-file FILE        the job token, the file's first line (default: WEFT_TOKEN;\n"
    "                           on loopback without either, this user's secret)\n"
    "  --heartbeat-timeout S    a rank silent for S seconds is declared lost and every other\n"
    "                           rank fails naming it (default: WEFT_HEARTBEAT_TIMEOUT, 5;\n"
    "                           0 = never)\n"
    "  --tls-cert FILE          serve over TLS with this PEM certificate (it must name the\n"
    "                           host the ranks connect to, as DNS or IP subject alt name);\n"
    "                           the ranks then need WEFT_TLS_CA, the CA that signed it\n"
    "  --tls-key FILE           the PEM private key of --tls-cert (required with it)\n"
    "  --tls-ca FILE            mutual TLS: refuse every client without a certificate this\n"
    "                           PEM CA signed (ranks set WEFT_TLS_CERT and WEFT_TLS_KEY)\n";

struct Options {
  std::string bind = "127.0.0.1";
  int port = -1;
  std::string token_file;
  std::string heartbeat_timeout;
  weft::comm::TlsFiles tls;
};

// The flags, or nothing after printing --help.
std::optional<Options> parse(const std::vector<std::string>& args) {
  if (weft::cli::asks_for_help(args)) {
    std::fputs(kUsage, stdout);
    return std::nullopt;
  }
  Options o;
  CLI::App app("", "weft-coordinator");
  app.add_option("--bind", o.bind);
  app.add_option("--port", o.port)->transform(weft::cli::whole_number(0, 65535));
  app.add_option("--token-file", o.token_file);
  app.add_option("--heartbeat-timeout", o.heartbeat_timeout);
  app.add_option("--tls-cert", o.tls.cert);
  app.add_option("--tls-key", o.tls.key);
  app.add_option("--tls-ca", o.tls.ca);
  weft::cli::parse(app, args);
  if (o.port < 0)
    throw weft::Error(weft::ErrorCode::InvalidArgument, "--port needs a port number, 0 to 65535");
  weft::comm::check_tls_flags(o.tls);
  return o;
}

// The token, by job_token.h's rules: given (file or WEFT_TOKEN); this user's secret when only
// this machine can reach the coordinator; otherwise required.
std::string job_token(const Options& o) {
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file);
    std::string token;
    if (!in || !std::getline(in, token) || token.empty())
      throw weft::Error(weft::ErrorCode::InvalidArgument,
                        "--token-file " + o.token_file +
                            ": cannot read a token from its first line");
    return token;
  }
  return weft::comm::coordinator_token(o.bind, "--bind " + o.bind);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string token;
  weft::comm::CoordinatorOptions copts;
  try {
    std::optional<Options> parsed = parse(std::vector<std::string>(argv + 1, argv + argc));
    if (!parsed) return 0;
    o = *parsed;
    if (!o.heartbeat_timeout.empty())
      ::setenv("WEFT_HEARTBEAT_TIMEOUT", o.heartbeat_timeout.c_str(), 1);  // parsed, checked once
    copts = weft::comm::CoordinatorOptions::from_env();
    copts.tls = o.tls;
    token = job_token(o);
  } catch (const weft::Error& e) {
    std::fprintf(stderr, "weft-coordinator: error: %s\nRun 'weft-coordinator --help' for usage.\n",
                 e.message().c_str());
    return 2;
  }
  // The signals are waited for, not handled: blocked before gRPC starts its threads, which
  // inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  try {
    weft::comm::Coordinator coordinator(o.bind, o.port, token, copts);
    std::printf("weft-coordinator: listening on %s:%d (heartbeat timeout %.1f s%s)\n",
                o.bind.c_str(), coordinator.port(), copts.heartbeat_timeout.count() / 1000.0,
                o.tls.cert.empty() ? "" : o.tls.ca.empty() ? ", TLS" : ", mutual TLS");
    std::fflush(stdout);
    int signo = 0;
    sigwait(&set, &signo);
  } catch (const weft::Error& e) {
    std::fprintf(stderr, "weft-coordinator: %s\n", e.message().c_str());
    return 1;
  }
  return 0;
}
