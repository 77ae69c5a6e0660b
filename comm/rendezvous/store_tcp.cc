// The TCP store. Every message, both directions, is
//   [u32 length of the rest][u32 request id][u8 code][strings, each [u32 length][bytes]]
// Requests: hello(protocol, token) first, then set(key, value), get(key, timeout_ms),
// add(key, delta), wait(timeout_ms, keys...), join(rank, pid), leave(). Replies carry the
// request's id: ok(values...), timed_out(missing keys...), failed(message) or
// peer_lost(notice). The server answers get and wait when their keys exist (or with timed_out at
// the client's deadline), so clients sleep in poll(); ids let several threads share one
// connection, a get on one thread not blocking a set on another.
//
// Liveness: a rank joins once it has connected. If its connection closes before it leaves (the
// rank died, or exited without destroying its store), the server posts the job's death notice
// (kRankLostKey) naming it, and answers every get and wait still waiting, then and later, with
// peer_lost: ranks in set-up hear of a dead peer at once instead of at their deadline.
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
#include "runtime/socket.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;

enum Code : uint8_t {
  kHello = 1,
  kSet,
  kGet,
  kAdd,
  kWait,
  kJoin,
  kLeave,
  kOk = 100,
  kTimedOut,
  kFailed,
  kPeerLost
};
constexpr char kProtocol[] = "weft-store-1";
constexpr size_t kMaxMessage = 64u << 20;         // a value larger than this is not rendezvous data
constexpr size_t kMaxHelloMessage = 4096;         // before the token is checked, stay suspicious
constexpr size_t kMaxUnsentReplies = 256u << 20;  // a client that never reads is dropped
constexpr auto kHelloPatience = 10s;              // a connection must present its token by then
constexpr auto kReplyGrace = 5s;                  // how late past its deadline a reply may come
constexpr auto kLingerAfterLoss = 3s;             // see ~TcpStoreServer

// e.what() without its "Code: " prefix, for quoting inside another Error's message.
std::string bare_message(const Error& e) {
  std::string text = e.what();
  std::string prefix = std::string(error_code_name(e.code())) + ": ";
  return text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : text;
}

struct Message {
  uint32_t id = 0;
  uint8_t code = 0;
  std::vector<std::string> parts;
};

std::string encode(uint32_t id, uint8_t code, const std::vector<std::string>& parts) {
  size_t total = 4 + 1;
  for (const auto& p : parts) total += 4 + p.size();
  std::string m;
  m.reserve(4 + total);
  auto put_u32 = [&m](uint32_t v) { m.append(reinterpret_cast<const char*>(&v), 4); };
  put_u32(static_cast<uint32_t>(total));
  put_u32(id);
  m.push_back(static_cast<char>(code));
  for (const auto& p : parts) {
    put_u32(static_cast<uint32_t>(p.size()));
    m += p;
  }
  return m;
}

// Decodes a message body (everything after the length); false when malformed.
bool decode(const char* body, size_t size, Message& out) {
  if (size < 5) return false;
  std::memcpy(&out.id, body, 4);
  out.code = static_cast<uint8_t>(body[4]);
  for (size_t at = 5; at < size;) {
    uint32_t n;
    if (size - at < 4) return false;
    std::memcpy(&n, body + at, 4);
    at += 4;
    if (size - at < n) return false;
    out.parts.emplace_back(body + at, n);
    at += n;
  }
  return true;
}

bool parse_int(const std::string& s, int64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// d + extra, saturating: callers may pass Deadline::max() for "no deadline".
Deadline later(Deadline d, Clock::duration extra) {
  return d > Deadline::max() - extra ? Deadline::max() : d + extra;
}

std::string remaining_ms(Deadline d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  return std::to_string(std::max<long long>(0, ms));
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "'" : ", '") + i + "'";
  return s;
}

}  // namespace

// ---- server ----

struct TcpStoreServer::State {
  struct Client {
    UniqueFd fd;
    std::string address;
    std::string in, out;  // unparsed request bytes, unsent reply bytes
    bool authed = false;
    Deadline hello_deadline;
    std::string member;  // "rank R (pid P)" from join to leave: closing then means it died
  };
  struct Waiter {  // a get or wait whose keys are not all there yet
    Client* client;
    uint32_t id;
    bool is_get;
    std::vector<std::string> keys;
    Deadline deadline;
  };

  std::string token;
  UniqueFd listener;
  int port = 0;
  UniqueFd wake;  // eventfd: the destructor's stop signal, or a notice in `posted`
  std::atomic<bool> stopping{false};
  std::mutex posted_mu;  // post_rank_lost() runs on the launcher's threads
  std::vector<std::string> posted;
  // For the destructor's thread: whether the job lost a rank, and how many members are still
  // connected.
  std::atomic<bool> lost{false};
  std::atomic<int> members{0};
  std::list<Client> clients;  // a list, so Waiter::client stays valid
  std::list<Waiter> waiters;
  std::unordered_map<std::string, std::string> kv;
  std::vector<pollfd> pfds;

  void serve() {
    for (;;) {
      pfds.clear();
      pfds.push_back({wake.get(), POLLIN, 0});
      pfds.push_back({listener.get(), POLLIN, 0});
      Deadline next = Clock::now() + 1s;
      for (const Client& c : clients) {
        pfds.push_back({c.fd.get(), static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
        if (!c.authed) next = std::min(next, c.hello_deadline);
      }
      for (const Waiter& w : waiters) next = std::min(next, w.deadline);
      int n = ::poll(pfds.data(), pfds.size(), poll_timeout_ms(next, 1000));
      if (n < 0 && errno != EINTR) throw_errno("store server poll()");
      bool changed = false;
      if (pfds[0].revents) {
        if (stopping.load()) return;
        changed |= take_posted_notices();
      }
      if (pfds[1].revents & POLLIN) accept_all();
      size_t i = 2;
      for (auto it = clients.begin(); it != clients.end() && i < pfds.size(); ++it, ++i) {
        short ev = pfds[i].revents;
        if (ev & (POLLIN | POLLHUP | POLLERR)) changed |= read_from(*it);
        if ((ev & POLLOUT) && it->fd) flush(*it);
      }
      changed |= notice_lost_members();
      answer_waiters(changed, Clock::now());
      // A reply that failed just now closed its connection: that may have been a member's.
      if (notice_lost_members()) answer_waiters(true, Clock::now());
      drop_closed_clients();
      members = static_cast<int>(std::count_if(clients.begin(), clients.end(), [](const Client& c) {
        return c.fd && !c.member.empty();
      }));
    }
  }

  void accept_all() {
    while (UniqueFd fd = accept_tcp(listener.get())) {
      Client c;
      c.address = peer_address(fd.get());
      c.fd = std::move(fd);
      c.hello_deadline = Clock::now() + kHelloPatience;
      clients.push_back(std::move(c));
    }
  }

  // Reads what the client sent and handles every complete request; true when a key changed.
  bool read_from(Client& c) {
    char buf[65536];
    IoResult r = read_some(c.fd.get(), buf, sizeof buf);
    if (r.failed()) {
      if (!c.authed && c.in.size() > 0) refuse(c, "closed before presenting a job token");
      c.fd.reset();
      return false;
    }
    c.in.append(buf, r.bytes);
    bool changed = false;
    size_t at = 0;
    while (c.fd && c.in.size() - at >= 4) {
      uint32_t len;
      std::memcpy(&len, c.in.data() + at, 4);
      if (len < 5 || len > (c.authed ? kMaxMessage : kMaxHelloMessage)) {
        refuse(c, "not a weft store request (bad length " + std::to_string(len) + ")");
        break;
      }
      if (c.in.size() - at - 4 < len) break;
      Message m;
      bool ok = decode(c.in.data() + at + 4, len, m);
      at += 4 + size_t{len};
      if (!ok) {
        refuse(c, "malformed request");
        break;
      }
      changed |= handle(c, m);
    }
    if (c.fd) c.in.erase(0, at);
    return changed;
  }

  bool handle(Client& c, Message& m) {
    if (!c.authed) {
      if (m.code != kHello || m.parts.size() != 2 || m.parts[0] != kProtocol) {
        refuse(c, "not a weft store client");
      } else if (!same_token(m.parts[1], token)) {
        reply(c, m.id, kFailed, {"wrong job token"});
        refuse(c, "wrong job token");
      } else {
        c.authed = true;
        reply(c, m.id, kOk, {});
      }
      return false;
    }
    int64_t number = 0;
    switch (m.code) {
      case kSet:
        if (m.parts.size() != 2) break;
        reply(c, m.id, kOk, {});
        if (m.parts[0] == kRankLostKey) return post_lost(m.parts[1]);
        kv[m.parts[0]] = std::move(m.parts[1]);
        return true;
      case kJoin:
        if (m.parts.size() != 2 || !parse_int(m.parts[0], number)) break;
        c.member = "rank " + m.parts[0] + " (pid " + m.parts[1] + ")";
        reply(c, m.id, kOk, {});
        return false;
      case kLeave:
        c.member.clear();
        reply(c, m.id, kOk, {});
        return false;
      case kAdd: {
        if (m.parts.size() != 2 || !parse_int(m.parts[1], number)) break;
        std::string& value = kv[m.parts[0]];
        int64_t current = 0;
        if (!value.empty() && !parse_int(value, current)) {
          reply(c, m.id, kFailed,
                {"store key '" + m.parts[0] + "' holds '" + value.substr(0, 64) +
                 "', not an integer, so it cannot be added to"});
          return false;
        }
        value = std::to_string(current + number);
        reply(c, m.id, kOk, {value});
        return true;
      }
      case kGet:
      case kWait: {
        bool is_get = m.code == kGet;
        if (m.parts.size() < 2 || (is_get && m.parts.size() != 2)) break;
        if (!parse_int(is_get ? m.parts[1] : m.parts[0], number) || number < 0) break;
        Waiter w{&c,
                 m.id,
                 is_get,
                 {},
                 Clock::now() + std::chrono::milliseconds(std::min<int64_t>(number, 1ll << 40))};
        if (is_get)
          w.keys = {std::move(m.parts[0])};
        else
          w.keys.assign(std::make_move_iterator(m.parts.begin() + 1),
                        std::make_move_iterator(m.parts.end()));
        if (!try_answer(w, false)) waiters.push_back(std::move(w));
        return false;
      }
      default:
        break;
    }
    reply(c, m.id, kFailed, {"malformed store request (code " + std::to_string(m.code) + ")"});
    return false;
  }

  // Answers a waiter whose keys all exist, or (once expired) with the missing ones, or at once
  // with the death notice when the job has lost a rank: the keys may never come.
  bool try_answer(Waiter& w, bool expired) {
    std::vector<std::string> missing;
    for (const auto& k : w.keys)
      if (!kv.count(k)) missing.push_back(k);
    if (missing.empty()) {
      reply(*w.client, w.id, kOk,
            w.is_get ? std::vector<std::string>{kv[w.keys[0]]} : std::vector<std::string>{});
      return true;
    }
    if (auto lost = kv.find(kRankLostKey); lost != kv.end()) {
      reply(*w.client, w.id, kPeerLost, {lost->second});
      return true;
    }
    if (expired) reply(*w.client, w.id, kTimedOut, missing);
    return expired;
  }

  // Keeps the first death notice; true when this one is it.
  bool post_lost(const std::string& notice) {
    if (kv.count(kRankLostKey)) return false;
    WEFT_WARN("store: " << notice);
    kv[kRankLostKey] = notice;
    lost = true;
    return true;
  }

  // A member whose connection closed before it left has died: say so to the whole job.
  bool notice_lost_members() {
    bool posted_one = false;
    for (Client& c : clients) {
      if (c.fd || c.member.empty()) continue;
      posted_one |= post_lost(c.member + " lost its connection to the rendezvous store before " +
                              "leaving the job: it died, was killed, or exited without closing " +
                              "weft; check its output");
      c.member.clear();
    }
    return posted_one;
  }

  bool take_posted_notices() {
    uint64_t count;
    ssize_t ignored = ::read(wake.get(), &count, sizeof count);  // re-arms the eventfd
    (void)ignored;
    std::vector<std::string> notices;
    {
      std::lock_guard lock(posted_mu);
      notices.swap(posted);
    }
    bool changed = false;
    for (const auto& n : notices) changed |= post_lost(n);
    return changed;
  }

  void answer_waiters(bool keys_changed, Clock::time_point now) {
    for (auto it = waiters.begin(); it != waiters.end();) {
      bool gone = !it->client->fd;
      bool expired = now >= it->deadline;
      bool done = gone || ((keys_changed || expired) && try_answer(*it, expired));
      it = done ? waiters.erase(it) : std::next(it);
    }
    for (Client& c : clients)
      if (c.fd && !c.authed && now >= c.hello_deadline)
        refuse(c, "presented no job token within " +
                      std::to_string(std::chrono::seconds(kHelloPatience).count()) + " s");
  }

  void drop_closed_clients() {
    // Waiters of closed clients were erased by answer_waiters before this runs.
    clients.remove_if([](const Client& c) { return !c.fd; });
  }

  void reply(Client& c, uint32_t id, uint8_t code, const std::vector<std::string>& parts) {
    if (!c.fd) return;
    c.out += encode(id, code, parts);
    flush(c);
  }

  void flush(Client& c) {
    size_t sent = 0;
    while (sent < c.out.size()) {
      iovec iov{c.out.data() + sent, c.out.size() - sent};
      IoResult r = write_some(c.fd.get(), &iov, 1);
      sent += r.bytes;
      if (r.error) {
        c.fd.reset();
        return;
      }
      if (r.would_block) break;
    }
    c.out.erase(0, sent);
    if (c.out.size() > kMaxUnsentReplies) {
      WEFT_WARN("store: dropping client " << c.address << ": it does not read its replies");
      c.fd.reset();
    }
  }

  void refuse(Client& c, const std::string& why) {
    WEFT_WARN("store refused connection from " << c.address << ": " << why);
    c.fd.reset();
  }
};

TcpStoreServer::TcpStoreServer(const std::string& bind_host, int port, std::string token)
    : state_(std::make_unique<State>()) {
  state_->token = std::move(token);
  state_->listener = listen_tcp(bind_host, port, 1024);
  state_->port = local_port(state_->listener.get());
  state_->wake = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!state_->wake) throw_errno("eventfd()");
  thread_ = std::thread([s = state_.get()] {
    // A background thread never throws: a broken server is logged, and its clients then see
    // Unavailable naming the store.
    try {
      s->serve();
    } catch (const std::exception& e) {
      WEFT_ERROR("store server on port " << s->port << " stopped: " << e.what());
      s->waiters.clear();
      s->clients.clear();  // closing them tells every client at once, instead of at its deadline
    }
  });
}

TcpStoreServer::~TcpStoreServer() {
  // After a loss, ranks busy elsewhere (a tcp handshake) hear of it only when they next ask
  // this server; a rank that serves the store gives them a moment to, instead of leaving them
  // a store that is gone and no name.
  Deadline give_up = Clock::now() + kLingerAfterLoss;
  while (state_->lost && state_->members > 0 && Clock::now() < give_up)
    std::this_thread::sleep_for(10ms);
  state_->stopping = true;
  uint64_t one = 1;
  ssize_t ignored = ::write(state_->wake.get(), &one, sizeof one);
  (void)ignored;
  thread_.join();
}

int TcpStoreServer::port() const { return state_->port; }

void TcpStoreServer::post_rank_lost(const std::string& notice) {
  {
    std::lock_guard lock(state_->posted_mu);
    state_->posted.push_back(notice);
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(state_->wake.get(), &one, sizeof one);
  (void)ignored;
}

// ---- client ----

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
        mark_broken(gone("could not send " + what + ": " + bare_message(e)));
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
        failure = gone(std::string("while waiting for ") + what + ": " + bare_message(e));
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
                "no weft store answers at " + conn->address + " (" + bare_message(e) +
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
                                            bare_message(e) +
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
