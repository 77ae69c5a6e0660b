#include "runtime/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "runtime/error.h"

namespace weft::comm {
namespace {

sockaddr_in resolve(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "0.0.0.0") {
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    return a;
  }
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1) return a;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || !found)
    throw Error(ErrorCode::Unavailable,
                "cannot resolve host '" + host + "': " + gai_strerror(rc) + "; check the address");
  a.sin_addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
  freeaddrinfo(found);
  return a;
}

std::string ip_string(const in_addr& addr) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr, buf, sizeof buf);
  return buf;
}

bool retryable_connect_error(int e) {
  return e == ECONNREFUSED || e == ETIMEDOUT || e == ENETUNREACH || e == EHOSTUNREACH ||
         e == ECONNRESET || e == EAGAIN || e == EINTR || e == ECONNABORTED;
}

// One non-blocking connect attempt, waiting for it until the deadline. Returns 0 and the
// connected socket in `out`, or the errno of the failure.
int try_connect(const sockaddr_in& a, Deadline deadline, UniqueFd& out) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_errno("socket()");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) return errno;
    for (;;) {
      pollfd pfd{fd.get(), POLLOUT, 0};
      int n = ::poll(&pfd, 1, poll_timeout_ms(deadline, 1000));
      if (n > 0) break;
      if (n < 0 && errno != EINTR) return errno;
      if (Clock::now() >= deadline) return ETIMEDOUT;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    if (err != 0) return err;
  }
  out = std::move(fd);
  return 0;
}

}  // namespace

HostPort parse_host_port(const std::string& address, const char* what) {
  auto colon = address.rfind(':');
  int port = 0;
  bool ok = colon != std::string::npos && colon > 0;
  if (ok) {
    const char* first = address.data() + colon + 1;
    const char* last = address.data() + address.size();
    auto [end, ec] = std::from_chars(first, last, port);
    ok = ec == std::errc() && end == last && first != last && port > 0 && port <= 65535;
  }
  if (!ok)
    throw Error(ErrorCode::InvalidArgument,
                std::string(what) + "='" + address + "' is not host:port (e.g. 127.0.0.1:29500)");
  return {address.substr(0, colon), port};
}

UniqueFd listen_tcp(const std::string& host, int port, int backlog) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_errno("socket()");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = resolve(host, port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw_errno("bind(" + host + ":" + std::to_string(port) + ")");
  if (::listen(fd.get(), backlog) != 0) throw_errno("listen()");
  return fd;
}

bool is_local_address(const std::string& host) {
  sockaddr_in a{};
  try {
    a = resolve(host, 0);
  } catch (const Error&) {
    return false;
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket()");
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

bool is_loopback_address(const std::string& host) {
  if (host == "::1") return true;
  try {
    return (ntohl(resolve(host, 0).sin_addr.s_addr) >> 24) == 127;
  } catch (const Error&) {
    return false;
  }
}

UniqueFd accept_tcp(int listen_fd) {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) return UniqueFd(fd);
    // A connection that died in the backlog is not the listener's failure: try the next.
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return UniqueFd();
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) return UniqueFd();
    throw_errno("accept()");
  }
}

UniqueFd connect_tcp(const std::string& host, int port, Deadline deadline) {
  sockaddr_in a = resolve(host, port);
  for (;;) {
    UniqueFd fd;
    int err = try_connect(a, deadline, fd);
    if (err == 0) return fd;
    if (!retryable_connect_error(err) || Clock::now() >= deadline)
      throw Error(ErrorCode::Unavailable, "cannot connect to " + host + ":" + std::to_string(port) +
                                              ": " + std::strerror(err));
    auto pause = std::min<Clock::duration>(std::chrono::milliseconds(50), deadline - Clock::now());
    std::this_thread::sleep_for(pause);
  }
}

int local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) throw_errno("getsockname()");
  return ntohs(a.sin_port);
}

std::string local_ip(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) throw_errno("getsockname()");
  return ip_string(a.sin_addr);
}

std::string peer_address(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "an unknown peer";
  return ip_string(a.sin_addr) + ":" + std::to_string(ntohs(a.sin_port));
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl(O_NONBLOCK)");
}

void set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
    throw_errno("setsockopt(TCP_NODELAY)");
}

void set_buffer_sizes(int fd, int bytes) {
  // Best effort: the kernel caps the value at its configured maximum rather than failing.
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

IoResult read_some(int fd, void* data, size_t bytes) {
  IoResult r;
  for (;;) {
    ssize_t n = ::recv(fd, data, bytes, MSG_DONTWAIT);
    if (n > 0) {
      r.bytes = static_cast<size_t>(n);
    } else if (n == 0) {
      r.closed = bytes > 0;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.would_block = true;
    } else {
      r.error = errno;
    }
    return r;
  }
}

IoResult write_some(int fd, const iovec* iov, int iov_count) {
  IoResult r;
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iov_count);
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      r.bytes = static_cast<size_t>(n);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.would_block = true;
    } else {
      r.error = errno;
    }
    return r;
  }
}

int poll_timeout_ms(Deadline deadline, int cap_ms) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, cap_ms));
}

bool read_exact(int fd, void* data, size_t bytes, Deadline deadline, const std::string& what) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < bytes) {
    IoResult r = read_some(fd, p + got, bytes - got);
    got += r.bytes;
    if (r.closed) {
      if (got == 0) return false;
      throw Error(ErrorCode::Io, what + ": connection closed after " + std::to_string(got) +
                                     " of " + std::to_string(bytes) + " bytes");
    }
    if (r.error) throw Error(ErrorCode::Io, what + ": " + std::strerror(r.error));
    if (!r.would_block) continue;
    if (Clock::now() >= deadline) throw Error(ErrorCode::Timeout, what + ": timed out");
    pollfd pfd{fd, POLLIN, 0};
    ::poll(&pfd, 1, poll_timeout_ms(deadline, 1000));
  }
  return true;
}

void write_exact(int fd, const void* data, size_t bytes, Deadline deadline,
                 const std::string& what) {
  const char* p = static_cast<const char*>(data);
  size_t sent = 0;
  while (sent < bytes) {
    iovec iov{const_cast<char*>(p + sent), bytes - sent};
    IoResult r = write_some(fd, &iov, 1);
    sent += r.bytes;
    if (r.error) throw Error(ErrorCode::Io, what + ": " + std::strerror(r.error));
    if (!r.would_block) continue;
    if (Clock::now() >= deadline) throw Error(ErrorCode::Timeout, what + ": timed out");
    pollfd pfd{fd, POLLOUT, 0};
    ::poll(&pfd, 1, poll_timeout_ms(deadline, 1000));
  }
}

}  // namespace weft::comm
