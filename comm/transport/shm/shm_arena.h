#pragma once
// Registered memory of one shm group: host memory that every rank of the group can map, so the
// direct algorithms (shm_direct.cc) read and write peers' buffers in place.
//
// Segments. Each allocation is one memfd (anonymous: no name anywhere another user or job could
// open it), sized, reserved (posix_fallocate: a full node is an error at allocation, not a
// SIGBUS mid-op) and sealed against shrinking, so no process can ever truncate a mapping under
// its peers. Buffers are few and large (gradient buckets, staging areas), so a segment per
// allocation costs nothing and gives memory back the moment its buffer dies.
//
// Channel. The owner hands each new segment's fd to every local peer once, with SCM_RIGHTS over
// a Unix SOCK_SEQPACKET connection per ordered pair, made at set-up. The owner counts what it
// sent in its shm file (DirectState::notices); a peer takes in what came (receive(), a system
// call per connection) only when that count moved, or when an op names a segment it does not
// know, and maps a segment then, once. So ops cost no system call, and a freed segment is
// unmapped at the peer's next direct op.
//  - Why not pidfd_getfd: it needs ptrace rights over the owner, which Yama (ptrace_scope 1,
//    Ubuntu's default) refuses between sibling processes of a normal user; a socket needs only
//    that the peer reach it, in the user's 0700 directory (job_token.h).
//  - Why connections and not datagrams: a Unix datagram socket queues at most
//    net.unix.max_dgram_qlen messages (10 by default), fewer than a job's buffers; and a
//    connection carries the kernel's word for the connecting process (SO_PEERCRED), which
//    must be the pid that the peer's shm file names: only the group's own ranks, which proved
//    their membership through the store, are heard.
// The socket's name is unlinked with the shm files once every rank has connected; a rank killed
// before that leaves a name whose pid is dead, which the next set-up on the node removes (in the
// same pid namespace: the name carries it).
//
// A segment dropped while an op still uses it stays mapped until the op ends (ops hold a
// reference). Its owner then tells the peers, which unmap their view when they next take in the
// channel (at their next direct op, or when the group closes): until then its pages stay
// allocated.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/direct_access.h"
#include "comm/transport/shm/shm_ring.h"
#include "runtime/unique_fd.h"

namespace weft::comm::shm {

class ShmArena {
 public:
  ShmArena(int rank, int size, std::string who);
  ~ShmArena();
  ShmArena(const ShmArena&) = delete;
  ShmArena& operator=(const ShmArena&) = delete;

  // Set-up, in this order. listen() binds my socket under a name made from `unique` (the
  // shm file's name) and returns its path for the peers; connect() reaches a peer's (`sent`: the
  // peer's count of its notices, its DirectState::notices, that receive_news() reads); after
  // every rank has connected, unlink_path() drops the name.
  std::string listen(const std::string& unique);
  void connect(int peer, const std::string& path, int pid,
               const std::atomic<uint64_t>* sent = nullptr);
  void unlink_path();

  std::shared_ptr<RegisteredSegment> allocate(size_t bytes);
  std::shared_ptr<RegisteredSegment> find(const void* data, size_t bytes);

  // Peer `peer`'s segment `id` as mapped here, at least `bytes` long (mapped on first use, after
  // taking in what the channel holds); null when no such segment came from that peer.
  std::byte* peer_segment(int peer, uint64_t id, size_t bytes);
  // Takes in what peers sent: new segments (kept, mapped on first use) and notices of freed
  // ones (unmapped). A few non-blocking system calls when nothing came.
  void receive();
  // Where my notices are counted (my DirectState::notices); and receive() only if a peer's
  // count (connect()'s `sent`) moved since the last call.
  void count_notices_in(std::atomic<uint64_t>* sent);
  void receive_news();
  // Sends word of freed segments that a peer's full queue refused (nothing to do, and no lock
  // taken, when there is none).
  void send_unsent();

  // What the arena shares with its segments (defined in shm_arena.cc).
  struct Channel;

 private:
  struct Received {
    UniqueFd fd;  // until mapped
    Mapping map;
    size_t bytes = 0;
  };
  struct Connection {
    UniqueFd fd;
    int peer = -1;  // -1 until its first notice names it (and its credentials match)
  };
  void accept_pending();
  bool read_notice(Connection& c);

  const int rank_;
  const int size_;
  const std::string who_;
  std::shared_ptr<Channel> channel_;  // shared with the segments, which outlive it if kept
  UniqueFd listen_fd_;
  std::string path_;       // my socket's name while it is linked
  std::vector<int> pids_;  // what each peer's connection must come from (0: not checked)
  std::vector<Connection> connections_;
  std::vector<std::map<uint64_t, Received>> received_;  // by peer, by segment id
  std::vector<const std::atomic<uint64_t>*> sent_;      // by peer: its notice count (null: unknown)
  std::vector<uint64_t> taken_;                         // by peer: that count when this last looked
};

}  // namespace weft::comm::shm
