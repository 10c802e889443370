// Canny inner loops for the avx2 path (built with its own -m flags).
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/border.hpp"
#include "common/large_buffer.hpp"
#include "edges/canny.hpp"

namespace medfuse {
namespace avx2 {
#include "edges/canny_kernels.hpp"
#include "edges/sobel_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
