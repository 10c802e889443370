// Bilateral-filter inner loops for the avx512 path (built with its own -m
// flags): uint8 in 16-pixel vectors, float32 as the AVX2 loops.
#include <cmath>
#include <cstdint>
#include <immintrin.h>

#include "enhance/bilateral.hpp"

namespace medfuse {
namespace avx512 {
#include "enhance/bilateral_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
