/* weft's C API: collectives for any program that can call C.
 *
 * Plain C (C99 and C++ alike); every function returns a weft_status_t (WEFT_SUCCESS, 0, or an
 * error code) and writes its results through pointers. No C++ exception crosses this API: a
 * failure becomes its code, and weft_last_error() gives this thread's message for the last
 * failed call, which says what was wrong and what to do.
 *
 * A communicator comes from the environment its launcher set (weftrun, mpirun, torchrun-style
 * variables, Slurm): weft_init_from_env() meets the other ranks and returns the world
 * communicator. Buffers are raw pointers to host memory or to CUDA device memory (weft asks
 * CUDA which, where it was built with CUDA); counts are elements of `dtype`.
 *
 * Blocking calls return when the op is complete on this rank. The weft_i* calls return at once
 * with a request that weft_test() polls and weft_wait() waits for; each request must be waited
 * for (or tested until done) exactly once, which frees it. Ops on one communicator run in the
 * order they are called, on every rank.
 *
 * Link with the CMake package (find_package(weft) gives weft::weft) or pkg-config (weft). */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include <stddef.h>

/* The library exports these and nothing else. */
#if defined(WEFT_BUILDING_LIBRARY) && defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_comm *weft_comm_t;
typedef struct weft_request *weft_request_t;

typedef enum {
  WEFT_SUCCESS = 0,
  WEFT_ERR_INVALID_ARGUMENT = 1, /* a bad argument, or ranks that disagree on one */
  WEFT_ERR_TIMEOUT = 2,          /* a peer did not answer within WEFT_TIMEOUT */
  WEFT_ERR_PEER_LOST = 3,        /* a peer died or left; the message names it */
  WEFT_ERR_ABORTED = 4,          /* the communicator was aborted */
  WEFT_ERR_CORRUPT = 5,          /* a message or file that is not what it should be */
  WEFT_ERR_IO = 6,               /* a system call failed */
  WEFT_ERR_UNAVAILABLE = 7,      /* something weft was built without, or no device */
  WEFT_ERR_INTERNAL = 8          /* a bug in weft: please report it with the message */
} weft_status_t;

typedef enum {
  WEFT_FLOAT32 = 0,
  WEFT_FLOAT16 = 1,
  WEFT_BFLOAT16 = 2,
  WEFT_FLOAT64 = 3,
  WEFT_INT32 = 4,
  WEFT_INT64 = 5,
  WEFT_UINT8 = 6
} weft_dtype_t;

typedef enum { WEFT_SUM = 0, WEFT_AVG = 1, WEFT_MAX = 2, WEFT_MIN = 3, WEFT_PROD = 4 } weft_op_t;

/* The short name of a status ("InvalidArgument"), for any value. */
WEFT_API const char *weft_error_string(int status);
/* This thread's message for its last failed call ("" before any), valid until its next call. */
WEFT_API const char *weft_last_error(void);

/* The world communicator of this process, from its launcher's environment; the backend is
 * WEFT_BACKEND's (auto: shared memory on one node, TCP otherwise). */
WEFT_API int weft_init_from_env(weft_comm_t *comm);
/* The same with a backend named here ("tcp", "shm", "mpi", "nccl", ...; NULL reads the
 * environment). */
WEFT_API int weft_init_from_env_backend(const char *backend, weft_comm_t *comm);
/* Ends weft's use of the process. Every communicator must have been destroyed (else
 * WEFT_ERR_INVALID_ARGUMENT, saying how many are left). */
WEFT_API int weft_finalize(void);

WEFT_API int weft_comm_rank(weft_comm_t comm, int *rank);
WEFT_API int weft_comm_size(weft_comm_t comm, int *size);
/* Collective: ranks with the same color form a new communicator, ordered by (key, rank). A
 * negative color joins none: *out is then NULL. */
WEFT_API int weft_comm_split(weft_comm_t comm, int color, int key, weft_comm_t *out);
/* Finishes the communicator's ops (each bounded by its deadline) and frees it. */
WEFT_API int weft_comm_destroy(weft_comm_t comm);
/* `bytes` of zeroed host memory at *ptr that every local rank of the communicator can map
 * (registered memory): a collective whose buffers were all allocated this way, on every rank,
 * runs in place over shared memory, each rank reading its peers' buffers, instead of copying
 * through FIFOs (elsewhere, plain memory). Not collective. Free it with weft_free on the same
 * communicator once the ops on it are done; weft_comm_destroy frees what is left. */
WEFT_API int weft_alloc(weft_comm_t comm, size_t bytes, void **ptr);
/* Returns memory from weft_alloc (NULL: nothing). */
WEFT_API int weft_free(weft_comm_t comm, void *ptr);
/* Fails every pending op of the communicator, here and on its peers. */
WEFT_API int weft_comm_abort(weft_comm_t comm, const char *reason);

/* recv = the reduction over ranks of send; send == recv is in place. */
WEFT_API int weft_allreduce(weft_comm_t comm, const void *send, void *recv, size_t count,
                            weft_dtype_t dtype, weft_op_t op);
/* data (count elements) from root to every rank. */
WEFT_API int weft_broadcast(weft_comm_t comm, void *data, size_t count, weft_dtype_t dtype,
                            int root);
/* recv (on root only; NULL elsewhere) = the reduction over ranks of send. */
WEFT_API int weft_reduce(weft_comm_t comm, const void *send, void *recv, size_t count,
                         weft_dtype_t dtype, weft_op_t op, int root);
/* recv holds size x count elements: rank r's send at offset r x count. */
WEFT_API int weft_allgather(weft_comm_t comm, const void *send, void *recv, size_t count,
                            weft_dtype_t dtype);
/* send holds size x count elements; rank r's recv (count) = the reduction of block r. */
WEFT_API int weft_reduce_scatter(weft_comm_t comm, const void *send, void *recv, size_t count,
                                 weft_dtype_t dtype, weft_op_t op);
/* send and recv hold size x count elements; block j of send goes to rank j's block `rank`. */
WEFT_API int weft_alltoall(weft_comm_t comm, const void *send, void *recv, size_t count,
                           weft_dtype_t dtype);
/* Point to point, in order per peer. */
WEFT_API int weft_send(weft_comm_t comm, const void *data, size_t count, weft_dtype_t dtype,
                       int peer);
WEFT_API int weft_recv(weft_comm_t comm, void *data, size_t count, weft_dtype_t dtype, int peer);
WEFT_API int weft_barrier(weft_comm_t comm);

/* The same ops, started: *request completes them (weft_test, weft_wait). The buffers must stay
 * valid and untouched until then. */
WEFT_API int weft_iallreduce(weft_comm_t comm, const void *send, void *recv, size_t count,
                             weft_dtype_t dtype, weft_op_t op, weft_request_t *request);
WEFT_API int weft_ibroadcast(weft_comm_t comm, void *data, size_t count, weft_dtype_t dtype,
                             int root, weft_request_t *request);
WEFT_API int weft_ireduce(weft_comm_t comm, const void *send, void *recv, size_t count,
                          weft_dtype_t dtype, weft_op_t op, int root, weft_request_t *request);
WEFT_API int weft_iallgather(weft_comm_t comm, const void *send, void *recv, size_t count,
                             weft_dtype_t dtype, weft_request_t *request);
WEFT_API int weft_ireduce_scatter(weft_comm_t comm, const void *send, void *recv, size_t count,
                                  weft_dtype_t dtype, weft_op_t op, weft_request_t *request);
WEFT_API int weft_ialltoall(weft_comm_t comm, const void *send, void *recv, size_t count,
                            weft_dtype_t dtype, weft_request_t *request);
WEFT_API int weft_isend(weft_comm_t comm, const void *data, size_t count, weft_dtype_t dtype,
                        int peer, weft_request_t *request);
WEFT_API int weft_irecv(weft_comm_t comm, void *data, size_t count, weft_dtype_t dtype, int peer,
                        weft_request_t *request);
WEFT_API int weft_ibarrier(weft_comm_t comm, weft_request_t *request);

/* *done = 1 once the op has finished (the request is then freed and its status returned),
 * else 0 (WEFT_SUCCESS; test again or wait). */
WEFT_API int weft_test(weft_request_t request, int *done);
/* Waits for the op, frees the request, and returns its status. */
WEFT_API int weft_wait(weft_request_t request);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_WEFT_H */
