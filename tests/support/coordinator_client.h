#pragma once
// The coordinator's protocol spoken by hand (proto/coordinator.proto), for tests that play a
// stranger, a confused or stale client, or a port scanner: a raw client and its requests, and
// random bytes sent to the port. Header-only; its users link weft_proto.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>

#include "proto/coordinator.grpc.pb.h"

namespace weft::testing {

namespace pb = weft::coordinator;

// A raw client: a channel of its own and the generated stub.
struct RawCoordinatorClient {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Coordinator::Stub> stub;
  explicit RawCoordinatorClient(int port) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxSendMessageSize(-1);
    channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                        grpc::InsecureChannelCredentials(), args);
    stub = pb::Coordinator::NewStub(channel);
  }
};

inline pb::Caller caller(const std::string& token, uint64_t generation, int rank = -1) {
  pb::Caller c;
  c.set_token(token);
  c.set_generation(generation);
  c.set_rank(rank);
  return c;
}

template <typename Request>
Request with(pb::Caller c) {
  Request r;
  *r.mutable_caller() = std::move(c);
  return r;
}

inline void in_time(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

inline grpc::Status set(RawCoordinatorClient& raw, const pb::Caller& c, const std::string& key,
                        const std::string& v) {
  grpc::ClientContext ctx;
  in_time(ctx);
  auto req = with<pb::SetRequest>(c);
  req.set_key(key);
  req.set_value(v);
  pb::Empty reply;
  return raw.stub->Set(&ctx, req, &reply);
}

// `count` random byte strings (1 to 4096 bytes), each on a TCP connection of its own to
// 127.0.0.1:`port`; every third starts with HTTP/2's greeting, so that its bytes reach the
// frame parser. Returns false if a connection could not be made.
inline bool send_random_bytes(int port, int count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(1, 4096), byte(0, 255);
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  for (int i = 0; i < count; ++i) {
    std::string bytes(static_cast<size_t>(len(rng)), '\0');
    for (char& c : bytes) c = static_cast<char>(byte(rng));
    if (i % 3 == 1) bytes = preface + bytes;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (fd >= 0) ::close(fd);
      return false;
    }
    ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    (void)sent;  // the coordinator may close before taking them all
    ::close(fd);
  }
  return true;
}

}  // namespace weft::testing
