/* weft's C API from C, run on every rank under weftrun: every op, blocking and started, against
 * values computed here; ops on weft_alloc'ed (registered) memory; a split; errors that come back as codes with messages (a bad dtype, a
 * NULL argument, counts that differ between ranks, finalize with a communicator left); then a
 * clean finalize. Prints "rank R: N checks passed" or each failure, and exits non-zero on any. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

static int failures = 0, checks = 0, rank = 0, size = 1;

#define EXPECT(cond, ...)                                            \
  do {                                                               \
    checks++;                                                        \
    if (!(cond)) {                                                   \
      failures++;                                                    \
      fprintf(stderr, "rank %d: %s:%d: ", rank, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                  \
      fprintf(stderr, " (last error: %s)\n", weft_last_error());     \
    }                                                                \
  } while (0)

#define OK(call) EXPECT((call) == WEFT_SUCCESS, "%s", #call)

enum { N = 1000 };

static float value(int r, int i) { return (float)((r + 1) * 10 + i % 7); }

static void collectives(weft_comm_t comm) {
  float send[N], recv[N], all[N * 8];
  /* allreduce, out of place and in place, sum and max */
  for (int i = 0; i < N; i++) send[i] = value(rank, i);
  OK(weft_allreduce(comm, send, recv, N, WEFT_FLOAT32, WEFT_SUM));
  for (int i = 0; i < N; i += 97) {
    float want = 0;
    for (int r = 0; r < size; r++) want += value(r, i);
    EXPECT(recv[i] == want, "allreduce sum [%d] = %g, want %g", i, recv[i], want);
  }
  OK(weft_allreduce(comm, send, send, N, WEFT_FLOAT32, WEFT_MAX));
  EXPECT(send[5] == value(size - 1, 5), "in-place max = %g", send[5]);
  /* int32 average, double product */
  int ints[3] = {rank * 2, 4, -rank * 2};
  OK(weft_allreduce(comm, ints, ints, 3, WEFT_INT32, WEFT_AVG));
  EXPECT(ints[0] == size - 1 && ints[1] == 4 && ints[2] == -(size - 1), "int avg %d %d %d", ints[0],
         ints[1], ints[2]);
  double twos = 2.0;
  OK(weft_allreduce(comm, &twos, &twos, 1, WEFT_FLOAT64, WEFT_PROD));
  EXPECT(twos == ldexp(1.0, size), "double product %g", twos);
  /* broadcast from the last rank */
  for (int i = 0; i < N; i++) send[i] = value(rank, i);
  OK(weft_broadcast(comm, send, N, WEFT_FLOAT32, size - 1));
  EXPECT(send[3] == value(size - 1, 3), "broadcast %g", send[3]);
  /* reduce to rank 0 */
  for (int i = 0; i < N; i++) send[i] = 1.0f;
  OK(weft_reduce(comm, send, rank == 0 ? recv : NULL, N, WEFT_FLOAT32, WEFT_SUM, 0));
  if (rank == 0) EXPECT(recv[N - 1] == (float)size, "reduce %g", recv[N - 1]);
  /* allgather, reduce_scatter, alltoall */
  for (int i = 0; i < N; i++) send[i] = value(rank, i);
  OK(weft_allgather(comm, send, all, N, WEFT_FLOAT32));
  for (int r = 0; r < size; r++) EXPECT(all[r * N + 11] == value(r, 11), "allgather block %d", r);
  for (int i = 0; i < N * size; i++) all[i] = (float)(i / N + rank);
  OK(weft_reduce_scatter(comm, all, recv, N, WEFT_FLOAT32, WEFT_SUM));
  EXPECT(recv[0] == (float)(rank * size + size * (size - 1) / 2), "reduce_scatter %g", recv[0]);
  for (int i = 0; i < N * size; i++) all[i] = (float)(rank * 100 + i / N);
  float swapped[N * 8];
  OK(weft_alltoall(comm, all, swapped, N, WEFT_FLOAT32));
  for (int r = 0; r < size; r++)
    EXPECT(swapped[r * N] == (float)(r * 100 + rank), "alltoall block %d = %g", r, swapped[r * N]);
  /* send/recv around the ring, started, then waited */
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  for (int i = 0; i < N; i++) send[i] = value(rank, i);
  weft_request_t sent, received;
  OK(weft_isend(comm, send, N, WEFT_FLOAT32, next, &sent));
  OK(weft_irecv(comm, recv, N, WEFT_FLOAT32, prev, &received));
  OK(weft_wait(sent));
  OK(weft_wait(received));
  EXPECT(recv[2] == value(prev, 2), "ring receive %g", recv[2]);
  /* a started allreduce, tested until done */
  for (int i = 0; i < N; i++) send[i] = 1.0f;
  weft_request_t request;
  OK(weft_iallreduce(comm, send, recv, N, WEFT_FLOAT32, WEFT_SUM, &request));
  int done = 0, polls = 0, status = WEFT_SUCCESS;
  while (!done && status == WEFT_SUCCESS && polls++ < 10000000) status = weft_test(request, &done);
  EXPECT(status == WEFT_SUCCESS && done && recv[9] == (float)size,
         "tested allreduce: %s, %g after %d polls", weft_error_string(status), recv[9], polls);
  OK(weft_barrier(comm));
}

/* Memory from weft_alloc (registered: over shm, collectives on it run in place, reading the
 * peers' buffers): zeroed, and ops on it give the same sums; weft_free's errors. */
static void registered(weft_comm_t comm) {
  enum { M = 1 << 17 }; /* 512 KiB of floats: above WEFT_DIRECT_BYTES, so in place over shm */
  float *a = NULL, *all = NULL;
  OK(weft_alloc(comm, M * sizeof(float), (void **)&a));
  OK(weft_alloc(comm, (size_t)size * M * sizeof(float), (void **)&all));
  if (a == NULL || all == NULL) return;
  int zeroed = 1;
  for (int i = 0; i < M; i++) zeroed &= a[i] == 0;
  EXPECT(zeroed, "weft_alloc's memory is zeroed");
  for (int i = 0; i < M; i++) a[i] = value(rank, i);
  OK(weft_allreduce(comm, a, a, M, WEFT_FLOAT32, WEFT_SUM));
  int bad = -1;
  for (int i = 0; i < M && bad < 0; i++) {
    float want = 0;
    for (int r = 0; r < size; r++) want += value(r, i);
    if (a[i] != want) bad = i;
  }
  EXPECT(bad < 0, "allreduce on weft_alloc'ed memory: element %d is %g", bad, bad < 0 ? 0 : a[bad]);
  for (int i = 0; i < M; i++) a[i] = value(rank, i);
  OK(weft_allgather(comm, a, all, M, WEFT_FLOAT32));
  bad = -1;
  for (int i = 0; i < size * M && bad < 0; i++)
    if (all[i] != value(i / M, i % M)) bad = i;
  EXPECT(bad < 0, "allgather on weft_alloc'ed memory: element %d is %g", bad,
         bad < 0 ? 0 : all[bad]);
  OK(weft_free(comm, all));
  OK(weft_free(comm, NULL));
  float x = 0;
  EXPECT(weft_free(comm, &x) == WEFT_ERR_INVALID_ARGUMENT, "weft_free of foreign memory");
  EXPECT(strstr(weft_last_error(), "weft_alloc did not return") != NULL, "weft_free says why");
  EXPECT(weft_alloc(comm, 16, NULL) == WEFT_ERR_INVALID_ARGUMENT, "weft_alloc without ptr");
  /* `a` is left for weft_comm_destroy to free */
}

static void errors(weft_comm_t comm) {
  float x = 1;
  /* a dtype that does not exist: a code and a message, no exception, nothing sent */
  int status = weft_allreduce(comm, &x, &x, 1, (weft_dtype_t)42, WEFT_SUM);
  EXPECT(status == WEFT_ERR_INVALID_ARGUMENT, "bad dtype gave %s", weft_error_string(status));
  EXPECT(strstr(weft_last_error(), "unknown weft_dtype_t 42") != NULL, "bad dtype message");
  EXPECT(weft_allreduce(NULL, &x, &x, 1, WEFT_FLOAT32, WEFT_SUM) == WEFT_ERR_INVALID_ARGUMENT,
         "NULL comm");
  EXPECT(
      weft_iallreduce(comm, &x, &x, 1, WEFT_FLOAT32, WEFT_SUM, NULL) == WEFT_ERR_INVALID_ARGUMENT,
      "started op without a request");
  EXPECT(strcmp(weft_error_string(WEFT_ERR_PEER_LOST), "PeerLost") == 0, "error string");
  /* counts that differ between ranks: every rank fails, naming both */
  float v[3] = {1, 2, 3};
  status = weft_allreduce(comm, v, v, rank == 0 ? 3 : 2, WEFT_FLOAT32, WEFT_SUM);
  EXPECT(status == WEFT_ERR_INVALID_ARGUMENT || status == WEFT_ERR_ABORTED,
         "mismatched counts gave %s", weft_error_string(status));
  EXPECT(strstr(weft_last_error(), "x 3") != NULL && strstr(weft_last_error(), "x 2") != NULL,
         "the mismatch names both counts");
  /* finalize with a communicator left */
  EXPECT(weft_finalize() == WEFT_ERR_INVALID_ARGUMENT, "finalize with a live communicator");
  EXPECT(strstr(weft_last_error(), "weft_comm_destroy") != NULL, "finalize says what to do");
}

int main(void) {
  weft_comm_t world;
  if (weft_init_from_env(&world) != WEFT_SUCCESS) {
    fprintf(stderr, "weft_init_from_env: %s\n", weft_last_error());
    return 1;
  }
  OK(weft_comm_rank(world, &rank));
  OK(weft_comm_size(world, &size));
  if (size > 8) return 2; /* the buffers above hold 8 ranks */
  collectives(world);
  registered(world);
  /* a split into even and odd ranks runs the same ops */
  weft_comm_t half;
  OK(weft_comm_split(world, rank % 2, rank, &half));
  int half_rank, half_size, world_rank = rank, world_size = size;
  OK(weft_comm_rank(half, &half_rank));
  OK(weft_comm_size(half, &half_size));
  EXPECT(half_rank == rank / 2 && half_size == (size + 1 - rank % 2) / 2, "split %d of %d",
         half_rank, half_size);
  rank = half_rank;
  size = half_size;
  collectives(half);
  rank = world_rank;
  size = world_size;
  OK(weft_comm_destroy(half));
  errors(world);
  OK(weft_comm_destroy(world));
  OK(weft_finalize());
  printf("rank %d: %d checks passed, %d failed\n", rank, checks - failures, failures);
  return failures != 0;
}
