#include "comm/mpi/mpi_runtime.h"

#include <mutex>

#include "runtime/idle_backoff.h"
#include "kernels/reduce.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {

// MPI calls a user op with (in, inout): inout[i] = in[i] op inout[i]. MPI passes no user data,
// so the dtype and op are template arguments, one function per pair.
template <DType kType, ReduceOp kOp>
void half_reduce(void* in, void* inout, int* len, MPI_Datatype*) {
  kernels::cpu::reduce(inout, in, inout, static_cast<size_t>(*len), kType, kOp);
}

template <DType kType>
void create_half_ops(MPI_Op (&ops)[4]) {
  MPI_User_function* fns[4] = {&half_reduce<kType, ReduceOp::sum>,
                               &half_reduce<kType, ReduceOp::max>,
                               &half_reduce<kType, ReduceOp::min>,
                               &half_reduce<kType, ReduceOp::prod>};
  for (int i = 0; i < 4; i++)
    check_mpi(MPI_Op_create(fns[i], /*commute=*/1, &ops[i]), "MPI_Op_create", -1,
              "setting up the f16/bf16 reductions");
}

int half_op_index(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return 0;
    case ReduceOp::max: return 1;
    case ReduceOp::min: return 2;
    case ReduceOp::prod: return 3;
  }
  return 0;
}

// Guards the one runtime of this process. A weak_ptr: the runtime lives exactly as long as the
// MPI objects that hold it.
std::mutex& runtime_mutex() {
  static std::mutex mu;
  return mu;
}
std::weak_ptr<MpiRuntime>& current_runtime() {
  static std::weak_ptr<MpiRuntime> current;
  return current;
}

// A barrier over `comm` that gives up after `patience`; whether every rank arrived.
bool all_ranks_arrive(MPI_Comm comm, std::chrono::milliseconds patience) {
  MPI_Request request = MPI_REQUEST_NULL;
  if (MPI_Ibarrier(comm, &request) != MPI_SUCCESS) return false;
  return wait_for_request(request, deadline_after(patience));
}

}  // namespace

bool wait_for_request(MPI_Request& request, Deadline deadline) {
  IdleBackoff backoff;
  for (;;) {
    int done = 0;
    if (MPI_Test(&request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return false;
    if (done) return true;
    if (Clock::now() >= deadline) return false;
    backoff.idle(deadline);
  }
}

std::string mpi_error_text(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<size_t>(len));
}

void check_mpi(int rc, const char* call, int rank, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  std::string who = rank >= 0 ? "rank " + std::to_string(rank) + ": " : "";
  throw Error(ErrorCode::Internal, who + call + " failed in " + what + ": " + mpi_error_text(rc) +
                                       "; the MPI job is in a bad state, restart it");
}

std::shared_ptr<MpiRuntime> MpiRuntime::acquire() {
  std::lock_guard lock(runtime_mutex());
  if (auto rt = current_runtime().lock()) return rt;
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    throw Error(ErrorCode::Unavailable,
                "MPI was already finalized in this process and cannot be initialized again; keep "
                "one MPI-backed communicator alive for as long as the process uses MPI");
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided),
              "MPI_Init_thread", -1, "starting MPI");
  } else {
    MPI_Query_thread(&provided);
  }
  // From here on MPI is initialized; when weft did it, the runtime owns it and finalizes it.
  std::shared_ptr<MpiRuntime> rt(new MpiRuntime(!initialized));
  if (provided < MPI_THREAD_MULTIPLE)
    throw Error(ErrorCode::Unavailable,
                "MPI provides thread level " + std::to_string(provided) +
                    " but weft's MPI backends need MPI_THREAD_MULTIPLE (each communicator drives "
                    "MPI from its own thread): initialize MPI with MPI_Init_thread(..., "
                    "MPI_THREAD_MULTIPLE, ...) or let weft initialize it");
  current_runtime() = rt;
  return rt;
}

MpiRuntime::MpiRuntime(bool owns_mpi) : owns_mpi_(owns_mpi) {
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
  create_half_ops<DType::f16>(half_ops_[0]);
  create_half_ops<DType::bf16>(half_ops_[1]);
  if (owns_mpi_)
    finalize_comm_ =
        idup(MPI_COMM_WORLD, deadline_after(env::timeout()), world_rank_, "starting MPI");
}

MPI_Comm idup(MPI_Comm comm, Deadline deadline, int rank, const std::string& what) {
  // MPI writes the new handle when the duplication completes, which after a time-out may be
  // later or never: into memory of its own then, left to it (a few bytes, on that path only).
  auto handle = std::make_unique<MPI_Comm>(MPI_COMM_NULL);
  MPI_Request request = MPI_REQUEST_NULL;
  check_mpi(MPI_Comm_idup(comm, handle.get(), &request), "MPI_Comm_idup", rank, what);
  if (wait_for_request(request, deadline)) return *handle;
  handle.release();
  throw Error(ErrorCode::Timeout,
              "rank " + std::to_string(rank) + ": MPI_Comm_idup (" + what +
                  ") did not complete within WEFT_TIMEOUT: another rank of the communicator "
                  "is stuck, slower or gone; raise WEFT_TIMEOUT if it is only slow");
}

MpiRuntime::~MpiRuntime() {
  for (auto& row : half_ops_)
    for (MPI_Op& op : row) MPI_Op_free(&op);
  if (!owns_mpi_) return;
  if (call_left_running_.load()) {
    WEFT_WARN("rank " << world_rank_ << ": an MPI call given up at its deadline is still "
                      << "running; leaving without MPI_Finalize, which would wait for it");
    return;
  }
  // Open MPI's MPI_Finalize waits, with no deadline, for every rank of the job to reach it. So
  // the ranks first meet in a barrier bounded by WEFT_TIMEOUT; a rank that does not come in
  // time is stuck or gone, and this one leaves without MPI_Finalize (mpirun then reports that
  // it did not finalize) rather than hang in a destructor.
  if (!all_ranks_arrive(finalize_comm_, env::timeout())) {
    WEFT_WARN("rank " << world_rank_ << ": not every rank closed its MPI communicators within "
                      << std::chrono::duration_cast<std::chrono::seconds>(env::timeout()).count()
                      << " s (WEFT_TIMEOUT); leaving without MPI_Finalize");
    return;
  }
  MPI_Comm_free(&finalize_comm_);
  int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) WEFT_WARN("MPI_Finalize failed: " << mpi_error_text(rc));
}

MPI_Datatype MpiRuntime::datatype(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: return MPI_UINT8_T;
    case DType::f16:
    case DType::bf16: return MPI_UINT16_T;  // only weft's own ops interpret them
  }
  return MPI_BYTE;
}

MPI_Op MpiRuntime::reduce_op(DType t, ReduceOp op) const {
  if (t == DType::f16 || t == DType::bf16) return half_ops_[t == DType::bf16][half_op_index(op)];
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
    case ReduceOp::prod: return MPI_PROD;
  }
  return MPI_SUM;
}

}  // namespace weft::comm
