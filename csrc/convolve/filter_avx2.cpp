// Filter inner loops for the avx2 path (built with -mavx2 -mfma).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "convolve/filter.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/filter_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
