// The coordinator where weft was built without gRPC: every way in fails with Unavailable saying
// what to install.
#include "comm/rendezvous/coordinator.h"
#include "runtime/error.h"

namespace weft::comm {
namespace {

[[noreturn]] void unavailable() {
  throw Error(ErrorCode::Unavailable,
              "this weft was built without gRPC, so it has no coordinator for ranks to meet "
              "through: install libgrpc++-dev libprotobuf-dev protobuf-compiler "
              "protobuf-compiler-grpc and build again (or run under mpirun with --backend mpi, "
              "whose ranks meet inside MPI)");
}

}  // namespace

struct Coordinator::State {};
struct CoordinatorStore::Client {};

Coordinator::Coordinator(const std::string&, int, std::string, CoordinatorOptions) {
  unavailable();
}
Coordinator::~Coordinator() = default;
int Coordinator::port() const { unavailable(); }
void Coordinator::post_rank_lost(const std::string&) { unavailable(); }
uint64_t Coordinator::generation() const { unavailable(); }
bool Coordinator::wait_until_all_left(Deadline) { unavailable(); }
Coordinator::Loss Coordinator::loss() const { unavailable(); }
void Coordinator::begin_generation() { unavailable(); }

CoordinatorStore::CoordinatorStore(std::unique_ptr<Client> client) : client_(std::move(client)) {}
CoordinatorStore::~CoordinatorStore() = default;
std::unique_ptr<CoordinatorStore> CoordinatorStore::connect(const std::string&, int,
                                                            const std::string&, Deadline,
                                                            const std::string&) {
  unavailable();
}
std::unique_ptr<CoordinatorStore> CoordinatorStore::connect(const std::string&,
                                                            const std::string&, Deadline) {
  unavailable();
}
void CoordinatorStore::set(const std::string&, const std::string&) { unavailable(); }
std::string CoordinatorStore::get(const std::string&, Deadline) { unavailable(); }
int64_t CoordinatorStore::add(const std::string&, int64_t) { unavailable(); }
void CoordinatorStore::wait(const std::vector<std::string>&, Deadline) { unavailable(); }
void CoordinatorStore::check_members() { unavailable(); }
std::shared_ptr<void> CoordinatorStore::watch_losses(std::function<void(const std::string&)>) {
  unavailable();
}
void CoordinatorStore::join_as(int, int) { unavailable(); }
void CoordinatorStore::commit_shard(const std::string&, int64_t, int, const std::string&,
                                    const std::string&, Deadline) {
  unavailable();
}
void CoordinatorStore::served_by(int) { unavailable(); }
std::string CoordinatorStore::local_host() const { unavailable(); }
bool CoordinatorStore::answers(Deadline) { unavailable(); }
void CoordinatorStore::post_rank_lost(const std::string&, Deadline) { unavailable(); }

}  // namespace weft::comm
