// Median-filter inner loops for the avx512 path (built with its own -m flags):
// the same networks as median_avx2.cpp over 512-bit vectors.
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "common/avx512_compat.hpp"
#include "enhance/median.hpp"

namespace medfuse {
namespace avx512 {
#include "enhance/median_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
