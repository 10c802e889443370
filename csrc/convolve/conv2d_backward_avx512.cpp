// conv2d gradient loops for the avx512 path (built with its own -m flags).
#include <cstdint>

#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_backward_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
