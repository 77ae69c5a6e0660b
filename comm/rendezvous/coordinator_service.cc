// The coordinator's service (comm/rendezvous/coordinator.h; the protocol is
// proto/coordinator.proto). gRPC's synchronous server: each call runs on a thread of its pool, a
// get or wait sleeping on a condition variable until its keys exist, and each joined rank's beat
// stream holds one thread for the rank's life. A watchdog thread declares silent ranks lost.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <tuple>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "checkpoint/commit.h"
#include "comm/rendezvous/coordinator.h"
#include "comm/rendezvous/coordinator_credentials.h"
#include "comm/rendezvous/coordinator_limits.h"
#include "comm/rendezvous/job_token.h"
#include "proto/coordinator.grpc.pb.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {

using namespace std::chrono_literals;
namespace pb = weft::coordinator;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

constexpr auto kLingerAfterLoss = 3s;  // see ~Coordinator
constexpr auto kWakeEvery = 100ms;     // how often a waiting call checks for cancellation

std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f",
                std::chrono::duration_cast<std::chrono::duration<double>>(d).count());
  return buf;
}

// "ipv4:10.0.0.2:5555" or "ipv6:[::1]:5555" (the brackets maybe written %5B, %5D) -> the host.
std::string host_of_peer(const std::string& peer) {
  std::string rest = peer.substr(peer.find(':') + 1);
  for (auto [from, to] : {std::pair{"%5B", "["}, std::pair{"%5D", "]"}})
    if (size_t at = rest.find(from); at != std::string::npos) rest.replace(at, 3, to);
  if (!rest.empty() && rest[0] == '[') return rest.substr(1, rest.find(']') - 1);
  return rest.substr(0, rest.rfind(':'));
}

bool valid_key(const std::string& key) { return !key.empty() && key.size() <= kMaxKeyBytes; }

// Commits checkpoint `step` in `dir` from every rank's report (by rank) and rank 0's description
// of the job: the empty string, or why the step is not committed.
std::string commit_checkpoint(const std::string& dir, int64_t step, int world_size,
                              const std::string& job, const std::map<int, std::string>& reports,
                              int keep) {
  const std::string name = "checkpoint step " + std::to_string(step) + " in " + dir;
  try {
    std::vector<checkpoint::ShardReport> shards;
    for (const auto& [rank, text] : reports) {
      nlohmann::json j = nlohmann::json::parse(text);
      if (j.contains("error")) return name + ": " + j["error"].get<std::string>();
      const std::string where = "rank " + std::to_string(rank) + "'s report";
      shards.push_back(checkpoint::shard_report_from_json(j, where));
      if (shards.back().rank != rank)
        return name + ": " + where + " describes another rank's shard";
    }
    if (job.empty()) return name + ": rank 0 sent no description of the job";
    checkpoint::commit_step(dir, step, world_size, nlohmann::json::parse(job), std::move(shards),
                            keep);
    WEFT_INFO("coordinator: committed " << name);
    return "";
  } catch (const std::exception& e) {
    return name + " was not committed: " + e.what();
  }
}

}  // namespace

struct Coordinator::State final : pb::Coordinator::Service {
  struct Member {
    int64_t pid = 0;
    Clock::time_point last_beat;
    std::string host;  // as the coordinator sees it: which machine, in a job across several
  };

  std::string token;
  CoordinatorOptions options;
  std::mutex mu;
  std::condition_variable changed;  // a key, the generation, or `stopping` changed
  std::unordered_map<std::string, std::string> kv;
  uint64_t generation = 1;
  std::string notice;  // the job's death notice, once there is one
  int lost_rank = -1;  // the rank the coordinator itself declared lost (-1: none, or a launcher's)
  bool lost_silent = false;  // ... for its silence (hung), not for its stream's end
  int world_size = 0;  // fixed by the first join
  std::map<int, Member> members;  // joined and not yet left, of this generation
  int open_streams = 0;
  // Checkpoint steps being committed, by (generation, directory, step); dropped once every
  // reporter heard. The generation keeps a restarted job's reports apart from the last one's.
  struct Commit {
    std::map<int, std::string> reports;  // by rank
    std::string job;
    int keep = 0;
    bool committing = false, done = false;
    std::string error;  // once done: empty when committed
    int waiting = 0;    // reporters not yet answered
  };
  std::map<std::tuple<uint64_t, std::string, int64_t>, Commit> commits;
  bool stopping = false;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::thread watchdog;

  std::string who(int rank) const {
    auto it = members.find(rank);
    if (it == members.end()) return "rank " + std::to_string(rank);
    // The machine is named only when the members are on more than one: then it is news.
    bool several_hosts = std::any_of(members.begin(), members.end(), [&](const auto& m) {
      return m.second.host != it->second.host;
    });
    return "rank " + std::to_string(rank) + " (pid " + std::to_string(it->second.pid) +
           (several_hosts ? " on " + it->second.host : "") + ")";
  }

  // Whether `caller` may make this request now. Holds `mu`. `any_generation`: the caller may not
  // know the generation (Hello) or may ask from an earlier one (reading the death notice).
  Status admit(ServerContext* ctx, const pb::Caller& caller, bool any_generation = false) {
    // An empty token is a coordinator run with WEFT_INSECURE=1: anyone may talk to it.
    if (!token.empty() && (caller.token().empty() || !same_token(caller.token(), token))) {
      std::string why = caller.token().empty() ? "no job token" : "wrong job token";
      WEFT_WARN("coordinator refused a request from " << ctx->peer() << ": " << why);
      return Status(StatusCode::UNAUTHENTICATED,
                    why + ": this coordinator serves another job, or the caller was not given "
                          "the job's token");
    }
    if (caller.rank() < -1 || (world_size > 0 && caller.rank() >= world_size))
      return Status(StatusCode::OUT_OF_RANGE, "rank " + std::to_string(caller.rank()) +
                                                  " is outside the job's world of " +
                                                  std::to_string(world_size) + " ranks");
    if (any_generation) return Status::OK;
    if (caller.generation() < generation)
      return Status(StatusCode::ABORTED,
                    notice.empty() ? "generation " + std::to_string(caller.generation()) +
                                         " is over (the job is at generation " +
                                         std::to_string(generation) + ")"
                                   : notice);
    if (caller.generation() > generation)
      return Status(StatusCode::FAILED_PRECONDITION,
                    "generation " + std::to_string(caller.generation()) +
                        " has not begun (the job is at generation " + std::to_string(generation) +
                        ")");
    return Status::OK;
  }

  // Keeps the first death notice, ends the generation; every member of it must rejoin. Holds mu.
  void post_lost(const std::string& why, int rank = -1, bool silent = false) {
    if (!notice.empty()) return;
    WEFT_WARN("coordinator: " << why);
    notice = why;
    lost_rank = rank;
    lost_silent = silent;
    kv[kRankLostKey] = why;
    ++generation;
    members.clear();
    changed.notify_all();
  }

  Status Hello(ServerContext* ctx, const pb::HelloRequest* req, pb::HelloReply* reply) override {
    std::lock_guard lock(mu);
    if (Status s = admit(ctx, req->caller(), true); !s.ok()) return s;
    reply->set_generation(generation);
    reply->set_peer_host(host_of_peer(ctx->peer()));
    return Status::OK;
  }

  Status Leave(ServerContext* ctx, const pb::LeaveRequest* req, pb::Empty*) override {
    std::lock_guard lock(mu);
    if (Status s = admit(ctx, req->caller()); !s.ok()) return s;
    members.erase(req->caller().rank());
    return Status::OK;
  }

  Status Set(ServerContext* ctx, const pb::SetRequest* req, pb::Empty*) override {
    std::lock_guard lock(mu);
    if (Status s = admit(ctx, req->caller()); !s.ok()) return s;
    if (!valid_key(req->key())) return bad_key();
    if (req->key() == kRankLostKey)
      post_lost(req->value());
    else
      kv[req->key()] = req->value();
    changed.notify_all();
    return Status::OK;
  }

  Status Add(ServerContext* ctx, const pb::AddRequest* req, pb::AddReply* reply) override {
    std::lock_guard lock(mu);
    if (Status s = admit(ctx, req->caller()); !s.ok()) return s;
    if (!valid_key(req->key())) return bad_key();
    auto it = kv.find(req->key());
    int64_t current = 0, sum = 0;
    if (it != kv.end() && !parse_store_int(it->second, current))
      return Status(StatusCode::INVALID_ARGUMENT,
                    "store key '" + req->key() + "' holds '" + it->second.substr(0, 64) +
                        "', not an integer, so it cannot be added to");
    if (__builtin_add_overflow(current, req->delta(), &sum))
      return Status(StatusCode::INVALID_ARGUMENT,
                    "adding " + std::to_string(req->delta()) + " to store key '" + req->key() +
                        "' (" + std::to_string(current) + ") overflows a 64-bit integer");
    kv[req->key()] = std::to_string(sum);
    reply->set_value(sum);
    changed.notify_all();
    return Status::OK;
  }

  Status Get(ServerContext* ctx, const pb::GetRequest* req, pb::GetReply* reply) override {
    std::vector<std::string> missing;
    Status s = wait_for(ctx, req->caller(), {req->key()}, req->timeout_ms(), missing,
                        reply->mutable_value());
    reply->set_timed_out(!missing.empty());
    return s;
  }

  Status Wait(ServerContext* ctx, const pb::WaitRequest* req, pb::WaitReply* reply) override {
    if (req->keys_size() > static_cast<int>(kMaxWaitKeys))
      return Status(StatusCode::INVALID_ARGUMENT,
                    "a wait for " + std::to_string(req->keys_size()) + " keys; at most " +
                        std::to_string(kMaxWaitKeys) + " per request");
    std::vector<std::string> keys(req->keys().begin(), req->keys().end()), missing;
    Status s = wait_for(ctx, req->caller(), keys, req->timeout_ms(), missing, nullptr);
    for (auto& k : missing) reply->add_missing(std::move(k));
    return s;
  }

  // Sleeps until every key exists (`value` then gets the first one's), the timeout (`missing`
  // then names the absent keys), or the job loses a rank (ABORTED with the death notice: the
  // keys may never come).
  Status wait_for(ServerContext* ctx, const pb::Caller& caller,
                  const std::vector<std::string>& keys, uint64_t timeout_ms,
                  std::vector<std::string>& missing, std::string* value) {
    std::unique_lock lock(mu);
    // The death notice itself is for every generation: it says why the caller's ended.
    const bool notice_only = keys.size() == 1 && keys[0] == kRankLostKey;
    if (Status s = admit(ctx, caller, notice_only); !s.ok()) return s;
    for (const auto& k : keys)
      if (!valid_key(k)) return bad_key();
    Deadline until = Clock::now() + std::chrono::milliseconds(std::min<uint64_t>(timeout_ms, 1ull << 40));
    for (;;) {
      missing.clear();
      for (const auto& k : keys)
        if (!kv.count(k)) missing.push_back(k);
      if (missing.empty()) {
        if (value && !keys.empty()) *value = kv[keys[0]];
        return Status::OK;
      }
      if (!notice.empty()) return Status(StatusCode::ABORTED, notice);
      if (caller.generation() != generation && !notice_only) return admit(ctx, caller);
      if (stopping) return Status(StatusCode::UNAVAILABLE, "the coordinator is stopping");
      if (ctx->IsCancelled()) return Status(StatusCode::CANCELLED, "the caller gave up");
      if (Clock::now() >= until) return Status::OK;  // with `missing` named
      changed.wait_until(lock, std::min(until, Clock::now() + kWakeEvery));
    }
  }

  Status CommitShard(ServerContext* ctx, const pb::CommitShardRequest* req,
                     pb::CommitShardReply* reply) override {
    std::unique_lock lock(mu);
    if (Status s = admit(ctx, req->caller()); !s.ok()) return s;
    const int rank = req->caller().rank();
    if (!members.count(rank))
      return Status(StatusCode::PERMISSION_DENIED,
                    "only a rank that joined the job may report a checkpoint shard");
    if (req->dir().empty() || req->dir()[0] != '/' || req->step() < 0 || req->keep() < 0)
      return Status(StatusCode::INVALID_ARGUMENT,
                    "a checkpoint report needs an absolute directory, a step and a keep count "
                    "that are not negative");
    if (!nlohmann::json::accept(req->report()) ||
        (!req->job().empty() && !nlohmann::json::accept(req->job())))
      return Status(StatusCode::INVALID_ARGUMENT, "a checkpoint report that is not JSON");
    const auto key = std::tuple{generation, req->dir(), req->step()};
    Commit& c = commits[key];  // stays put while c.waiting > 0
    if (!c.done && !c.committing) {
      c.reports[rank] = req->report();
      if (rank == 0) {
        c.job = req->job();
        c.keep = req->keep();
      }
    }
    ++c.waiting;
    // The last report commits, with the lock released: writing files takes a while, and beats
    // must go on meanwhile.
    if (!c.done && !c.committing && static_cast<int>(c.reports.size()) == world_size) {
      c.committing = true;
      const std::map<int, std::string> reports = c.reports;
      lock.unlock();
      std::string error = commit_checkpoint(req->dir(), req->step(), world_size, c.job, reports,
                                            c.keep);
      lock.lock();
      c.error = std::move(error);
      c.done = true;
      changed.notify_all();
    }
    const Deadline until =
        Clock::now() + std::chrono::milliseconds(std::min<uint64_t>(req->timeout_ms(), 1ull << 40));
    Status result = Status::OK;
    for (;;) {
      if (c.done) {
        if (c.error.empty()) reply->set_committed(true);
        else result = Status(StatusCode::FAILED_PRECONDITION, c.error);
        break;
      }
      if (!notice.empty() || std::get<0>(key) != generation) {
        result =
            Status(StatusCode::ABORTED, notice.empty() ? "the job's generation ended" : notice);
        break;
      }
      if (stopping) {
        result = Status(StatusCode::UNAVAILABLE, "the coordinator is stopping");
        break;
      }
      if (ctx->IsCancelled()) {
        result = Status(StatusCode::CANCELLED, "the caller gave up");
        break;
      }
      if (Clock::now() >= until) break;  // not committed (yet)
      changed.wait_until(lock, std::min(until, Clock::now() + kWakeEvery));
    }
    if (--c.waiting == 0 && (c.done || std::get<0>(key) != generation)) commits.erase(key);
    return result;
  }

  // The first beat joins: a member from then until Leave or the stream's end. Holds `mu`.
  Status join(ServerContext* ctx, const pb::Beat& beat, pb::JoinReply* reply) {
    if (Status s = admit(ctx, beat.caller()); !s.ok()) return s;
    if (!beat.has_join())
      return Status(StatusCode::INVALID_ARGUMENT, "a join stream must begin with the join");
    int rank = beat.caller().rank(), size = beat.join().world_size();
    if (size <= 0 || rank < 0 || rank >= size)
      return Status(StatusCode::OUT_OF_RANGE, "rank " + std::to_string(rank) + " of " +
                                                  std::to_string(size) + " is not a rank");
    if (world_size == 0) world_size = size;
    if (size != world_size)
      return Status(StatusCode::FAILED_PRECONDITION,
                    "rank " + std::to_string(rank) + " joins a world of " + std::to_string(size) +
                        " ranks, but the job's ranks joined a world of " +
                        std::to_string(world_size) + ": every rank must be given the same size");
    if (members.count(rank))
      return Status(StatusCode::ALREADY_EXISTS,
                    who(rank) + " has already joined this job; no second process may take its "
                                "place (pid " + std::to_string(beat.join().pid()) + " tried)");
    members[rank] = Member{beat.join().pid(), Clock::now(), host_of_peer(ctx->peer())};
    ++open_streams;
    reply->set_generation(generation);
    reply->set_world_size(world_size);
    auto timeout = options.heartbeat_timeout;
    reply->set_heartbeat_interval_ms(
        timeout.count() > 0 ? static_cast<uint32_t>(std::max<int64_t>(timeout.count() / 5, 20))
                            : 1000);
    return Status::OK;
  }

  Status Join(ServerContext* ctx, grpc::ServerReaderWriter<pb::BeatAck, pb::Beat>* stream) override {
    pb::Beat beat;
    if (!stream->Read(&beat))
      return Status(StatusCode::INVALID_ARGUMENT, "a join stream with no join");
    const int rank = beat.caller().rank();
    const uint64_t joined_generation = beat.caller().generation();
    pb::BeatAck ack;
    {
      std::lock_guard lock(mu);
      if (Status s = join(ctx, beat, ack.mutable_joined()); !s.ok()) return s;
    }
    ack.set_generation(joined_generation);
    bool more = stream->Write(ack);
    ack.clear_joined();
    while (more && (more = stream->Read(&beat))) {
      {
        std::lock_guard lock(mu);
        if (generation != joined_generation || !members.count(rank)) break;
        members[rank].last_beat = Clock::now();
      }
      more = stream->Write(ack);
    }
    std::lock_guard lock(mu);
    --open_streams;
    changed.notify_all();
    // The stream ended while the rank was still a member: its process is gone.
    if (!more && !stopping && generation == joined_generation && members.count(rank))
      post_lost(who(rank) +
                    " lost its connection to the coordinator before leaving the job: it died, "
                    "was killed, or exited without closing weft; check its output",
                rank);
    if (generation != joined_generation) return Status(StatusCode::ABORTED, notice);
    return Status::OK;
  }

  // Declares lost every member silent for longer than the heartbeat timeout.
  void watch() {
    std::unique_lock lock(mu);
    auto timeout = options.heartbeat_timeout;
    auto tick = std::clamp<Clock::duration>(timeout / 10, 10ms, 100ms);
    while (!stopping) {
      changed.wait_for(lock, tick);
      if (stopping || timeout.count() <= 0) continue;
      Clock::time_point now = Clock::now();
      for (const auto& [rank, m] : members) {
        if (now - m.last_beat <= timeout) continue;
        post_lost(who(rank) + " sent no heartbeat for " + seconds_text(now - m.last_beat) +
                  " s (the heartbeat timeout, WEFT_HEARTBEAT_TIMEOUT, is " +
                  seconds_text(timeout) +
                  " s): it is hung, stopped (SIGSTOP), or cut off from the coordinator; check "
                  "it" + also_silent(rank, now),
                  rank, /*silent=*/true);
        break;  // post_lost cleared `members`
      }
    }
  }

  // The other members silent for over half the timeout (two and a half beats missed): a machine
  // cut off loses all its ranks at once, and the notice names them all. Holds `mu`.
  std::string also_silent(int lost, Clock::time_point now) const {
    std::string names;
    for (const auto& [rank, m] : members) {
      if (rank == lost || now - m.last_beat <= options.heartbeat_timeout / 2) continue;
      names += (names.empty() ? "" : ", ") + who(rank) + " for " +
               seconds_text(now - m.last_beat) + " s";
    }
    return names.empty() ? "" : "; silent too: " + names;
  }

  static Status bad_key() {
    return Status(StatusCode::INVALID_ARGUMENT, "a store key must be 1 to " +
                                                    std::to_string(kMaxKeyBytes) + " bytes");
  }
};

Coordinator::Coordinator(const std::string& bind_host, int port, std::string token,
                         CoordinatorOptions options)
    : state_(std::make_unique<State>()) {
  state_->token = std::move(token);
  state_->options = options;
  std::string host = bind_host.find(':') != std::string::npos ? "[" + bind_host + "]" : bind_host;
  std::string address = host + ":" + std::to_string(port);
  grpc::ServerBuilder builder;
  // Two coordinators on one port would split a job between them: refuse a port in use.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, server_credentials(options.tls), &state_->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxMessageBytes));
  builder.RegisterService(state_.get());
  state_->server = builder.BuildAndStart();
  if (!state_->server || state_->port == 0)
    throw Error(ErrorCode::Unavailable,
                "the coordinator cannot listen on " + address +
                    ": the port is in use or the address is not one of this machine's" +
                    (options.tls.cert.empty()
                         ? std::string()
                         : ", or --tls-cert " + options.tls.cert + " and --tls-key " +
                               options.tls.key + " are not a certificate and its private key"));
  state_->watchdog = std::thread([s = state_.get()] { s->watch(); });
}

Coordinator::~Coordinator() {
  // After a loss, ranks busy elsewhere (a tcp handshake) hear of it only when they next ask; a
  // rank that runs the coordinator gives them a moment to (they stop beating as they close),
  // instead of leaving them a coordinator that is gone and no name.
  {
    std::unique_lock lock(state_->mu);
    state_->changed.wait_for(lock, kLingerAfterLoss, [s = state_.get()] {
      return s->notice.empty() || s->open_streams == 0;
    });
    state_->stopping = true;
    state_->changed.notify_all();
  }
  state_->watchdog.join();
  state_->server->Shutdown(std::chrono::system_clock::now() + 100ms);  // cancels beat streams still open
}

int Coordinator::port() const { return state_->port; }

uint64_t Coordinator::generation() const {
  std::lock_guard lock(state_->mu);
  return state_->generation;
}

bool Coordinator::wait_until_all_left(Deadline deadline) {
  std::unique_lock lock(state_->mu);
  // Leave does not signal `changed`, the end of the leaving rank's beat stream does.
  return state_->changed.wait_until(lock, deadline, [s = state_.get()] {
    return (s->members.empty() && s->open_streams == 0) || !s->notice.empty();
  }) && state_->notice.empty();
}

void Coordinator::post_rank_lost(const std::string& notice) {
  std::lock_guard lock(state_->mu);
  state_->post_lost(notice);
}

Coordinator::Loss Coordinator::loss() const {
  std::lock_guard lock(state_->mu);
  return {state_->notice, state_->lost_rank, state_->lost_silent};
}

void Coordinator::begin_generation() {
  std::lock_guard lock(state_->mu);
  State& s = *state_;
  // A generation that ended without a loss (the launcher stopped it) still ends: its requests
  // must not reach the next one.
  if (s.notice.empty()) ++s.generation;
  s.notice.clear();
  s.lost_rank = -1;
  s.lost_silent = false;
  s.kv.clear();
  s.members.clear();
  // Reports of steps the last generation never committed; entries still waited on go with their
  // last waiter, which the generation's end sends away.
  std::erase_if(s.commits, [](const auto& entry) { return entry.second.waiting == 0; });
  s.world_size = 0;
  s.changed.notify_all();
}

}  // namespace weft::comm
