// Filter inner loops for the avx512 path (built with its own -m flags; 64-byte vectors).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "convolve/filter.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/filter_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
