#include "comm/nccl/nccl_comm.h"

#include <utility>

#include "runtime/idle_backoff.h"  // IdleBackoff: nothing MPI-specific in it
#include "runtime/cuda_device.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace weft::comm {
namespace {

// How long a destructor lets ncclCommFinalize flush before it aborts instead.
constexpr auto kFinalizePatience = std::chrono::seconds(5);

ErrorCode code_of(ncclResult_t result) {
  switch (result) {
    case ncclInvalidArgument:
    case ncclInvalidUsage: return ErrorCode::InvalidArgument;
    case ncclRemoteError: return ErrorCode::PeerLost;
    case ncclSystemError: return ErrorCode::Io;
    default: return ErrorCode::Internal;
  }
}

const char* advice(ncclResult_t result) {
  switch (result) {
    case ncclRemoteError:
      return "; a peer rank failed or its connection broke: look for the first error in the "
             "other ranks' logs";
    case ncclSystemError:
      return "; a system call or the network failed: run with NCCL_DEBUG=WARN to see which";
    case ncclInvalidUsage:
      return "; NCCL was used wrongly (two ranks on one GPU? see NCCL_DEBUG=WARN)";
    case ncclUnhandledCudaError:
      return "; a CUDA call inside NCCL failed (a device fault or no usable GPU)";
    default: return "; run with NCCL_DEBUG=WARN for NCCL's own account";
  }
}

std::string to_hex(const ncclUniqueId& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * sizeof id.internal);
  for (char c : id.internal) {
    auto byte = static_cast<unsigned char>(c);
    s += kDigits[byte >> 4];
    s += kDigits[byte & 15];
  }
  return s;
}

bool from_hex(const std::string& s, ncclUniqueId& id) {
  if (s.size() != 2 * sizeof id.internal) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < sizeof id.internal; i++) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    id.internal[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

ncclConfig_t non_blocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

}  // namespace

ncclDataType_t nccl_datatype(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  throw Error(ErrorCode::Internal, "nccl: unknown dtype " + std::to_string(int(dtype)));
}

ncclRedOp_t nccl_reduce_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::prod: return ncclProd;
  }
  throw Error(ErrorCode::Internal, "nccl: unknown reduce op " + std::to_string(int(op)));
}

void check_nccl(ncclResult_t result, const char* call, const std::string& where) {
  if (result == ncclSuccess || result == ncclInProgress) return;
  throw Error(code_of(result), where + ": " + call + " failed: " + ncclGetErrorString(result) +
                                   advice(result));
}

NcclComm NcclComm::connect(Store& store, const std::string& key, int rank, int size, int device,
                           Deadline deadline) {
  std::string where = "rank " + std::to_string(rank) + ": nccl set-up of a group of " +
                      std::to_string(size) + " on cuda:" + std::to_string(device);
  if (size < 1 || rank < 0 || rank >= size)
    throw Error(ErrorCode::InvalidArgument, where + ": rank must be in 0.." +
                                                std::to_string(size - 1));
  require_cuda_device(device, where);
  ncclUniqueId id{};
  if (rank == 0) {
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", where);
    store.set(key, to_hex(id));
  } else {
    std::string text;
    try {
      text = store.get(key, deadline);
    } catch (const Error& e) {
      throw Error(e.code(), where + ": waiting for rank 0's ncclUniqueId (store key '" + key +
                                "'): " + e.what() +
                                "; rank 0 has not reached its nccl set-up: is it alive, and "
                                "did every rank pick backend nccl?");
    }
    if (!from_hex(text, id))
      throw Error(ErrorCode::Corrupt, where + ": the store's ncclUniqueId under '" + key +
                                          "' is not 256 hex digits; another job may share "
                                          "this store");
  }
  CudaDeviceGuard on(device);
  ncclConfig_t config = non_blocking_config();
  ncclComm_t raw = nullptr;
  ncclResult_t result = ncclCommInitRankConfig(&raw, size, id, rank, &config);
  NcclComm comm(raw, rank, size, device);  // owns it from here, whatever happens next
  if (result != ncclSuccess && result != ncclInProgress) {
    if (comm) comm.fail(result, where + ": ncclCommInitRankConfig");
    check_nccl(result, "ncclCommInitRankConfig", where);
  }
  comm.wait_issued(deadline, where + " (ncclCommInitRankConfig)");
  return comm;
}

NcclComm::NcclComm(NcclComm&& other) noexcept
    : comm_(std::exchange(other.comm_, nullptr)),
      rank_(other.rank_),
      size_(other.size_),
      device_(other.device_) {}

NcclComm& NcclComm::operator=(NcclComm&& other) noexcept {
  if (this != &other) {
    release();
    comm_ = std::exchange(other.comm_, nullptr);
    rank_ = other.rank_;
    size_ = other.size_;
    device_ = other.device_;
  }
  return *this;
}

NcclComm::~NcclComm() { release(); }

void NcclComm::release() noexcept {
  if (!comm_) return;
  // A healthy communicator flushes its work first, so a peer still receiving our last message
  // gets it; a broken one (or one that will not flush in time) is aborted.
  ncclResult_t finalized = async_state() == ncclSuccess ? ncclCommFinalize(comm_) : ncclInvalidUsage;
  if (finalized == ncclSuccess || finalized == ncclInProgress) {
    IdleBackoff backoff;
    Deadline until = Clock::now() + kFinalizePatience;
    ncclResult_t state = async_state();
    while (state == ncclInProgress && Clock::now() < until) {
      backoff.idle(until);
      state = async_state();
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
      comm_ = nullptr;
      return;
    }
    WEFT_WARN("rank " << rank_ << ": an nccl communicator did not finalize within "
                      << kFinalizePatience.count() << " s (" << ncclGetErrorString(state)
                      << "); aborting it");
  }
  abort();
}

void NcclComm::abort() noexcept {
  if (!comm_) return;
  ncclCommAbort(comm_);
  comm_ = nullptr;
}

ncclResult_t NcclComm::async_state() const {
  if (!comm_) return ncclInvalidUsage;
  ncclResult_t state = ncclSuccess;
  ncclResult_t result = ncclCommGetAsyncError(comm_, &state);
  return result == ncclSuccess ? state : result;
}

void NcclComm::fail(ncclResult_t state, const std::string& where) {
  std::string detail = comm_ ? ncclGetLastError(comm_) : "";
  abort();
  throw Error(code_of(state), where + " failed: " + ncclGetErrorString(state) +
                                  (detail.empty() ? "" : " (" + detail + ")") + advice(state));
}

void NcclComm::wait_issued(Deadline deadline, const std::string& where) {
  IdleBackoff backoff;
  for (;;) {
    ncclResult_t state = async_state();
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) fail(state, where);
    if (Clock::now() >= deadline) {
      abort();
      throw Error(ErrorCode::Timeout,
                  where + " timed out: NCCL was still connecting the ranks; another rank is "
                          "missing, slower or on another group; raise WEFT_TIMEOUT if it is "
                          "only slow");
    }
    backoff.idle(deadline);
  }
}

NcclComm NcclComm::split(int color, int key, Deadline deadline, const std::string& where) {
  CudaDeviceGuard on(device_);
  ncclConfig_t config = non_blocking_config();
  ncclComm_t raw = nullptr;
  ncclResult_t result =
      ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &raw, &config);
  NcclComm child(raw, 0, 0, device_);
  if (result != ncclSuccess && result != ncclInProgress) fail(result, where + ": ncclCommSplit");
  // The split is carried out in the background on the parent and the child alike.
  wait_issued(deadline, where + " (ncclCommSplit)");
  if (!child) return child;
  child.wait_issued(deadline, where + " (the new communicator of ncclCommSplit)");
  check_nccl(ncclCommUserRank(child.comm_, &child.rank_), "ncclCommUserRank", where);
  check_nccl(ncclCommCount(child.comm_, &child.size_), "ncclCommCount", where);
  return child;
}

}  // namespace weft::comm
