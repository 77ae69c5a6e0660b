// The TCP transport's set-up (see tcp_mesh.h): the hello both ends of a connection present,
// and the mesh of connections.
#include "comm/transport/tcp/tcp_mesh.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "comm/rendezvous/job_token.h"
#include "comm/wire.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/socket.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;

constexpr auto kHelloPatience = 10s;       // an accepted connection must say hello by then
constexpr auto kMemberCheck = 500ms;       // set-up asks the store this often for lost ranks
constexpr auto kDeathNoticePatience = 1s;  // see await_death_notice

constexpr uint32_t kHelloMagic = 0x68656c6f;  // "helo"
constexpr uint32_t kProtocolVersion = 1;
constexpr uint32_t kMaxHelloField = 1024;

struct HelloFixed {
  uint32_t magic = kHelloMagic;
  uint32_t version = kProtocolVersion;
  int32_t rank = 0;
  int32_t size = 0;
  uint32_t job_len = 0, token_len = 0, group_len = 0;
};

std::string encode_hello(const TransportSetup& s) {
  HelloFixed h;
  h.rank = s.rank;
  h.size = s.size;
  h.job_len = static_cast<uint32_t>(s.job_id.size());
  h.token_len = static_cast<uint32_t>(s.token.size());
  h.group_len = static_cast<uint32_t>(s.group_tag.size());
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + s.job_id + s.token +
         s.group_tag;
}

// How many bytes the hello in `buf` still needs (0 when complete); -1 when it is malformed.
long hello_bytes_missing(const std::string& buf) {
  uint32_t magic = 0;
  if (buf.size() >= sizeof magic) std::memcpy(&magic, buf.data(), sizeof magic);
  if (buf.size() >= sizeof magic && magic != kHelloMagic) return -1;  // refuse garbage early
  if (buf.size() < sizeof(HelloFixed)) return static_cast<long>(sizeof(HelloFixed) - buf.size());
  HelloFixed h;
  std::memcpy(&h, buf.data(), sizeof h);
  if (h.magic != kHelloMagic || h.job_len > kMaxHelloField || h.token_len > kMaxHelloField ||
      h.group_len > kMaxHelloField)
    return -1;
  return static_cast<long>(sizeof h + h.job_len + h.token_len + h.group_len - buf.size());
}

// Checks a complete hello against this rank's set-up; the peer's rank, or -1 with `why`.
int check_hello(const std::string& buf, const TransportSetup& s, std::string& why) {
  HelloFixed h;
  std::memcpy(&h, buf.data(), sizeof h);
  std::string_view rest(buf.data() + sizeof h, buf.size() - sizeof h);
  if (h.version != kProtocolVersion)
    why = "protocol version " + std::to_string(h.version) + ", this rank speaks " +
          std::to_string(kProtocolVersion) + " (mixed weft builds?)";
  else if (!same_token(rest.substr(h.job_len, h.token_len), s.token))
    why = "wrong job token";
  else if (rest.substr(0, h.job_len) != s.job_id)
    why = "it belongs to job '" + std::string(rest.substr(0, h.job_len)) + "', not '" + s.job_id +
          "'";
  else if (rest.substr(h.job_len + h.token_len) != s.group_tag)
    why = "it belongs to group '" + std::string(rest.substr(h.job_len + h.token_len)) + "', not '" +
          s.group_tag + "'";
  else if (h.size != s.size)
    why = "it thinks the group has " + std::to_string(h.size) + " ranks, not " +
          std::to_string(s.size);
  else
    return h.rank;
  return -1;
}

// The address this rank's peers can reach it at: the one place to change for multi-homed hosts.
std::string advertised_host(const TransportSetup& s) {
  return s.host.empty() ? "127.0.0.1" : s.host;
}

std::string addr_key(int rank) { return "tcp/addr/" + std::to_string(rank); }

// A peer vanished during set-up (refused our call, hung up mid-hello): most likely it died, and
// the store hears of that as its connection there closes, perhaps a moment later than ours.
// Throws PeerLost when the notice comes within kDeathNoticePatience; returns otherwise.
void await_death_notice(Store& store) {
  Deadline until = Clock::now() + kDeathNoticePatience;
  for (;;) {
    store.check_members();
    if (Clock::now() >= until) return;
    std::this_thread::sleep_for(50ms);
  }
}

// Dials a lower rank, which may still be starting: retries until the deadline, asking the store
// every kMemberCheck whether the job lost a rank meanwhile.
UniqueFd dial(const TransportSetup& s, const HostPort& hp) {
  for (;;) {
    Deadline slice = std::min(s.deadline, Clock::now() + kMemberCheck);
    try {
      return connect_tcp(hp.host, hp.port, slice);
    } catch (const Error&) {
      // connect_tcp gave up early only on an error that retrying cannot fix.
      bool refused_outright = Clock::now() < slice;
      if (refused_outright) await_death_notice(*s.store);
      if (refused_outright || slice == s.deadline) throw;
    }
    s.store->check_members();
  }
}

struct Handshake {  // a connection whose hello has not arrived yet
  UniqueFd fd;
  std::string address;
  std::string in;
  int expected_rank;  // the lower rank this rank dialled, or -1 for an accepted connection
  Deadline deadline;
};

}  // namespace

std::vector<UniqueFd> connect_mesh(const TransportSetup& s) {
  if (s.size == 1) return std::vector<UniqueFd>(1);  // a group of one has no one to meet
  const std::string me =
      "tcp set-up: rank " + std::to_string(s.rank) + " of group '" + s.group_tag + "'";
  // Listen where peers are told to call, not on every interface.
  UniqueFd listener = listen_tcp(advertised_host(s), 0, std::max(128, s.size));
  set_buffer_sizes(listener.get(), kSocketBufferBytes);  // accepted sockets inherit it
  s.store->set(addr_key(s.rank),
               advertised_host(s) + ":" + std::to_string(local_port(listener.get())));
  const std::string hello = encode_hello(s);
  std::vector<UniqueFd> peers(static_cast<size_t>(s.size));
  std::vector<Handshake> pending;

  // Dial every lower rank; their answers are read below, together with the higher ranks' calls.
  for (int j = 0; j < s.rank; j++) {
    HostPort hp = parse_host_port(s.store->get(addr_key(j), s.deadline), "tcp peer address");
    UniqueFd fd;
    try {
      fd = dial(s, hp);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::PeerLost) throw;
      throw Error(ErrorCode::Unavailable, me + " cannot reach rank " + std::to_string(j) + " at " +
                                              hp.str() + " (" + e.message() +
                                              "); it may have died during set-up");
    }
    set_buffer_sizes(fd.get(), kSocketBufferBytes);
    write_exact(fd.get(), hello.data(), hello.size(), s.deadline, me + ": hello");
    pending.push_back({std::move(fd), hp.str(), "", j, s.deadline});
  }

  int missing = s.size - 1;
  std::vector<pollfd> pfds;
  Deadline next_member_check = Clock::now() + kMemberCheck;
  while (missing > 0) {
    Clock::time_point now = Clock::now();
    if (now >= next_member_check) {
      s.store->check_members();
      next_member_check = now + kMemberCheck;
    }
    if (now >= s.deadline) {
      std::string who;
      for (int r = 0; r < s.size; r++)
        if (r != s.rank && !peers[r]) who += (who.empty() ? "" : ", ") + std::to_string(r);
      throw Error(ErrorCode::Timeout, me + " timed out waiting for rank(s) " + who +
                                          " to connect: they may not have started, or cannot "
                                          "reach " +
                                          advertised_host(s) +
                                          "; raise WEFT_TIMEOUT if ranks start slowly");
    }
    // Strangers that never say hello are dropped, so they cannot hold a slot forever.
    std::erase_if(pending, [&](const Handshake& h) {
      if (h.expected_rank >= 0 || now < h.deadline) return false;
      WEFT_WARN(me << " refused connection from " << h.address << ": no hello within "
                   << std::chrono::seconds(kHelloPatience).count() << " s");
      return true;
    });
    pfds.clear();
    pfds.push_back({listener.get(), POLLIN, 0});
    for (const Handshake& h : pending) pfds.push_back({h.fd.get(), POLLIN, 0});
    ::poll(pfds.data(), pfds.size(), poll_timeout_ms(s.deadline, 100));

    std::vector<Handshake> accepted;
    if (pfds[0].revents & POLLIN)
      while (UniqueFd fd = accept_tcp(listener.get()))
        accepted.push_back({std::move(fd), "", "", -1, std::min(s.deadline, now + kHelloPatience)});
    for (size_t i = 0; i < pending.size(); i++) {
      Handshake& h = pending[i];
      if (!(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      // Read no further than the hello: data frames may follow it on the same stream.
      long need = hello_bytes_missing(h.in);
      std::string why;
      if (need > 0) {
        char buf[sizeof(HelloFixed) + 3 * kMaxHelloField];
        IoResult r = read_some(h.fd.get(), buf, std::min<size_t>(need, sizeof buf));
        h.in.append(buf, r.bytes);
        if (r.closed) why = "closed the connection during the handshake";
        if (r.error)
          why = std::string("connection failed during the handshake: ") + std::strerror(r.error);
        need = hello_bytes_missing(h.in);
      }
      if (need < 0) why = "not a weft peer (bad hello)";
      if (need > 0 && why.empty()) continue;
      int rank = why.empty() ? check_hello(h.in, s, why) : -1;
      if (h.expected_rank >= 0) {  // the answer from a rank this rank dialled
        if (why.empty() && rank != h.expected_rank)
          why = "answered as rank " + std::to_string(rank);
        if (!why.empty()) {
          await_death_notice(*s.store);
          throw Error(ErrorCode::Unavailable,
                      me + ": rank " + std::to_string(h.expected_rank) + " at " + h.address + " " +
                          why +
                          "; it refused this rank or is not part of this job (see "
                          "its log)");
        }
      } else {  // a call from a higher rank (or a stranger)
        if (why.empty() && (rank <= s.rank || rank >= s.size))
          why = "it claims rank " + std::to_string(rank) + ", which does not dial rank " +
                std::to_string(s.rank);
        else if (why.empty() && peers[rank])
          why = "rank " + std::to_string(rank) + " is already connected";
        if (!why.empty()) {
          WEFT_WARN(me << " refused connection from " << h.address << ": " << why);
          h.fd.reset();
          continue;
        }
        write_exact(h.fd.get(), hello.data(), hello.size(), now + 1s, me + ": hello");
      }
      peers[rank] = std::move(h.fd);
      missing--;
    }
    std::erase_if(pending, [](const Handshake& h) { return !h.fd; });
    for (Handshake& h : accepted) {
      h.address = peer_address(h.fd.get());
      pending.push_back(std::move(h));
    }
  }
  // The listener closes here; connections that never finished their hello are dropped.
  for (UniqueFd& fd : peers) {
    if (!fd) continue;
    set_nodelay(fd.get());
    set_buffer_sizes(fd.get(), kSocketBufferBytes);
  }
  return peers;
}

}  // namespace weft::comm
