#pragma once
// Small RAII and deadline-bounded helpers over IPv4 TCP sockets, for the TCP transport (and the
// coordinator's client, which parses addresses with them). Every helper that can wait takes a
// deadline; the non-blocking ones never wait.
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <string>
#include <utility>

#include "runtime/clock.h"
#include "runtime/unique_fd.h"

namespace weft::comm {


struct HostPort {
  std::string host;
  int port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};
// "host:port" -> {host, port}; InvalidArgument naming `what` (e.g. "WEFT_STORE_ADDR") when
// malformed.
HostPort parse_host_port(const std::string& address, const char* what);

// A listening socket on host:port ("" or "0.0.0.0" = every interface; port 0 = a free port).
// Callers name the address their peers reach: every interface only when the user asked for it.
UniqueFd listen_tcp(const std::string& host, int port, int backlog = 128);
// Whether `host` names an address of this machine (loopback, an interface's, or 0.0.0.0): one
// a socket can bind. False when it does not resolve.
bool is_local_address(const std::string& host);
// Whether `host` names a loopback address (127.0.0.0/8, ::1): one only this machine reaches.
bool is_loopback_address(const std::string& host);
// Accepts one pending connection as a non-blocking socket; an empty UniqueFd when none is pending.
UniqueFd accept_tcp(int listen_fd);
// Connects to host:port and returns a non-blocking socket. A refused or unreachable address is
// retried every 50 ms (the listener may not be up yet) until the deadline, then Unavailable
// naming host:port and the last error.
UniqueFd connect_tcp(const std::string& host, int port, Deadline deadline);

int local_port(int fd);
std::string local_ip(int fd);      // this end's address: what peers on other hosts can reach
std::string peer_address(int fd);  // "ip:port" of the other end, for log messages

void set_nonblocking(int fd);
void set_nodelay(int fd);
// Kernel send and receive buffers (capped by net.core.{w,r}mem_max).
void set_buffer_sizes(int fd, int bytes);

// Outcome of one non-blocking transfer attempt.
struct IoResult {
  size_t bytes = 0;  // moved this time (0 with would_block when nothing could move)
  bool would_block = false;
  bool closed = false;  // orderly end of stream (reads only)
  int error = 0;        // errno of a broken connection (ECONNRESET, EPIPE, ...), 0 when none
  bool failed() const { return closed || error != 0; }
};
IoResult read_some(int fd, void* data, size_t bytes);
IoResult write_some(int fd, const iovec* iov, int iov_count);  // never raises SIGPIPE

// Milliseconds to hand poll() so it wakes by `deadline`, at most `cap_ms`, never negative.
int poll_timeout_ms(Deadline deadline, int cap_ms);

// Blocking transfers bounded by a deadline (poll-based; work on non-blocking sockets).
// read_exact returns false on an orderly end of stream before the first byte; a stream that
// ends mid-way is Io, the deadline is Timeout, both naming `what`.
bool read_exact(int fd, void* data, size_t bytes, Deadline deadline, const std::string& what);
void write_exact(int fd, const void* data, size_t bytes, Deadline deadline,
                 const std::string& what);

}  // namespace weft::comm
