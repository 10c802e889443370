// Canny inner loops for the avx512 path (built with its own -m flags).
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/border.hpp"
#include "common/large_buffer.hpp"
#include "edges/canny.hpp"

namespace medfuse {
namespace avx512 {
#include "edges/canny_kernels.hpp"
#include "edges/sobel_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
