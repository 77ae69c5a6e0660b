// The TCP store's server (comm/rendezvous/store_wire.h has the protocol).
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

constexpr size_t kMaxHelloMessage = 4096;         // before the token is checked, stay suspicious
constexpr size_t kMaxUnsentReplies = 256u << 20;  // a client that never reads is dropped
constexpr auto kHelloPatience = 10s;              // a connection must present its token by then
constexpr auto kLingerAfterLoss = 3s;             // see ~TcpStoreServer

}  // namespace

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

}  // namespace weft::comm
