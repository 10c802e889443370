// Bilateral-filter inner loops for the avx2 path (built with its own -m flags).
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>
#include <immintrin.h>

#include "common/checked_simd.hpp"
#include "enhance/bilateral.hpp"

namespace medfuse {
namespace avx2 {
#include "enhance/bilateral_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
