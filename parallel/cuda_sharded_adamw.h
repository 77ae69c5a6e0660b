#pragma once
// The GPU optimizer: DeviceAdamW (parallel/sharded_adamw.h) over kernels::cuda, built only
// with CUDA. The model's parameters and gradients are T (float, or __nv_bfloat16, whose
// parameters the update rewrites from the f32 master weights in the same pass).
#include <cuda_bf16.h>

#include "kernels/cuda/context.h"
#include "kernels/cuda/memory.h"
#include "parallel/sharded_adamw.h"

namespace weft::parallel {

template <typename T>
using CudaShardedAdamW = DeviceAdamW<kernels::cuda::CudaContext, T>;
extern template class DeviceAdamW<kernels::cuda::CudaContext, float>;
extern template class DeviceAdamW<kernels::cuda::CudaContext, __nv_bfloat16>;

}  // namespace weft::parallel
