#pragma once
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
//
// This header is that wire format, shared by the server (store_tcp_server.cc) and the client
// (store_tcp.cc).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft::comm::store_wire {

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
constexpr size_t kMaxMessage = 64u << 20;  // a value larger than this is not rendezvous data

struct Message {
  uint32_t id = 0;
  uint8_t code = 0;
  std::vector<std::string> parts;
};

// The whole message: length, id, code, parts.
std::string encode(uint32_t id, uint8_t code, const std::vector<std::string>& parts);
// Decodes a message body (everything after the length); false when malformed.
bool decode(const char* body, size_t size, Message& out);
// A whole decimal integer, or false.
bool parse_int(const std::string& s, int64_t& out);
// "'a', 'b'": keys for messages.
std::string join(const std::vector<std::string>& items);

}  // namespace weft::comm::store_wire
