#pragma once
// The GPT model on the CPU: GptModel (models/gpt_model.h) over kernels::cpu, in f32.
#include "kernels/context.h"
#include "models/gpt_model.h"
#include "runtime/buffer.h"

namespace weft::models {

template <>
struct DeviceMemory<kernels::cpu::CpuContext> {
  using type = Buffer;
  static Buffer allocate(const kernels::cpu::CpuContext&, size_t bytes) { return Buffer(bytes); }
};

using Gpt = GptModel<kernels::cpu::CpuContext, float>;
extern template class GptModel<kernels::cpu::CpuContext, float>;

}  // namespace weft::models
