// Bilateral-filter inner loops for the avx512 path (built with its own -m
// flags): the loops of bilateral_kernels.hpp over 16-lane vectors (table
// lookups by 16-lane gathers), falling back to the 8-lane loops and the
// scalar loop for the row's tail. Same operations per lane as every path.
#include <cmath>
#include <cstdint>
#include <immintrin.h>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/avx512_compat.hpp"
#include "common/checked_simd.hpp"
#include "enhance/bilateral.hpp"

namespace medfuse {
namespace avx512 {
#include "enhance/bilateral_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
