#pragma once
// cpu_relax(): the body of a spin-wait loop. On x86 it tells the core that this thread spins, so
// the sibling hyperthread gets the pipeline and leaving the loop costs no misspeculation.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace weft {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace weft
