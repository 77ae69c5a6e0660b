// The TCP store's client (comm/rendezvous/store_wire.h has the protocol).
#include "comm/rendezvous/store_tcp.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "comm/rendezvous/job_token.h"
#include "comm/rendezvous/store_tcp.h"
#include "comm/rendezvous/store_wire.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/socket.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
using namespace store_wire;

constexpr auto kReplyGrace = 5s;  // how late past its deadline a reply may come

// d + extra, saturating: callers may pass Deadline::max() for "no deadline".
Deadline later(Deadline d, Clock::duration extra) {
  return d > Deadline::max() - extra ? Deadline::max() : d + extra;
}

std::string remaining_ms(Deadline d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  return std::to_string(std::max<long long>(0, ms));
}

}  // namespace

// One connection shared by the threads of a rank. A caller writes its request, then waits for
// the reply with its id; whichever waiting caller finds no one reading becomes the reader and
// hands every reply it reads to its owner.
struct TcpStore::Conn {
  std::string address;
  UniqueFd fd;
  std::mutex write_mu;
  std::mutex mu;
  std::condition_variable cv;
  uint32_t next_id = 1;
  bool reader_busy = false;
  std::string broken;                   // why the connection is unusable; empty while healthy
  std::map<uint32_t, Message> arrived;  // replies not yet claimed by their caller
  std::set<uint32_t> abandoned;         // ids whose caller gave up: drop their replies
  int server_rank = -1;                 // the rank of the job that serves the store, if one does

  std::string gone(const std::string& during) const {
    if (server_rank >= 0)
      return "rank " + std::to_string(server_rank) + ", which served the job's store at " +
             address + ", is gone (" + during + "): it died or exited; check its output";
    return "the store at " + address + " is gone (" + during +
           "): the launcher (weftrun) or the rank that served it has probably exited; check its "
           "output";
  }
  // Losing a store that a rank served means losing that rank.
  ErrorCode broken_code() const {
    return server_rank >= 0 ? ErrorCode::PeerLost : ErrorCode::Unavailable;
  }

  Message call(uint8_t code, const std::vector<std::string>& parts, Deadline reply_deadline,
               const std::string& what) {
    std::unique_lock lock(mu);
    if (!broken.empty()) throw Error(broken_code(), broken);
    uint32_t id = next_id++;
    lock.unlock();
    {
      std::string m = encode(id, code, parts);
      std::lock_guard wlock(write_mu);
      try {
        write_exact(fd.get(), m.data(), m.size(), reply_deadline, "store request");
      } catch (const Error& e) {
        mark_broken(gone("could not send " + what + ": " + e.message()));
      }
    }
    lock.lock();
    for (;;) {
      if (auto it = arrived.find(id); it != arrived.end()) {
        Message reply = std::move(it->second);
        arrived.erase(it);
        return reply;
      }
      if (!broken.empty()) throw Error(broken_code(), broken);
      if (Clock::now() >= reply_deadline) {
        abandoned.insert(id);
        throw Error(ErrorCode::Timeout, "the store at " + address + " did not answer " + what +
                                            " in time; it may be overloaded or hung");
      }
      if (reader_busy) {
        cv.wait_until(lock, reply_deadline);
        continue;
      }
      reader_busy = true;
      lock.unlock();
      std::optional<Message> reply;
      std::string failure;
      try {
        reply = read_reply(reply_deadline);
      } catch (const Error& e) {
        failure = gone(std::string("while waiting for ") + what + ": " + e.message());
      }
      lock.lock();
      reader_busy = false;
      if (!failure.empty() && broken.empty()) broken = failure;
      if (reply && !abandoned.erase(reply->id)) arrived[reply->id] = std::move(*reply);
      cv.notify_all();
    }
  }

  // Sleeps until a reply arrives (nullopt at the deadline) and reads it whole.
  std::optional<Message> read_reply(Deadline deadline) {
    pollfd pfd{fd.get(), POLLIN, 0};
    int n = ::poll(&pfd, 1, poll_timeout_ms(deadline, 60'000));
    if (n <= 0) return std::nullopt;  // the caller re-checks its deadline and loops
    uint32_t len = 0;
    Deadline rest = Clock::now() + 30s;  // a reply that has started arrives whole promptly
    if (!read_exact(fd.get(), &len, 4, rest, "store reply"))
      throw Error(ErrorCode::Unavailable, "connection closed");
    if (len < 5 || len > kMaxMessage)
      throw Error(ErrorCode::Corrupt, "malformed reply (length " + std::to_string(len) + ")");
    std::string body(len, '\0');
    read_exact(fd.get(), body.data(), len, rest, "store reply");
    Message m;
    if (!decode(body.data(), body.size(), m)) throw Error(ErrorCode::Corrupt, "malformed reply");
    return m;
  }

  void mark_broken(const std::string& why) {
    std::lock_guard lock(mu);
    if (broken.empty()) broken = why;
    cv.notify_all();
  }
};

TcpStore::TcpStore(std::unique_ptr<Conn> conn) : conn_(std::move(conn)) {}

TcpStore::~TcpStore() {
  if (!joined_) return;
  // Leaving on purpose is not dying: the server must not tell the job this rank was lost.
  try {
    conn_->call(kLeave, {}, Clock::now() + 1s, "leave");
  } catch (const Error&) {
    // The server is gone (the rank that served it exited first): there is no one to tell.
  }
}

std::unique_ptr<TcpStore> TcpStore::connect(const std::string& host, int port,
                                            const std::string& token, Deadline deadline,
                                            const std::string& token_origin) {
  auto conn = std::make_unique<Conn>();
  conn->address = host + ":" + std::to_string(port);
  try {
    conn->fd = connect_tcp(host, port, deadline);
  } catch (const Error& e) {
    throw Error(ErrorCode::Unavailable,
                "no weft store answers at " + conn->address + " (" + e.message() +
                    "); is the launcher running, and is WEFT_STORE_ADDR (or MASTER_ADDR and "
                    "MASTER_PORT) right?");
  }
  set_nodelay(conn->fd.get());
  Message reply;
  try {
    reply = conn->call(kHello, {kProtocol, token}, later(Clock::now(), kReplyGrace), "hello");
  } catch (const Error& e) {
    throw Error(ErrorCode::Unavailable, "the store at " + conn->address +
                                            " refused this rank or is not a weft store (" +
                                            e.message() +
                                            "); check that WEFT_TOKEN matches the "
                                            "launcher's");
  }
  if (reply.code != kOk)
    throw Error(ErrorCode::Unavailable, "the store at " + conn->address + " refused this rank: " +
                                            (reply.parts.empty() ? "" : reply.parts[0]) +
                                            "; this rank presented the token from " + token_origin);
  return std::unique_ptr<TcpStore>(new TcpStore(std::move(conn)));
}

std::unique_ptr<TcpStore> TcpStore::connect(const std::string& address, const std::string& token,
                                            Deadline deadline) {
  HostPort hp = parse_host_port(address, "store address");
  return connect(hp.host, hp.port, token, deadline);
}

namespace {

// A failed reply is a bug or misuse on this side (a malformed request, adding to text); a
// peer_lost one means the job has lost a rank, so what the caller waits for may never come.
void throw_if_failed(const Message& reply, const std::string& store, const std::string& what) {
  std::string text = reply.parts.empty() ? "" : reply.parts[0];
  if (reply.code == kFailed)
    throw Error(ErrorCode::InvalidArgument,
                "the store at " + store + " rejected a request: " + text);
  if (reply.code == kPeerLost)
    throw Error(ErrorCode::PeerLost, text + " (this rank was waiting for " + what + ")");
}

Deadline quick_request_deadline() { return later(Clock::now(), env::timeout()); }

}  // namespace

void TcpStore::set(const std::string& key, const std::string& value) {
  throw_if_failed(conn_->call(kSet, {key, value}, quick_request_deadline(), "set '" + key + "'"),
                  conn_->address, "");
}

std::string TcpStore::get(const std::string& key, Deadline deadline) {
  Clock::time_point start = Clock::now();
  Message reply = conn_->call(kGet, {key, remaining_ms(deadline)}, later(deadline, kReplyGrace),
                              "get '" + key + "'");
  throw_if_failed(reply, conn_->address, "store key '" + key + "'");
  if (reply.code == kTimedOut)
    throw Error(ErrorCode::Timeout,
                "store key '" + key + "' did not appear within " +
                    std::to_string(static_cast<int>(seconds_since(start))) +
                    " s: a rank may not have started, or failed before publishing it; check "
                    "every rank's output (or raise WEFT_TIMEOUT if ranks start slowly)");
  if (reply.code != kOk || reply.parts.size() != 1)
    throw Error(ErrorCode::Corrupt, "the store at " + conn_->address + " sent a malformed reply");
  return std::move(reply.parts[0]);
}

int64_t TcpStore::add(const std::string& key, int64_t delta) {
  Message reply = conn_->call(kAdd, {key, std::to_string(delta)}, quick_request_deadline(),
                              "add '" + key + "'");
  throw_if_failed(reply, conn_->address, "");
  int64_t value = 0;
  if (reply.parts.size() != 1 || !parse_int(reply.parts[0], value))
    throw Error(ErrorCode::Corrupt, "the store at " + conn_->address + " sent a malformed reply");
  return value;
}

void TcpStore::wait(const std::vector<std::string>& keys, Deadline deadline) {
  if (keys.empty()) return;
  Clock::time_point start = Clock::now();
  std::vector<std::string> parts = {remaining_ms(deadline)};
  parts.insert(parts.end(), keys.begin(), keys.end());
  Message reply = conn_->call(kWait, parts, later(deadline, kReplyGrace), "wait for " + join(keys));
  throw_if_failed(reply, conn_->address, "store key(s) " + join(keys));
  if (reply.code == kTimedOut)
    throw Error(ErrorCode::Timeout,
                "store key(s) " + join(reply.parts) + " did not appear within " +
                    std::to_string(static_cast<int>(seconds_since(start))) +
                    " s: a rank may not have started, or failed before publishing them; check "
                    "every rank's output (or raise WEFT_TIMEOUT if ranks start slowly)");
}

void TcpStore::check_members() {
  // A get that may not wait: the notice itself when there is one, timed_out otherwise.
  Message reply = conn_->call(kGet, {kRankLostKey, "0"}, quick_request_deadline(),
                              "get '" + std::string(kRankLostKey) + "'");
  if (reply.code == kOk && reply.parts.size() == 1)
    throw Error(ErrorCode::PeerLost, reply.parts[0]);
  throw_if_failed(reply, conn_->address, "");
}

void TcpStore::served_by(int rank) {
  std::lock_guard lock(conn_->mu);
  conn_->server_rank = rank;
}

void TcpStore::join_as(int rank) {
  Message reply = conn_->call(kJoin, {std::to_string(rank), std::to_string(getpid())},
                              quick_request_deadline(), "join");
  throw_if_failed(reply, conn_->address, "");
  joined_ = true;
}

std::string TcpStore::local_host() const { return local_ip(conn_->fd.get()); }

}  // namespace weft::comm
