// conv2d gradient loops for the avx2 path (built with its own -m flags),
// including the AVX2 channels-last grad weight (conv2d_backward_kernels.hpp).
#include <cstdint>
#include <immintrin.h>

#include "common/checked_simd.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_backward_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
