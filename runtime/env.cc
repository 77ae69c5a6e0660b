#include "runtime/env.h"

#include <cstdlib>
#include <cstring>

#include "runtime/error.h"

namespace weft::env {
namespace {

constexpr Var kEnvVars[] = {
    {"WEFT_LOG", "warn", "log level: error, warn, info or debug"},
    {"WEFT_TIMEOUT", "300",
     "seconds any collective or rendezvous may wait before failing with Timeout"},
    {"WEFT_BACKEND", "auto",
     "collective backend when no --backend flag names one: a name that "
     "`weftrun --help` lists (auto = shm on one node, tcp otherwise)"},
    {"WEFT_ALGO", "auto",
     "force an allreduce algorithm: ring, recursive_doubling, one_shot or auto"},
    {"WEFT_ONE_SHOT_BYTES", "256",
     "allreduce messages up to this size, on up to 8 ranks, go from every rank to every rank "
     "at once (one wait instead of log2(ranks))"},
    {"WEFT_SMALL_BYTES", "65536",
     "allreduce messages up to this size use recursive doubling instead of the ring"},
    {"WEFT_SEGMENT_BYTES", "131072",
     "pipelining segment: ring chunks move and reduce in pieces of this size"},
    {"WEFT_DIRECT_BYTES", "65536",
     "allreduce messages from this size on, in registered memory (Communicator::alloc) on every "
     "rank of an shm group, run in place, each rank reducing its share from its peers' buffers"},
    {"WEFT_HIERARCHY", "1",
     "1: in a tcp job across nodes, allreduce inside each node over shared memory (in place on "
     "registered memory), then across the nodes' leaders, then inside each node again; 0 (on any "
     "rank): every rank on the flat algorithms over tcp"},
    {"WEFT_SHM_RING_BYTES", "1048576", "bytes of each shared-memory FIFO between two ranks"},
    {"WEFT_SHM_CMA", "0",
     "1: large shm messages from plain memory are read straight from the sender's buffer "
     "(process_vm_readv) where the kernel allows it; 0: always through the FIFOs (measured "
     "faster on the machines weft is tested on)"},
    {"WEFT_SHM_CMA_BYTES", "1048576",
     "shm messages of at least this size (and too large for the FIFO, WEFT_SHM_RING_BYTES) are "
     "read straight from the sender's memory when WEFT_SHM_CMA is 1"},
    {"WEFT_PEER_CHECK_MS", "200", "how often a waiting rank checks that its peers are alive"},
    {"WEFT_RANK", "", "set by weftrun: this process's rank"},
    {"WEFT_WORLD_SIZE", "", "set by weftrun: number of ranks"},
    {"WEFT_LOCAL_RANK", "", "set by weftrun: rank among the ranks on this node"},
    {"WEFT_LOCAL_WORLD_SIZE", "", "set by weftrun: number of ranks on this node"},
    {"WEFT_NODE_RANK", "", "set by weftrun: index of this node"},
    {"WEFT_JOB_ID", "", "set by weftrun: job id; names shared-memory files and guards connections"},
    {"WEFT_TOKEN", "", "set by weftrun: secret every connection presents; strangers are refused. "
     "Under torchrun-style launch across machines, set it yourself: "
     "export WEFT_TOKEN=$(openssl rand -hex 16), the same on every node"},
    {"WEFT_STORE_ADDR", "", "set by weftrun: host:port of the rendezvous store"},
    {"WEFT_RESTART_COUNT", "0",
     "set by weftrun: how many times --elastic restarted the job before this generation (with "
     "--ckpt-dir, weft-train resumes from the newest checkpoint when it is above 0)"},
    {"WEFT_STORE_BIND", "", "under torchrun-style launch: the address rank 0's store listens on "
     "(default MASTER_ADDR; 0.0.0.0 = every interface)"},
    {"WEFT_HEARTBEAT_TIMEOUT", "5",
     "seconds a rank may go without a heartbeat to the coordinator before it is declared lost "
     "(hung or stopped) and every other rank fails with PeerLost naming it; 0 = never"},
    {"WEFT_TLS_CA", "",
     "PEM file of the CA that signed the coordinator's certificate (weft-coordinator or weftrun "
     "--tls-cert): set, the ranks reach the coordinator over TLS; unset, plain"},
    {"WEFT_TLS_CERT", "",
     "PEM file of this rank's client certificate, for a coordinator given --tls-ca (mutual TLS); "
     "needs WEFT_TLS_KEY and WEFT_TLS_CA"},
    {"WEFT_TLS_KEY", "", "PEM file of the private key of WEFT_TLS_CERT"},
    {"WEFT_INSECURE", "0", "1 lets a torchrun-style job across machines run without WEFT_TOKEN: "
     "anyone who can reach its ports can join it (a warning on every rank)"},
};

}  // namespace

std::span<const Var> all() { return kEnvVars; }

std::string get(const char* name) {
  for (const Var& v : kEnvVars) {
    if (std::strcmp(v.name, name) != 0) continue;
    const char* value = std::getenv(name);
    return value && *value ? value : v.default_value;
  }
  throw Error(ErrorCode::Internal, std::string("environment variable ") + name +
                                       " is not declared in runtime/env.cc");
}

double get_double(const char* name) {
  std::string v = get(name);
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0')
    throw Error(ErrorCode::InvalidArgument,
                std::string(name) + "='" + v + "' is not a number");
  return d;
}

long long get_int(const char* name) {
  std::string v = get(name);
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0')
    throw Error(ErrorCode::InvalidArgument,
                std::string(name) + "='" + v + "' is not an integer");
  return n;
}

size_t parse_bytes(const std::string& text, const char* what) {
  char* end = nullptr;
  double n = std::strtod(text.c_str(), &end);
  double mult = 1;
  std::string suffix = end ? end : "";
  if (suffix == "K" || suffix == "k" || suffix == "KiB") mult = 1024.0;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") mult = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (!suffix.empty() && suffix != "B")
    throw Error(ErrorCode::InvalidArgument, std::string(what) + ": '" + text +
                                                "' is not a size (use e.g. 8, 1K, 64M, 1G)");
  if (text.empty() || end == text.c_str() || n < 0)
    throw Error(ErrorCode::InvalidArgument, std::string(what) + ": '" + text +
                                                "' is not a size (use e.g. 8, 1K, 64M, 1G)");
  return static_cast<size_t>(n * mult);
}

std::chrono::milliseconds timeout() {
  double s = get_double("WEFT_TIMEOUT");
  if (s <= 0)
    throw Error(ErrorCode::InvalidArgument, "WEFT_TIMEOUT must be a positive number of seconds");
  return std::chrono::milliseconds(static_cast<long long>(s * 1000));
}

std::chrono::milliseconds heartbeat_timeout() {
  double s = get_double("WEFT_HEARTBEAT_TIMEOUT");
  if (s < 0)
    throw Error(ErrorCode::InvalidArgument,
                "WEFT_HEARTBEAT_TIMEOUT must be a number of seconds (0 = no deadline)");
  return std::chrono::milliseconds(static_cast<long long>(s * 1000));
}

}  // namespace weft::env
