// The C API (include/weft/weft.h) over comm::Communicator. Every entry point runs its body
// inside guarded(), which turns any exception into a status code and this thread's message:
// nothing thrown in weft reaches a C caller.
#include "include/weft/weft.h"

#include <atomic>
#include <exception>
#include <memory>
#include <new>
#include <mutex>
#include <string>
#include <unordered_map>

#include "comm/communicator.h"
#include "comm/pointer_device.h"
#include "comm/registered_buffer.h"
#include "runtime/error.h"

struct weft_comm {
  // weft_alloc's memory by address, until weft_free. Declared before `comm`, so that on
  // weft_comm_destroy the communicator finishes its ops before the memory goes.
  std::mutex allocations_mu;
  std::unordered_map<void*, weft::comm::RegisteredBuffer> allocations;
  std::unique_ptr<weft::comm::Communicator> comm;
};

struct weft_request {
  weft::comm::Work work;
};

namespace {

using weft::DType;
using weft::Error;
using weft::ErrorCode;
using weft::ReduceOp;
using weft::Tensor;

thread_local std::string last_error;
std::atomic<int> live_communicators{0};

weft_status_t status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument:
      return WEFT_ERR_INVALID_ARGUMENT;
    case ErrorCode::Timeout:
      return WEFT_ERR_TIMEOUT;
    case ErrorCode::PeerLost:
      return WEFT_ERR_PEER_LOST;
    case ErrorCode::Aborted:
      return WEFT_ERR_ABORTED;
    case ErrorCode::Corrupt:
      return WEFT_ERR_CORRUPT;
    case ErrorCode::Io:
      return WEFT_ERR_IO;
    case ErrorCode::Unavailable:
      return WEFT_ERR_UNAVAILABLE;
    case ErrorCode::Internal:
      return WEFT_ERR_INTERNAL;
  }
  return WEFT_ERR_INTERNAL;
}

// Runs `body`; returns WEFT_SUCCESS, or the code of what it threw with its message kept.
template <typename Body>
int guarded(Body&& body) noexcept {
  try {
    body();
    last_error.clear();
    return WEFT_SUCCESS;
  } catch (const Error& e) {
    last_error = e.what();
    return status_of(e.code());
  } catch (const std::bad_alloc&) {
    last_error = "Unavailable: out of memory";
    return WEFT_ERR_UNAVAILABLE;
  } catch (const std::exception& e) {
    last_error = std::string("Internal: ") + e.what();
    return WEFT_ERR_INTERNAL;
  } catch (...) {
    last_error = "Internal: an unknown exception";
    return WEFT_ERR_INTERNAL;
  }
}

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::InvalidArgument, what); }

weft::comm::Communicator& comm_of(weft_comm_t comm) {
  if (comm == nullptr || !comm->comm) bad("a NULL weft_comm_t: pass one weft_init_from_env made");
  return *comm->comm;
}

template <typename T>
T& out(T* p, const char* name) {
  if (p == nullptr) bad(std::string(name) + " is NULL: pass where the result should go");
  return *p;
}

DType dtype_of(weft_dtype_t d) {
  switch (d) {
    case WEFT_FLOAT32:
      return DType::f32;
    case WEFT_FLOAT16:
      return DType::f16;
    case WEFT_BFLOAT16:
      return DType::bf16;
    case WEFT_FLOAT64:
      return DType::f64;
    case WEFT_INT32:
      return DType::i32;
    case WEFT_INT64:
      return DType::i64;
    case WEFT_UINT8:
      return DType::u8;
  }
  bad("unknown weft_dtype_t " + std::to_string(static_cast<int>(d)) +
      ": use WEFT_FLOAT32, WEFT_FLOAT16, WEFT_BFLOAT16, WEFT_FLOAT64, WEFT_INT32, WEFT_INT64 or "
      "WEFT_UINT8");
}

ReduceOp op_of(weft_op_t o) {
  switch (o) {
    case WEFT_SUM:
      return ReduceOp::sum;
    case WEFT_AVG:
      return ReduceOp::avg;
    case WEFT_MAX:
      return ReduceOp::max;
    case WEFT_MIN:
      return ReduceOp::min;
    case WEFT_PROD:
      return ReduceOp::prod;
  }
  bad("unknown weft_op_t " + std::to_string(static_cast<int>(o)) +
      ": use WEFT_SUM, WEFT_AVG, WEFT_MAX, WEFT_MIN or WEFT_PROD");
}

// `count` elements at `data`, on whichever device the memory is (host, or a GPU).
Tensor view(const void* data, size_t count, weft_dtype_t dtype, const char* name) {
  if (data == nullptr && count > 0)
    bad(std::string(name) + " is NULL with a count of " + std::to_string(count));
  return Tensor::flat(const_cast<void*>(data), dtype_of(dtype), count,
                      weft::comm::pointer_device(data));
}

// A started op: handed to the caller as a request, or waited for here.
int finish(weft::comm::Work work, weft_request_t* request) {
  if (request == nullptr) {
    work.wait();
    return WEFT_SUCCESS;
  }
  *request = new weft_request{std::move(work)};
  return WEFT_SUCCESS;
}

int init(const char* backend, weft_comm_t* comm) {
  return guarded([&] {
    weft_comm_t& result = out(comm, "comm");
    auto made = std::make_unique<weft_comm>();
    made->comm = weft::comm::init_from_env(backend ? backend : "");
    result = made.release();
    live_communicators++;
  });
}

int allreduce(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
              weft_op_t op, weft_request_t* request) {
  return guarded([&] {
    auto& c = comm_of(comm);
    Tensor in = view(send, count, dtype, "send"), result = view(recv, count, dtype, "recv");
    finish(send == recv ? c.allreduce(result, op_of(op)) : c.allreduce(in, result, op_of(op)),
           request);
  });
}

int broadcast(weft_comm_t comm, void* data, size_t count, weft_dtype_t dtype, int root,
              weft_request_t* request) {
  return guarded(
      [&] { finish(comm_of(comm).broadcast(view(data, count, dtype, "data"), root), request); });
}

int reduce(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
           weft_op_t op, int root, weft_request_t* request) {
  return guarded([&] {
    auto& c = comm_of(comm);
    Tensor result = recv ? view(recv, count, dtype, "recv") : Tensor();
    finish(c.reduce(view(send, count, dtype, "send"), result, root, op_of(op)), request);
  });
}

int allgather(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
              weft_request_t* request) {
  return guarded([&] {
    auto& c = comm_of(comm);
    const size_t all = count * static_cast<size_t>(c.size());
    finish(c.allgather(view(send, count, dtype, "send"), view(recv, all, dtype, "recv")), request);
  });
}

int reduce_scatter(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
                   weft_op_t op, weft_request_t* request) {
  return guarded([&] {
    auto& c = comm_of(comm);
    const size_t all = count * static_cast<size_t>(c.size());
    finish(c.reduce_scatter(view(send, all, dtype, "send"), view(recv, count, dtype, "recv"),
                            op_of(op)),
           request);
  });
}

int alltoall(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
             weft_request_t* request) {
  return guarded([&] {
    auto& c = comm_of(comm);
    const size_t all = count * static_cast<size_t>(c.size());
    finish(c.alltoall(view(send, all, dtype, "send"), view(recv, all, dtype, "recv")), request);
  });
}

int send(weft_comm_t comm, const void* data, size_t count, weft_dtype_t dtype, int peer,
         weft_request_t* request) {
  return guarded(
      [&] { finish(comm_of(comm).send(view(data, count, dtype, "data"), peer), request); });
}

int recv(weft_comm_t comm, void* data, size_t count, weft_dtype_t dtype, int peer,
         weft_request_t* request) {
  return guarded(
      [&] { finish(comm_of(comm).recv(view(data, count, dtype, "data"), peer), request); });
}

int barrier(weft_comm_t comm, weft_request_t* request) {
  return guarded([&] { finish(comm_of(comm).barrier(), request); });
}

// What a weft_i* call given no place for its request returns (it starts nothing).
int missing_request() {
  return guarded([] { bad("request is NULL: pass where the started op's request should go"); });
}

}  // namespace

extern "C" {

const char* weft_error_string(int status) {
  switch (status) {
    case WEFT_SUCCESS:
      return "Success";
    case WEFT_ERR_INVALID_ARGUMENT:
      return "InvalidArgument";
    case WEFT_ERR_TIMEOUT:
      return "Timeout";
    case WEFT_ERR_PEER_LOST:
      return "PeerLost";
    case WEFT_ERR_ABORTED:
      return "Aborted";
    case WEFT_ERR_CORRUPT:
      return "Corrupt";
    case WEFT_ERR_IO:
      return "Io";
    case WEFT_ERR_UNAVAILABLE:
      return "Unavailable";
    case WEFT_ERR_INTERNAL:
      return "Internal";
    default:
      return "unknown weft status";
  }
}

const char* weft_last_error(void) { return last_error.c_str(); }

int weft_init_from_env(weft_comm_t* comm) { return init(nullptr, comm); }
int weft_init_from_env_backend(const char* backend, weft_comm_t* comm) {
  return init(backend, comm);
}

int weft_finalize(void) {
  return guarded([] {
    if (const int left = live_communicators.load(); left > 0)
      bad(std::to_string(left) +
          " weft communicator(s) still exist: weft_comm_destroy each "
          "before weft_finalize");
  });
}

int weft_comm_rank(weft_comm_t comm, int* rank) {
  return guarded([&] { out(rank, "rank") = comm_of(comm).rank(); });
}

int weft_comm_size(weft_comm_t comm, int* size) {
  return guarded([&] { out(size, "size") = comm_of(comm).size(); });
}

int weft_comm_split(weft_comm_t comm, int color, int key, weft_comm_t* result) {
  return guarded([&] {
    weft_comm_t& made = out(result, "out");
    made = nullptr;
    auto child = comm_of(comm).split(color, key);
    if (!child) return;
    made = new weft_comm{{}, {}, std::move(child)};
    live_communicators++;
  });
}

int weft_comm_destroy(weft_comm_t comm) {
  return guarded([&] {
    comm_of(comm);
    delete comm;
    live_communicators--;
  });
}

int weft_alloc(weft_comm_t comm, size_t bytes, void** ptr) {
  return guarded([&] {
    void*& result = out(ptr, "ptr");
    result = nullptr;
    weft::comm::RegisteredBuffer buffer = comm_of(comm).alloc(bytes);
    void* data = buffer.data();
    if (data == nullptr) bad("weft_alloc of 0 bytes: ask for at least one byte");
    std::lock_guard lock(comm->allocations_mu);
    comm->allocations.emplace(data, std::move(buffer));
    result = data;
  });
}

int weft_free(weft_comm_t comm, void* ptr) {
  return guarded([&] {
    comm_of(comm);
    if (ptr == nullptr) return;
    weft::comm::RegisteredBuffer buffer;
    {
      std::lock_guard lock(comm->allocations_mu);
      auto it = comm->allocations.find(ptr);
      if (it == comm->allocations.end())
        bad("weft_free of a pointer that weft_alloc did not return for this communicator (or "
            "that was freed already)");
      buffer = std::move(it->second);
      comm->allocations.erase(it);
    }
    // Dropped here, outside the lock; an op still running on it keeps it mapped (and logs).
  });
}

int weft_comm_abort(weft_comm_t comm, const char* reason) {
  return guarded([&] { comm_of(comm).abort(reason ? reason : "weft_comm_abort() called"); });
}

int weft_allreduce(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
                   weft_op_t op) {
  return allreduce(comm, send, recv, count, dtype, op, nullptr);
}
int weft_broadcast(weft_comm_t comm, void* data, size_t count, weft_dtype_t dtype, int root) {
  return broadcast(comm, data, count, dtype, root, nullptr);
}
int weft_reduce(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
                weft_op_t op, int root) {
  return reduce(comm, send, recv, count, dtype, op, root, nullptr);
}
int weft_allgather(weft_comm_t comm, const void* send, void* recv, size_t count,
                   weft_dtype_t dtype) {
  return allgather(comm, send, recv, count, dtype, nullptr);
}
int weft_reduce_scatter(weft_comm_t comm, const void* send, void* recv, size_t count,
                        weft_dtype_t dtype, weft_op_t op) {
  return reduce_scatter(comm, send, recv, count, dtype, op, nullptr);
}
int weft_alltoall(weft_comm_t comm, const void* send, void* recv, size_t count,
                  weft_dtype_t dtype) {
  return alltoall(comm, send, recv, count, dtype, nullptr);
}
int weft_send(weft_comm_t comm, const void* data, size_t count, weft_dtype_t dtype, int peer) {
  return send(comm, data, count, dtype, peer, nullptr);
}
int weft_recv(weft_comm_t comm, void* data, size_t count, weft_dtype_t dtype, int peer) {
  return recv(comm, data, count, dtype, peer, nullptr);
}
int weft_barrier(weft_comm_t comm) { return barrier(comm, nullptr); }

int weft_iallreduce(weft_comm_t comm, const void* send, void* recv, size_t count,
                    weft_dtype_t dtype, weft_op_t op, weft_request_t* request) {
  return request == nullptr ? missing_request()
                            : allreduce(comm, send, recv, count, dtype, op, request);
}
int weft_ibroadcast(weft_comm_t comm, void* data, size_t count, weft_dtype_t dtype, int root,
                    weft_request_t* request) {
  return request == nullptr ? missing_request()
                            : broadcast(comm, data, count, dtype, root, request);
}
int weft_ireduce(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
                 weft_op_t op, int root, weft_request_t* request) {
  return request == nullptr ? missing_request()
                            : reduce(comm, send, recv, count, dtype, op, root, request);
}
int weft_iallgather(weft_comm_t comm, const void* send, void* recv, size_t count,
                    weft_dtype_t dtype, weft_request_t* request) {
  return request == nullptr ? missing_request()
                            : allgather(comm, send, recv, count, dtype, request);
}
int weft_ireduce_scatter(weft_comm_t comm, const void* send, void* recv, size_t count,
                         weft_dtype_t dtype, weft_op_t op, weft_request_t* request) {
  return request == nullptr ? missing_request()
                            : reduce_scatter(comm, send, recv, count, dtype, op, request);
}
int weft_ialltoall(weft_comm_t comm, const void* send, void* recv, size_t count, weft_dtype_t dtype,
                   weft_request_t* request) {
  return request == nullptr ? missing_request() : alltoall(comm, send, recv, count, dtype, request);
}
int weft_isend(weft_comm_t comm, const void* data, size_t count, weft_dtype_t dtype, int peer,
               weft_request_t* request) {
  return request == nullptr ? missing_request() : send(comm, data, count, dtype, peer, request);
}
int weft_irecv(weft_comm_t comm, void* data, size_t count, weft_dtype_t dtype, int peer,
               weft_request_t* request) {
  return request == nullptr ? missing_request() : recv(comm, data, count, dtype, peer, request);
}
int weft_ibarrier(weft_comm_t comm, weft_request_t* request) {
  return request == nullptr ? missing_request() : barrier(comm, request);
}

int weft_test(weft_request_t request, int* done) {
  return guarded([&] {
    int& finished = out(done, "done");
    finished = 0;
    if (request == nullptr) bad("a NULL weft_request_t: pass one a weft_i* call made");
    if (!request->work.done()) return;
    finished = 1;
    std::unique_ptr<weft_request> owned(request);
    owned->work.wait();  // rethrows the op's failure, after which the request is freed too
  });
}

int weft_wait(weft_request_t request) {
  return guarded([&] {
    if (request == nullptr) bad("a NULL weft_request_t: pass one a weft_i* call made");
    std::unique_ptr<weft_request> owned(request);
    owned->work.wait();
  });
}

}  // extern "C"
