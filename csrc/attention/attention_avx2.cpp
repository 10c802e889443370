// Attention inner loops for the avx2 path (built with its own -m flags).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "attention/attention.hpp"
#include "common/checked_simd.hpp"

namespace medfuse {
namespace avx2 {
#include "attention/attention_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
