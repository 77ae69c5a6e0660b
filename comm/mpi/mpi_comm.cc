#include "comm/mpi/mpi_comm.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "runtime/error.h"

namespace weft::comm {

MpiComm::MpiComm(std::shared_ptr<MpiRuntime> runtime, MPI_Comm comm)
    : runtime_(std::move(runtime)), comm_(comm) {
  // Failures come back as return codes and become weft::Errors naming the rank and the op;
  // MPI's default handler would end the whole job from inside the library.
  if (comm_ != MPI_COMM_NULL) MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiComm::~MpiComm() { reset(); }

MpiComm::MpiComm(MpiComm&& other) noexcept
    : runtime_(std::move(other.runtime_)), comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}

MpiComm& MpiComm::operator=(MpiComm&& other) noexcept {
  if (this != &other) {
    reset();
    runtime_ = std::move(other.runtime_);
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
  }
  return *this;
}

void MpiComm::reset() {
  // MPI_Comm_free only marks the communicator for deletion: it does not wait for requests still
  // active on it (those of an aborted op), so this never blocks.
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
  runtime_.reset();  // last: MPI_Finalize, when this was the last MPI object, follows the free
}

namespace {

// Runs `create` (a blocking MPI call that makes a communicator: MPI has no non-blocking way to
// make one of some of the ranks) on a thread of its own, and waits for it until `deadline`.
// On time-out the thread is left inside MPI, which nothing can interrupt: detached, it ends
// with the process, and the runtime will not finalize.
MPI_Comm create_bounded(MpiRuntime& runtime, std::function<int(MPI_Comm*)> create,
                        Deadline deadline, int rank, const char* call, const std::string& what) {
  struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    int rc = MPI_SUCCESS;
    MPI_Comm comm = MPI_COMM_NULL;
  };
  auto outcome = std::make_shared<Outcome>();
  std::thread caller([outcome, create = std::move(create)] {
    MPI_Comm comm = MPI_COMM_NULL;
    int rc = create(&comm);
    std::lock_guard lock(outcome->mu);
    outcome->rc = rc;
    outcome->comm = comm;
    outcome->done = true;
    outcome->cv.notify_all();
  });
  bool done;
  {
    std::unique_lock lock(outcome->mu);
    done = outcome->cv.wait_until(lock, deadline, [&] { return outcome->done; });
  }
  if (!done) {
    caller.detach();
    runtime.leave_call_running();
    throw Error(ErrorCode::Timeout,
                "rank " + std::to_string(rank) + ": " + call + " (" + what +
                    ") did not complete within WEFT_TIMEOUT: another rank of the communicator "
                    "is stuck, slower or gone; raise WEFT_TIMEOUT if it is only slow");
  }
  caller.join();
  check_mpi(outcome->rc, call, rank, what);
  return outcome->comm;
}

MPI_Comm idup_of(MpiRuntime& runtime, MPI_Comm comm, Deadline deadline, int rank,
                 const std::string& what) {
  try {
    return idup(comm, deadline, rank, what);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Timeout) runtime.leave_call_running();
    throw;
  }
}

}  // namespace

MpiComm MpiComm::dup_world(std::shared_ptr<MpiRuntime> runtime, Deadline deadline) {
  MPI_Comm comm = idup_of(*runtime, MPI_COMM_WORLD, deadline, runtime->world_rank(),
                          "creating a communicator over MPI_COMM_WORLD");
  return MpiComm(std::move(runtime), comm);
}

MpiComm MpiComm::dup(Deadline deadline) const {
  return MpiComm(runtime_,
                 idup_of(*runtime_, comm_, deadline, rank(), "duplicating a communicator"));
}

MpiComm MpiComm::create_group(const std::vector<int>& members, Deadline deadline) const {
  MPI_Group all = MPI_GROUP_NULL;
  MPI_Comm_group(comm_, &all);
  // Owned by the helper thread's call, which may outlive this one (see create_bounded).
  auto some = std::make_shared<MPI_Group>(MPI_GROUP_NULL);
  int rc = MPI_Group_incl(all, static_cast<int>(members.size()), members.data(), some.get());
  MPI_Group_free(&all);
  check_mpi(rc, "MPI_Group_incl", rank(), "splitting a communicator");
  // The tag only has to tell apart concurrent calls over overlapping groups: there are none,
  // since a communicator runs one split at a time and a split's groups are disjoint.
  MPI_Comm comm = create_bounded(
      *runtime_,
      [parent = comm_, some](MPI_Comm* out) {
        int result = MPI_Comm_create_group(parent, *some, /*tag=*/0, out);
        MPI_Group_free(some.get());
        return result;
      },
      deadline, rank(), "MPI_Comm_create_group", "splitting a communicator");
  return MpiComm(runtime_, comm);
}

MpiComm MpiComm::split(int color, int key, Deadline deadline) const {
  MPI_Comm comm = create_bounded(
      *runtime_,
      [parent = comm_, color, key](MPI_Comm* out) {
        return MPI_Comm_split(parent, color, key, out);
      },
      deadline, rank(), "MPI_Comm_split",
      "split(" + std::to_string(color) + ", " + std::to_string(key) + ")");
  return MpiComm(runtime_, comm);
}

int MpiComm::rank() const {
  int r = -1;
  if (comm_ != MPI_COMM_NULL) MPI_Comm_rank(comm_, &r);
  return r;
}

int MpiComm::size() const {
  int n = 0;
  if (comm_ != MPI_COMM_NULL) MPI_Comm_size(comm_, &n);
  return n;
}

}  // namespace weft::comm
