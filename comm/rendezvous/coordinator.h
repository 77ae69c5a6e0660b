#pragma once
// The coordinator: the one service a job's ranks meet through, over gRPC (proto/coordinator.proto).
// One Coordinator per job (in weftrun, in weft-coordinator for jobs across machines, or in rank 0
// under torchrun-style variables) and a CoordinatorStore per rank, which is the Store the rest of
// weft sees.
//
// Who may talk to it: every request carries the job token (comm/rendezvous/job_token.h); a
// stranger is refused and logged with its address before it can read or write a key, so it takes
// no rank's place. Requests also carry the generation the caller knows and its rank.
//
// Liveness: a rank joins (join_as) and from then on beats from a thread of its own, so a rank
// busy in a long kernel still beats. A rank whose beats stop for longer than the heartbeat
// timeout (hung, or stopped with SIGSTOP), or whose beat stream ends before it leaves (it died),
// is declared lost: the coordinator posts the job's death notice (kRankLostKey) naming it and
// bumps the generation. From then on every request of the earlier generation, and every get or
// wait still waiting, fails with PeerLost quoting the notice: the ranks' pending and next store
// waits, and through check_members and the abort channel their collectives.
#include <chrono>
#include <memory>
#include <string>

#include "comm/rendezvous/store.h"
#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::comm {

// The coordinator's TLS files (weft-coordinator's and weftrun's --tls-cert, --tls-key,
// --tls-ca), PEM paths: no cert, plain gRPC; cert and key, TLS; a CA too, mutual TLS (every client
// must present a certificate that CA signed). Ranks set theirs with WEFT_TLS_CA, WEFT_TLS_CERT and
// WEFT_TLS_KEY (coordinator_credentials.h).
struct TlsFiles {
  std::string cert, key, ca;
};
// InvalidArgument, naming the flags, unless `tls` is empty, cert and key, or all three.
inline void check_tls_flags(const TlsFiles& tls) {
  if (tls.cert.empty() != tls.key.empty())
    throw Error(ErrorCode::InvalidArgument,
                std::string(tls.cert.empty() ? "--tls-key" : "--tls-cert") + " needs " +
                    (tls.cert.empty() ? "--tls-cert" : "--tls-key") +
                    ": TLS needs the certificate and its private key");
  if (!tls.ca.empty() && tls.cert.empty())
    throw Error(ErrorCode::InvalidArgument,
                "--tls-ca needs --tls-cert and --tls-key: mutual TLS is TLS with client "
                "certificates, and the coordinator needs its own certificate first");
}

struct CoordinatorOptions {
  // Silence from a joined rank for this long declares it lost; zero: never (beats are not
  // required). Default: WEFT_HEARTBEAT_TIMEOUT.
  std::chrono::milliseconds heartbeat_timeout;
  TlsFiles tls = {};  // none by default: plain gRPC
  static CoordinatorOptions from_env() { return {env::heartbeat_timeout()}; }
};

class Coordinator {
 public:
  // Listens on bind_host:port (port 0 picks a free one). Unavailable when weft was built without
  // gRPC.
  Coordinator(const std::string& bind_host, int port, std::string token,
              CoordinatorOptions options = CoordinatorOptions::from_env());
  ~Coordinator();  // stops serving; waiting callers get Unavailable (or PeerLost, see served_by)
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  int port() const;
  // Posts the job's death notice, as a launcher does when it sees a rank die: every rank waiting
  // in the store fails with PeerLost quoting `notice`. Any thread; only the first notice is kept.
  void post_rank_lost(const std::string& notice);
  // The generation: 1 at the start, one more for every loss (and every begin_generation after
  // a generation that ended without one).
  uint64_t generation() const;
  // This generation's death notice (empty while it has none) and the rank the coordinator itself
  // declared lost (its stream ended or its beats stopped; -1 for a launcher's notice).
  struct Loss {
    std::string notice;
    int rank = -1;
    bool silent = false;  // the rank went silent (hung, stopped) rather than away (exited)
  };
  Loss loss() const;
  // For a launcher that restarts the job (weftrun --elastic) once every process of the last
  // generation is gone: a fresh generation, with no keys, no members, no notice, and a world size
  // the first join fixes anew (it may be smaller). Requests of earlier generations keep failing
  // with ABORTED; new ranks learn the generation when they connect.
  void begin_generation();
  // Waits until every rank that joined has left, or a loss, or `deadline`; true when all left.
  // A launcher whose own ranks are done keeps serving the ranks of other machines while they
  // finish (they leave as they close weft).
  bool wait_until_all_left(Deadline deadline);

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Also the job's checkpoint committer (store.h): a rank's report goes to the coordinator, which
// commits the step when every rank's is in.
class CoordinatorStore : public Store, public CheckpointCommitter {
 public:
  // Connects (retrying until the deadline, as the coordinator may start later) and presents the
  // token. A refusal says where the token came from (`token_origin`) and what to check.
  static std::unique_ptr<CoordinatorStore> connect(
      const std::string& host, int port, const std::string& token, Deadline deadline,
      const std::string& token_origin =
          "WEFT_TOKEN, which must be the one the launcher gave this job");
  // "host:port" form.
  static std::unique_ptr<CoordinatorStore> connect(const std::string& address,
                                                   const std::string& token, Deadline deadline);
  ~CoordinatorStore() override;  // leaves the job (when joined) and stops beating

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, Deadline deadline) override;
  int64_t add(const std::string& key, int64_t delta) override;
  void wait(const std::vector<std::string>& keys, Deadline deadline) override;
  void check_members() override;
  // Called on the beat thread when the coordinator ends this rank's generation (see above).
  std::shared_ptr<void> watch_losses(std::function<void(const std::string&)> on_lost) override;
  CheckpointCommitter* checkpoint_committer() override { return this; }
  void commit_shard(const std::string& dir, int64_t step, int keep, const std::string& job,
                    const std::string& report, Deadline deadline) override;
  // Joins the job as rank `rank` of `world_size` and starts beating. If the beats stop before
  // this store is destroyed (the rank died, hung, was stopped, or exited without closing weft),
  // the coordinator declares it lost (see above). Destroying the store leaves.
  void join_as(int rank, int world_size);
  // The coordinator is run by rank `rank` of the job (rank 0 under torchrun-style variables):
  // losing it then means that rank is gone, a PeerLost naming it.
  void served_by(int rank);
  // The address of this host as seen by the coordinator: what peers on other hosts can reach.
  std::string local_host() const;
  // Whether the coordinator answers a hello on this connection by `deadline`, whatever the
  // generation: a launcher on another machine watches this way for losing it.
  bool answers(Deadline deadline);
  // Posts the job's death notice, as Coordinator::post_rank_lost does, for a launcher whose
  // ranks' coordinator runs on another machine; waits for the coordinator until `deadline` only
  // (a launcher cut off from it must not hang in its event loop).
  void post_rank_lost(const std::string& notice, Deadline deadline);

  struct Client;

 private:
  explicit CoordinatorStore(std::unique_ptr<Client> client);
  std::unique_ptr<Client> client_;
};

}  // namespace weft::comm
