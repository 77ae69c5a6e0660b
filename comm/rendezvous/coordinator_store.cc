// A rank's client of the coordinator (comm/rendezvous/coordinator.h): the Store over gRPC, and
// the heartbeat thread of a rank that joined.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "comm/rendezvous/coordinator.h"
#include "comm/rendezvous/coordinator_credentials.h"
#include "comm/rendezvous/coordinator_limits.h"
#include "proto/coordinator.grpc.pb.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/socket.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
namespace pb = weft::coordinator;
using grpc::StatusCode;

constexpr auto kReplyGrace = 5s;  // how late past its deadline a reply may come

// d + extra, saturating: callers may pass Deadline::max() for "no deadline".
Deadline later(Deadline d, Clock::duration extra) {
  return d > Deadline::max() - extra ? Deadline::max() : d + extra;
}

// gRPC's deadlines are on the system clock.
std::chrono::system_clock::time_point system_deadline(Deadline d) {
  auto left = d - Clock::now();
  if (left > std::chrono::hours(24 * 365)) left = std::chrono::hours(24 * 365);
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
}

uint64_t remaining_ms(Deadline d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  return static_cast<uint64_t>(std::max<long long>(0, ms));
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "'" : ", '") + i + "'";
  return s;
}

}  // namespace

struct CoordinatorStore::Client {
  std::string address;
  std::string token;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Coordinator::Stub> stub;
  std::string peer_host;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> rank{-1};
  std::atomic<int> server_rank{-1};  // the rank of the job that runs the coordinator, if one does
  bool joined = false;

  // The join stream: joined on it, then beaten on by beat_thread for the rank's life.
  grpc::ClientContext beat_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<pb::Beat, pb::BeatAck>> beats;
  std::mutex beat_mu;
  std::condition_variable beat_cv;
  bool beat_stop = false;
  std::thread beat_thread;

  std::mutex watch_mu;  // held while a watcher is called
  std::map<int, std::function<void(const std::string&)>> watchers;
  int next_watcher = 0;
  std::string lost_notice;  // once the coordinator ended this rank's generation

  struct Unwatch {
    Client* client;
    int id;
    ~Unwatch() {
      std::lock_guard lock(client->watch_mu);
      client->watchers.erase(id);
    }
  };

  std::shared_ptr<void> watch(std::function<void(const std::string&)> on_lost) {
    std::lock_guard lock(watch_mu);
    if (!lost_notice.empty()) on_lost(lost_notice);
    int id = next_watcher++;
    watchers[id] = std::move(on_lost);
    return std::make_shared<Unwatch>(this, id);
  }

  void tell_watchers(const std::string& notice) {
    std::lock_guard lock(watch_mu);
    if (!lost_notice.empty()) return;
    lost_notice = notice;
    for (auto& [id, on_lost] : watchers) on_lost(notice);
  }

  pb::Caller caller() const {
    pb::Caller c;
    c.set_token(token);
    c.set_generation(generation.load());
    c.set_rank(rank.load());
    return c;
  }

  // The failure of request `what` as weft's error. ABORTED is the job's death notice.
  Error error(const grpc::Status& s, const std::string& what) const {
    switch (s.error_code()) {
      case StatusCode::ABORTED:
        return Error(ErrorCode::PeerLost, what.empty() ? s.error_message()
                                                       : s.error_message() +
                                                             " (this rank was waiting for " +
                                                             what + ")");
      case StatusCode::DEADLINE_EXCEEDED:
        return Error(ErrorCode::Timeout, "the coordinator at " + address + " did not answer " +
                                             what + " in time; it may be overloaded or hung");
      case StatusCode::UNAVAILABLE:
      case StatusCode::CANCELLED:
      case StatusCode::UNKNOWN:
      case StatusCode::INTERNAL:
        if (server_rank >= 0)
          return Error(ErrorCode::PeerLost,
                       "rank " + std::to_string(server_rank) + ", which ran the job's "
                       "coordinator at " + address + ", is gone (during " + what + ": " +
                       s.error_message() + "): it died or exited; check its output");
        return Error(ErrorCode::Unavailable,
                     "the coordinator at " + address + " is gone (during " + what + ": " +
                         s.error_message() +
                         "): the launcher (weftrun) or the rank that ran it has probably "
                         "exited; check its output");
      case StatusCode::UNAUTHENTICATED:
        return Error(ErrorCode::Unavailable,
                     "the coordinator at " + address + " refused this rank: " + s.error_message());
      default:
        return Error(ErrorCode::InvalidArgument, "the coordinator at " + address +
                                                     " rejected " + what + ": " +
                                                     s.error_message());
    }
  }

  template <typename Request, typename Reply, typename Call>
  Reply call(Call method, Request& request, Deadline reply_deadline, const std::string& what) {
    grpc::ClientContext ctx;
    ctx.set_deadline(system_deadline(reply_deadline));
    *request.mutable_caller() = caller();
    Reply reply;
    grpc::Status s = (stub.get()->*method)(&ctx, request, &reply);
    if (!s.ok()) throw error(s, what);
    return reply;
  }

  // Joins as `rank` of `world_size` on a stream of its own; throws the refusal.
  pb::JoinReply join(int world_size) {
    beats = stub->Join(&beat_ctx);
    pb::Beat b;
    *b.mutable_caller() = caller();
    b.mutable_join()->set_world_size(world_size);
    b.mutable_join()->set_pid(::getpid());
    pb::BeatAck ack;
    if (!beats->Write(b) || !beats->Read(&ack)) {
      grpc::Status s = beats->Finish();
      beats.reset();
      throw error(s.ok() ? grpc::Status(StatusCode::UNAVAILABLE, "the join stream ended") : s,
                  "join");
    }
    return ack.joined();
  }

  // A beat every `interval` on the join stream, until stop_beating() or the coordinator ends it.
  void beat(std::chrono::milliseconds interval) {
    pb::Beat b;
    *b.mutable_caller() = caller();
    pb::BeatAck ack;
    bool stopped = false;
    for (;;) {
      std::unique_lock lock(beat_mu);
      if ((stopped = beat_cv.wait_for(lock, interval, [this] { return beat_stop; }))) break;
      lock.unlock();
      // A write or read that fails: the coordinator ended the stream (a loss) or is gone.
      if (!beats->Write(b) || !beats->Read(&ack)) break;
    }
    if (stopped) beat_ctx.TryCancel();  // leaving: the coordinator already knows (Leave)
    grpc::Status s = beats->Finish();
    // The coordinator ended the stream: the job lost a rank (this one, if it was too slow).
    if (s.error_code() == StatusCode::ABORTED) tell_watchers(s.error_message());
  }

  void stop_beating() {
    if (!beat_thread.joinable()) return;
    {
      std::lock_guard lock(beat_mu);
      beat_stop = true;
      beat_cv.notify_all();
    }
    beat_ctx.TryCancel();  // a write or read blocked on a coordinator that stopped
    beat_thread.join();
  }
};

CoordinatorStore::CoordinatorStore(std::unique_ptr<Client> client) : client_(std::move(client)) {}

CoordinatorStore::~CoordinatorStore() {
  if (client_->joined) {
    // Leaving on purpose is not dying: the coordinator must not tell the job this rank was lost.
    try {
      pb::LeaveRequest req;
      client_->call<pb::LeaveRequest, pb::Empty>(&pb::Coordinator::Stub::Leave, req,
                                                 Clock::now() + 1s, "leave");
    } catch (const Error&) {
      // The coordinator is gone, or the job already lost a rank: there is no one to tell.
    }
  }
  client_->stop_beating();
}

namespace {
// A TLS handshake that fails looks like a coordinator that never answers: say what to check.
std::string tls_hint(bool tls, const std::string& host) {
  if (!tls)
    return "If the coordinator serves TLS (--tls-cert), set WEFT_TLS_CA to the CA that signed its "
           "certificate (and WEFT_TLS_CERT and WEFT_TLS_KEY when it also has --tls-ca)";
  return "This rank speaks TLS (WEFT_TLS_CA): check that the coordinator was started with "
         "--tls-cert, that WEFT_TLS_CA signed its certificate, which must name " + host +
         ", and, when it has --tls-ca, that WEFT_TLS_CERT and WEFT_TLS_KEY are a certificate "
         "that CA signed and its key";
}
}  // namespace

std::unique_ptr<CoordinatorStore> CoordinatorStore::connect(const std::string& host, int port,
                                                            const std::string& token,
                                                            Deadline deadline,
                                                            const std::string& token_origin) {
  auto c = std::make_unique<Client>();
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  c->address = h + ":" + std::to_string(port);
  c->token = token;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
  args.SetMaxSendMessageSize(static_cast<int>(kMaxMessageBytes));
  // A connection of its own: a rank's death closes it, which its beat stream reports at once.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A coordinator that starts after its ranks is found within a tenth of a second or so.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  const ClientCredentials credentials = client_credentials_from_env();
  c->channel = grpc::CreateCustomChannel(c->address, credentials.credentials, args);
  c->stub = pb::Coordinator::NewStub(c->channel);

  grpc::ClientContext ctx;
  ctx.set_deadline(system_deadline(deadline));
  ctx.set_wait_for_ready(true);  // retry until the deadline: the coordinator may start later
  pb::HelloRequest req;
  *req.mutable_caller() = c->caller();
  pb::HelloReply reply;
  grpc::Status s = c->stub->Hello(&ctx, req, &reply);
  if (s.error_code() == StatusCode::UNAUTHENTICATED)
    throw Error(ErrorCode::Unavailable, "the coordinator at " + c->address +
                                            " refused this rank: " + s.error_message() +
                                            "; this rank presented the token from " +
                                            token_origin);
  if (!s.ok())
    throw Error(ErrorCode::Unavailable,
                "no weft coordinator answers at " + c->address + " (" + s.error_message() +
                    "); is the launcher running, and is WEFT_STORE_ADDR (or MASTER_ADDR and "
                    "MASTER_PORT) right? " + tls_hint(credentials.tls, host));
  c->generation = reply.generation();
  c->peer_host = reply.peer_host();
  return std::unique_ptr<CoordinatorStore>(new CoordinatorStore(std::move(c)));
}

std::unique_ptr<CoordinatorStore> CoordinatorStore::connect(const std::string& address,
                                                            const std::string& token,
                                                            Deadline deadline) {
  HostPort hp = parse_host_port(address, "store address");
  return connect(hp.host, hp.port, token, deadline);
}

namespace {
Deadline quick_request_deadline() { return later(Clock::now(), env::timeout()); }
}  // namespace

void CoordinatorStore::set(const std::string& key, const std::string& value) {
  pb::SetRequest req;
  req.set_key(key);
  req.set_value(value);
  client_->call<pb::SetRequest, pb::Empty>(&pb::Coordinator::Stub::Set, req,
                                           quick_request_deadline(), "set '" + key + "'");
}

void CoordinatorStore::post_rank_lost(const std::string& notice, Deadline deadline) {
  pb::SetRequest req;
  req.set_key(kRankLostKey);
  req.set_value(notice);
  client_->call<pb::SetRequest, pb::Empty>(&pb::Coordinator::Stub::Set, req, deadline,
                                           "the death notice");
}

std::string CoordinatorStore::get(const std::string& key, Deadline deadline) {
  Clock::time_point start = Clock::now();
  pb::GetRequest req;
  req.set_key(key);
  req.set_timeout_ms(remaining_ms(deadline));
  auto reply = client_->call<pb::GetRequest, pb::GetReply>(
      &pb::Coordinator::Stub::Get, req, later(deadline, kReplyGrace), "store key '" + key + "'");
  if (reply.timed_out())
    throw Error(ErrorCode::Timeout,
                "store key '" + key + "' did not appear within " +
                    std::to_string(static_cast<int>(seconds_since(start))) +
                    " s: a rank may not have started, or failed before publishing it; check "
                    "every rank's output (or raise WEFT_TIMEOUT if ranks start slowly)");
  return std::move(*reply.mutable_value());
}

int64_t CoordinatorStore::add(const std::string& key, int64_t delta) {
  pb::AddRequest req;
  req.set_key(key);
  req.set_delta(delta);
  return client_
      ->call<pb::AddRequest, pb::AddReply>(&pb::Coordinator::Stub::Add, req,
                                           quick_request_deadline(), "add '" + key + "'")
      .value();
}

void CoordinatorStore::wait(const std::vector<std::string>& keys, Deadline deadline) {
  if (keys.empty()) return;
  Clock::time_point start = Clock::now();
  pb::WaitRequest req;
  for (const auto& k : keys) req.add_keys(k);
  req.set_timeout_ms(remaining_ms(deadline));
  auto reply = client_->call<pb::WaitRequest, pb::WaitReply>(
      &pb::Coordinator::Stub::Wait, req, later(deadline, kReplyGrace),
      "store key(s) " + join(keys));
  if (reply.missing_size() > 0)
    throw Error(ErrorCode::Timeout,
                "store key(s) " +
                    join(std::vector<std::string>(reply.missing().begin(), reply.missing().end())) +
                    " did not appear within " +
                    std::to_string(static_cast<int>(seconds_since(start))) +
                    " s: a rank may not have started, or failed before publishing them; check "
                    "every rank's output (or raise WEFT_TIMEOUT if ranks start slowly)");
}

void CoordinatorStore::check_members() {
  // A get that may not wait: the notice itself when there is one (or ABORTED carrying it, for a
  // caller of an earlier generation), timed out otherwise.
  pb::GetRequest req;
  req.set_key(kRankLostKey);
  req.set_timeout_ms(0);
  auto reply = client_->call<pb::GetRequest, pb::GetReply>(
      &pb::Coordinator::Stub::Get, req, quick_request_deadline(), "");
  if (!reply.timed_out()) throw Error(ErrorCode::PeerLost, reply.value());
}

std::shared_ptr<void> CoordinatorStore::watch_losses(
    std::function<void(const std::string&)> on_lost) {
  return client_->watch(std::move(on_lost));
}

void CoordinatorStore::served_by(int rank) { client_->server_rank = rank; }

void CoordinatorStore::join_as(int rank, int world_size) {
  client_->rank = rank;
  pb::JoinReply reply;
  try {
    reply = client_->join(world_size);
  } catch (...) {
    client_->rank = -1;
    throw;
  }
  client_->generation = reply.generation();
  client_->joined = true;
  auto interval = std::chrono::milliseconds(reply.heartbeat_interval_ms());
  client_->beat_thread = std::thread([c = client_.get(), interval] { c->beat(interval); });
}

std::string CoordinatorStore::local_host() const { return client_->peer_host; }

bool CoordinatorStore::answers(Deadline deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(system_deadline(deadline));  // not wait_for_ready: a lost link fails fast
  pb::HelloRequest req;
  *req.mutable_caller() = client_->caller();
  pb::HelloReply reply;
  return client_->stub->Hello(&ctx, req, &reply).ok();
}

void CoordinatorStore::commit_shard(const std::string& dir, int64_t step, int keep,
                                    const std::string& job, const std::string& report,
                                    Deadline deadline) {
  const Clock::time_point start = Clock::now();
  pb::CommitShardRequest req;
  req.set_dir(dir);
  req.set_step(step);
  req.set_keep(keep);
  req.set_job(job);
  req.set_report(report);
  req.set_timeout_ms(remaining_ms(deadline));
  const std::string what = "the commit of checkpoint step " + std::to_string(step);
  grpc::ClientContext ctx;
  ctx.set_deadline(system_deadline(later(deadline, kReplyGrace)));
  *req.mutable_caller() = client_->caller();
  pb::CommitShardReply reply;
  grpc::Status s = client_->stub->CommitShard(&ctx, req, &reply);
  // The step's own failure (a rank could not write, the manifest could not be) is the commit's.
  if (s.error_code() == StatusCode::FAILED_PRECONDITION)
    throw Error(ErrorCode::Io, s.error_message());
  if (!s.ok()) throw client_->error(s, what);
  if (!reply.committed())
    throw Error(ErrorCode::Timeout,
                "checkpoint step " + std::to_string(step) + " was not committed within " +
                    std::to_string(static_cast<int>(seconds_since(start))) +
                    " s: not every rank reported its shard; check every rank's output");
}

}  // namespace weft::comm
