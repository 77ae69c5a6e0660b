#pragma once
// A Store served over TCP: one server (in weftrun, or rank 0 under torchrun-style launch) and a
// client per rank. Every connection first presents the job token (comm/job_token.h); strangers
// are refused and logged with their address before they can read or write a key, so they take
// no rank's place. Waits are answered by the server when the keys appear, so clients sleep,
// not poll.
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "comm/rendezvous/store.h"

namespace weft::comm {

class TcpStoreServer {
 public:
  // Listens on bind_host:port (port 0 picks a free one).
  TcpStoreServer(const std::string& bind_host, int port, std::string token);
  ~TcpStoreServer();  // stops and joins the server thread
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  int port() const;
  // Posts the job's death notice (kRankLostKey), as a launcher does when it sees a rank die:
  // every rank waiting in the store fails with PeerLost quoting `notice`. Any thread; only the
  // first notice is kept, whoever posts it.
  void post_rank_lost(const std::string& notice);

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::thread thread_;
};

class TcpStore : public Store {
 public:
  // Connects (retrying until the deadline, as the server may start later) and authenticates.
  // A refusal says where the token came from (`token_origin`) and what to check.
  static std::unique_ptr<TcpStore> connect(
      const std::string& host, int port, const std::string& token, Deadline deadline,
      const std::string& token_origin =
          "WEFT_TOKEN, which must be the one the launcher gave this job");
  // "host:port" form.
  static std::unique_ptr<TcpStore> connect(const std::string& address, const std::string& token,
                                           Deadline deadline);
  ~TcpStore() override;

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, Deadline deadline) override;
  int64_t add(const std::string& key, int64_t delta) override;
  void wait(const std::vector<std::string>& keys, Deadline deadline) override;
  void check_members() override;
  // Tells the server this connection is rank `rank` of the job: if it closes before this store
  // is destroyed (the rank died, was killed, or exited without closing weft), the server posts
  // the job's death notice naming the rank (see kRankLostKey). Destroying the store leaves.
  void join_as(int rank);
  // The store is served by rank `rank` of the job (rank 0 under torchrun-style variables):
  // losing it then means that rank is gone, a PeerLost naming it.
  void served_by(int rank);
  // The address of this host as seen by the server: what peers on other hosts can reach.
  std::string local_host() const;

 private:
  struct Conn;
  explicit TcpStore(std::unique_ptr<Conn> conn);
  std::unique_ptr<Conn> conn_;
  bool joined_ = false;
};

}  // namespace weft::comm
