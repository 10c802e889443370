// Attention inner loops for the avx512 path (AVX2 register tiles, EVEX encoding) (built with its own -m flags).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "attention/attention.hpp"
#include "common/checked_simd.hpp"

namespace medfuse {
namespace avx512 {
#include "attention/attention_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
