#pragma once
// What the cut-model trainer (train/parallel_trainer_impl.h) derives from its options and
// device before it builds anything: the mesh's shape, the pipeline schedule, each chunk's stage
// plan, and where its flat parameters and gradients live.
#include <cstddef>

#include "comm/communicator.h"
#include "comm/registered_buffer.h"
#include "kernels/context.h"
#include "kernels/memory.h"
#include "models/gpt_model.h"
#include "parallel/mesh.h"
#include "parallel/schedule.h"
#include "train/train_options.h"

namespace weft::train::detail {

// Memory the data-parallel communicator reduces and gathers in. On the CPU it comes from the
// communicator: registered where the dp group's local ranks can map each other's (shm), so the
// buckets' reductions run in place on the peers' buffers instead of through FIFOs. On a GPU,
// from the context (NCCL reads device memory directly).
inline comm::RegisteredBuffer collective_memory(const kernels::cpu::CpuContext&,
                                                comm::Communicator& comm, size_t bytes) {
  return comm.alloc(bytes);
}
template <class Ctx>
auto collective_memory(const Ctx& ctx, comm::Communicator&, size_t bytes) {
  return allocate(ctx, bytes);
}

// The kernels' synchronize(ctx), called from outside the class whose member hides it.
template <class Ctx>
void wait_for(const Ctx& ctx) {
  synchronize(ctx);
}

inline parallel::MeshShape mesh_shape(const TrainOptions& o) {
  parallel::MeshShape m;
  m.dp = o.dp;
  m.tp = o.tp;
  m.pp = o.pp;
  return m;
}

inline parallel::Schedule schedule_of(const TrainOptions& o) {
  return parallel::make_schedule(o.pp, o.accumulation(), parallel::parse_schedule_kind(o.schedule),
                                 o.virtual_stages);
}

inline models::StagePlan plan_of(const TrainOptions& o, const parallel::DeviceMesh& mesh,
                                 int chunk) {
  return models::StagePlan::of(o.model, chunk * o.pp + mesh.coords().pp, o.pp * o.virtual_stages,
                               mesh.coords().tp, o.tp);
}

}  // namespace weft::train::detail
