// Registered memory of one shm group: memfd segments and the channel that passes their fds to
// the local peers (see shm_arena.h).
#include "comm/transport/shm/shm_arena.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>

#include "comm/rendezvous/job_token.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm::shm {
namespace {

// One message on the channel. A new segment's carries its fd (SCM_RIGHTS).
enum class NoticeKind : uint32_t { segment = 1, freed = 2 };
struct Notice {
  int32_t rank = 0;
  NoticeKind kind = NoticeKind::segment;
  uint64_t id = 0;
  uint64_t bytes = 0;
};

constexpr const char* kSocketPrefix = "weft-p";

sockaddr_un socket_address(const std::string& path, const std::string& who) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw Error(ErrorCode::InvalidArgument,
                who + ": socket path " + path + " is longer than a Unix socket allows (" +
                    std::to_string(sizeof a.sun_path - 1) + " bytes); set a shorter TMPDIR");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// "weft-p<pid>-n<pid namespace>-": what this process's sockets start with. The namespace
// (the inode of /proc/self/ns/pid) says where the pid means something: containers of one user
// may share the directory.
std::string socket_prefix(int pid) {
  struct stat st {};
  unsigned long long ns = stat("/proc/self/ns/pid", &st) == 0 ? st.st_ino : 0;
  return kSocketPrefix + std::to_string(pid) + "-n" + std::to_string(ns) + "-";
}

// Removes sockets of ranks of this pid namespace killed before they dropped their name (their
// pid is gone).
void sweep_dead_sockets(const std::string& dir) {
  const std::string mine = socket_prefix(0);
  const std::string ns_part = mine.substr(std::strlen(kSocketPrefix) + 1);  // "-n<ns>-"
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(kSocketPrefix, 0) != 0) continue;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + std::strlen(kSocketPrefix), &end, 10);
    if (pid <= 0 || std::string(end).rfind(ns_part, 0) != 0) continue;
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) unlink((dir + "/" + name).c_str());
  }
  closedir(d);
}

}  // namespace

class MemfdSegment;

// What the arena and its segments share: the connections to the peers (segments that die
// send their notice there, perhaps after the arena is gone) and the index of my segments.
struct ShmArena::Channel {
  std::mutex mu;
  std::vector<UniqueFd> to_peer;  // by rank; empty for me and once the arena is gone
  std::map<uintptr_t, MemfdSegment*> by_address;
  uint64_t next_id = 1;
  int rank = 0;
  std::atomic<uint64_t>* sent = nullptr;  // my DirectState::notices; null once the arena is gone
  // By rank: word of freed segments that the peer's full queue refused, sent before anything
  // else next time (else the peer would keep those segments' pages until the group closes).
  std::vector<std::vector<Notice>> unsent;
  std::atomic<bool> behind{false};  // some unsent

  // Sends `n` to every peer (with `fd` attached when valid), after what it refused before; false
  // if some peer did not take it. Never blocks: a peer that has not read its channel for a while
  // (it reads it at direct ops) fills its queue, and a segment it refused is then used through
  // the transport's path only.
  bool broadcast(const Notice& n, int fd) {
    bool all = true;
    for (size_t r = 0; r < to_peer.size(); ++r) {
      if (!to_peer[r]) continue;
      const bool taken = send_unsent(r) && send(to_peer[r], n, fd);
      if (!taken && n.kind == NoticeKind::freed) unsent[r].push_back(n);
      all = all && taken;
    }
    counted();
    return all;
  }
  void send_unsent() {
    for (size_t r = 0; r < to_peer.size(); ++r)
      if (to_peer[r]) send_unsent(r);
    counted();
  }

 private:
  bool send_unsent(size_t r) {
    std::vector<Notice>& q = unsent[r];
    size_t k = 0;
    while (k < q.size() && send(to_peer[r], q[k], -1)) ++k;
    q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(k));
    return q.empty();
  }
  // After the sends: a peer that sees the count move finds the notices in its socket.
  void counted() {
    bool left = false;
    for (const auto& q : unsent) left = left || !q.empty();
    behind.store(left, std::memory_order_relaxed);
    if (sent) sent->fetch_add(1, std::memory_order_release);
  }
  static bool send(const UniqueFd& to, const Notice& n, int fd) {
    iovec iov{const_cast<Notice*>(&n), sizeof n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return sendmsg(to.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof n);
  }
};

// One allocation: its memfd's mapping. Its destructor takes it out of the index and tells the
// peers, so they unmap their view too.
class MemfdSegment final : public RegisteredSegment,
                           public std::enable_shared_from_this<MemfdSegment> {
 public:
  MemfdSegment(std::shared_ptr<ShmArena::Channel> channel, uint64_t id, Mapping map, size_t bytes)
      : channel_(std::move(channel)), id_(id), map_(std::move(map)), bytes_(bytes) {}
  ~MemfdSegment() override {
    std::lock_guard lock(channel_->mu);
    channel_->by_address.erase(reinterpret_cast<uintptr_t>(map_.data()));
    channel_->broadcast(Notice{channel_->rank, NoticeKind::freed, id_, bytes_}, -1);
  }
  std::byte* data() const override { return map_.data(); }
  size_t bytes() const override { return bytes_; }
  uint64_t id() const override { return id_; }
  bool shared() const override { return shared_; }
  void set_shared(bool s) { shared_ = s; }

 private:
  std::shared_ptr<ShmArena::Channel> channel_;
  uint64_t id_;
  Mapping map_;
  size_t bytes_;
  bool shared_ = false;
};

ShmArena::ShmArena(int rank, int size, std::string who)
    : rank_(rank),
      size_(size),
      who_(std::move(who)),
      channel_(std::make_shared<Channel>()),
      pids_(size, 0),
      received_(size),
      sent_(size, nullptr),
      taken_(size, 0) {
  channel_->rank = rank;
  channel_->to_peer.resize(size);
  channel_->unsent.resize(size);
}

ShmArena::~ShmArena() {
  unlink_path();
  // Segments still alive (their buffers outlive the communicator) stop telling peers.
  std::lock_guard lock(channel_->mu);
  channel_->to_peer.clear();
  channel_->sent = nullptr;
}

void ShmArena::count_notices_in(std::atomic<uint64_t>* sent) {
  std::lock_guard lock(channel_->mu);
  channel_->sent = sent;
}

void ShmArena::send_unsent() {
  if (!channel_->behind.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(channel_->mu);
  channel_->send_unsent();
}

void ShmArena::receive_news() {
  bool news = false;
  for (size_t r = 0; r < sent_.size(); ++r) {
    if (sent_[r] == nullptr) continue;
    const uint64_t now = sent_[r]->load(std::memory_order_acquire);
    news = news || now != taken_[r];
    taken_[r] = now;  // read before receive(): what came after is seen next time
  }
  if (news) receive();
}

std::string ShmArena::listen(const std::string& unique) {
  const std::string dir = user_private_dir();
  sweep_dead_sockets(dir);
  char hash[17];
  snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(unique));
  const std::string path = dir + "/" + socket_prefix(getpid()) + hash + ".sock";
  sockaddr_un a = socket_address(path, who_);
  listen_fd_ = UniqueFd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_fd_) throw_errno(who_ + " could not make a Unix socket");
  unlink(path.c_str());  // left by a killed process that had our pid
  if (bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw_errno(who_ + " could not bind its socket " + path);
  path_ = path;
  if (::listen(listen_fd_.get(), size_) != 0) throw_errno(who_ + " could not listen at " + path);
  return path;
}

void ShmArena::connect(int peer, const std::string& path, int pid,
                       const std::atomic<uint64_t>* sent) {
  pids_[peer] = pid;
  sent_[peer] = sent;
  sockaddr_un a = socket_address(path, who_);
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno(who_ + " could not make a Unix socket");
  // A Unix connection is made at connect(), before the peer accepts it.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw_errno(who_ + " could not connect to rank " + std::to_string(peer) + "'s socket " + path);
  std::lock_guard lock(channel_->mu);
  channel_->to_peer[peer] = std::move(fd);
}

void ShmArena::unlink_path() {
  if (path_.empty()) return;
  unlink(path_.c_str());
  path_.clear();
}

std::shared_ptr<RegisteredSegment> ShmArena::allocate(size_t bytes) {
  const size_t mapped = std::max<size_t>(kPage, (bytes + kPage - 1) / kPage * kPage);
  UniqueFd fd(static_cast<int>(memfd_create("weft-registered", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!fd) throw_errno(who_ + " could not create registered memory (memfd_create)");
  if (ftruncate(fd.get(), static_cast<off_t>(mapped)) != 0)
    throw_errno(who_ + " could not size registered memory of " + std::to_string(bytes) + " bytes");
  if (int e = posix_fallocate(fd.get(), 0, static_cast<off_t>(mapped)); e != 0)
    throw Error(ErrorCode::Unavailable, who_ + " could not reserve " + std::to_string(bytes) +
                                            " bytes of registered memory: " + std::strerror(e));
  // Nobody, owner included, can shrink it now: no peer's mapping can ever fault past its end.
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    throw_errno(who_ + " could not seal registered memory");
  Mapping map = map_shared(fd.get(), mapped, 0, who_ + " could not map registered memory");
  std::lock_guard lock(channel_->mu);
  const uint64_t id = channel_->next_id++;
  std::byte* data = map.data();
  auto segment = std::make_shared<MemfdSegment>(channel_, id, std::move(map), bytes);
  segment->set_shared(
      channel_->broadcast(Notice{rank_, NoticeKind::segment, id, mapped}, fd.get()));
  if (!segment->shared())
    WEFT_WARN(who_ << ": a peer did not take registered segment " << id << " (" << bytes
                   << " bytes); ops on it take the FIFO path");
  channel_->by_address[reinterpret_cast<uintptr_t>(data)] = segment.get();
  return segment;
}

std::shared_ptr<RegisteredSegment> ShmArena::find(const void* data, size_t bytes) {
  const auto p = reinterpret_cast<uintptr_t>(data);
  std::lock_guard lock(channel_->mu);
  auto it = channel_->by_address.upper_bound(p);
  if (it == channel_->by_address.begin()) return nullptr;
  MemfdSegment* s = std::prev(it)->second;
  if (p + bytes > std::prev(it)->first + s->bytes()) return nullptr;
  // The index holds segments whose last reference may be dropping now, on another thread
  // (waiting for the lock to take itself out): lock() hands out only one still owned.
  return s->weak_from_this().lock();
}

std::byte* ShmArena::peer_segment(int peer, uint64_t id, size_t bytes) {
  auto& mine = received_[peer];
  auto it = mine.find(id);
  if (it == mine.end()) {
    receive();
    it = mine.find(id);
    if (it == mine.end()) return nullptr;
  }
  Received& r = it->second;
  if (r.bytes < bytes) return nullptr;
  if (r.fd) {
    // Sealed against shrinking and at least this long: the mapping can never fault.
    struct stat st {};
    int seals = fcntl(r.fd.get(), F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(r.fd.get(), &st) != 0 ||
        static_cast<size_t>(st.st_size) < r.bytes)
      throw Error(ErrorCode::Corrupt, who_ + ": registered segment " + std::to_string(id) +
                                          " of rank " + std::to_string(peer) +
                                          " is not sealed or shorter than announced");
    r.map =
        map_shared(r.fd.get(), r.bytes, 0,
                   who_ + " could not map rank " + std::to_string(peer) + "'s registered memory");
    r.fd.reset();
  }
  return r.map.data();
}

void ShmArena::receive() {
  accept_pending();
  for (Connection& c : connections_)
    while (c.fd && read_notice(c)) {
    }
}

void ShmArena::accept_pending() {
  if (!listen_fd_) return;
  for (;;) {
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;  // EAGAIN: nobody else waits
    connections_.push_back(Connection{std::move(fd), -1});
  }
}

// One notice from `c`; false when none is waiting (or the connection ended or was refused).
bool ShmArena::read_notice(Connection& c) {
  Notice n;
  iovec iov{&n, sizeof n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t got = recvmsg(c.fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  UniqueFd fd;
  for (cmsghdr* h = CMSG_FIRSTHDR(&msg); got > 0 && h != nullptr; h = CMSG_NXTHDR(&msg, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
      int received;
      std::memcpy(&received, CMSG_DATA(h), sizeof received);
      fd = UniqueFd(received);
    }
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (got != static_cast<ssize_t>(sizeof n) || n.rank < 0 || n.rank >= size_ || n.rank == rank_) {
    c.fd.reset();  // ended (its rank left), or not a weft peer
    return false;
  }
  if (c.peer < 0) {
    // Membership: the kernel says who connected; it must be the process that the rank's shm
    // file names (and this user).
    ucred cred{};
    socklen_t len = sizeof cred;
    bool member = getsockopt(c.fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                  cred.uid == geteuid() && (pids_[n.rank] == 0 || cred.pid == pids_[n.rank]);
    if (!member) {
      WEFT_WARN(who_ << ": ignoring a registered-memory connection from pid " << cred.pid
                     << " that claims to be rank " << n.rank);
      c.fd.reset();
      return false;
    }
    c.peer = n.rank;
  }
  if (n.rank != c.peer) {
    c.fd.reset();
    return false;
  }
  auto& theirs = received_[c.peer];
  if (n.kind == NoticeKind::freed) {
    theirs.erase(n.id);
  } else if (n.kind == NoticeKind::segment && fd) {
    Received& r = theirs[n.id];
    r.fd = std::move(fd);
    r.bytes = n.bytes;
  }
  return true;
}

}  // namespace weft::comm::shm
