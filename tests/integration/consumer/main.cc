// A user's program: one allreduce through weft's public API, its result checked. Run alone it is
// a group of one; under weftrun, every rank contributes rank + 1.
#include <cstdio>

#include "comm/communicator.h"
#include "runtime/buffer.h"

int main() {
  std::unique_ptr<weft::comm::Communicator> comm = weft::comm::init_from_env();
  const size_t count = 1000;
  weft::Buffer buffer(count * sizeof(float));
  float* values = buffer.as<float>();
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>(comm->rank() + 1);
  comm->allreduce(buffer.view(weft::DType::f32, count), weft::ReduceOp::sum).wait();

  const float expected = comm->size() * (comm->size() + 1) / 2.0f;
  for (size_t i = 0; i < count; ++i) {
    if (values[i] != expected) {
      std::fprintf(stderr, "consumer: element %zu is %g, expected %g\n", i, values[i], expected);
      return 1;
    }
  }
  std::printf("consumer: rank %d of %d: allreduce over %s gave %g\n", comm->rank(), comm->size(),
              comm->backend(), expected);
  return 0;
}
