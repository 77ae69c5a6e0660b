// GptModel's GPU instantiations (f32 and bf16): the model's body over kernels::cuda.
#include "models/gpt_cuda.h"

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gelu.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/memory.h"
#include "kernels/cuda/residual.h"
#include "kernels/cuda/vocab_parallel.h"
#include "models/gpt_model_impl.h"

namespace weft::models {

template class GptModel<kernels::cuda::CudaContext, float>;
template class GptModel<kernels::cuda::CudaContext, __nv_bfloat16>;

}  // namespace weft::models
