// Median-filter inner loops for the avx2 path (built with its own -m flags).
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "common/avx512_compat.hpp"
#include "enhance/median.hpp"

namespace medfuse {
namespace avx2 {
#include "enhance/median_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
