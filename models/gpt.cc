// GptModel's one CPU instantiation: the model's body over kernels::cpu.
#include "models/gpt.h"

#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/memory.h"
#include "kernels/residual.h"
#include "kernels/vocab_parallel.h"
#include "models/gpt_model_impl.h"

namespace weft::models {

template class GptModel<kernels::cpu::CpuContext, float>;

}  // namespace weft::models
