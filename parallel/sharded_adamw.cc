// DeviceAdamW's CPU instantiation (ShardedAdamW).
#include "kernels/adamw.h"
#include "kernels/grad_norm.h"
#include "parallel/sharded_adamw_impl.h"

namespace weft::parallel {

static_assert(ShardedAdamW::kPartials == kernels::cpu::kSquareSumPartials);
template class DeviceAdamW<kernels::cpu::CpuContext, float>;

}  // namespace weft::parallel
