// DeviceAdamW's GPU instantiations (f32 and bf16 models).
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/grad_norm.h"
#include "parallel/cuda_sharded_adamw.h"
#include "parallel/sharded_adamw_impl.h"

namespace weft::parallel {

static_assert(CudaShardedAdamW<float>::kPartials == kernels::cuda::kSquareSumPartials);

template class DeviceAdamW<kernels::cuda::CudaContext, float>;
template class DeviceAdamW<kernels::cuda::CudaContext, __nv_bfloat16>;

}  // namespace weft::parallel
