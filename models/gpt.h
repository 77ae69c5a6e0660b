#pragma once
// The GPT model on the CPU: GptModel (models/gpt_model.h) over kernels::cpu, in f32.
#include "kernels/context.h"
#include "kernels/memory.h"
#include "models/gpt_model.h"

namespace weft::models {

using Gpt = GptModel<kernels::cpu::CpuContext, float>;
extern template class GptModel<kernels::cpu::CpuContext, float>;

}  // namespace weft::models
