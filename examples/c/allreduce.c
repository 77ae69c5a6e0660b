/* weft from C: every rank adds its rank + 1 into a vector, in place; rank 0 prints the sum.
 *
 *   cmake -S examples/c -B build-c -DCMAKE_PREFIX_PATH=<weft's install prefix> && cmake --build
 * build-c weftrun -n 4 -- build-c/weft-allreduce-example */
#include <stdio.h>
#include <weft/weft.h>

static int check(int status, const char *call) {
  if (status != WEFT_SUCCESS)
    fprintf(stderr, "%s failed: %s: %s\n", call, weft_error_string(status), weft_last_error());
  return status;
}

int main(void) {
  weft_comm_t world;
  if (check(weft_init_from_env(&world), "weft_init_from_env")) return 1;
  int rank, size;
  weft_comm_rank(world, &rank);
  weft_comm_size(world, &size);
  float values[4];
  for (int i = 0; i < 4; i++) values[i] = (float)(rank + 1) * (float)(i + 1);
  if (check(weft_allreduce(world, values, values, 4, WEFT_FLOAT32, WEFT_SUM), "weft_allreduce"))
    return 1;
  /* 1 + 2 + ... + size, times i + 1 */
  if (rank == 0)
    printf("%d ranks: allreduce sum = %g %g %g %g (expected %d x 1 2 3 4)\n", size, values[0],
           values[1], values[2], values[3], size * (size + 1) / 2);
  if (check(weft_comm_destroy(world), "weft_comm_destroy")) return 1;
  return check(weft_finalize(), "weft_finalize") != WEFT_SUCCESS;
}
