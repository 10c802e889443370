// conv2d packing and micro-kernel for the avx2 path (built with its own -m flags).
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "common/checked_simd.hpp"
#include "convolve/conv2d.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
