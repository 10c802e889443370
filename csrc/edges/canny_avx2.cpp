// Canny inner loops for the avx2 path (built with its own -m flags).
#include <cstdint>

#include "edges/canny.hpp"

namespace medfuse {
namespace avx2 {
#include "edges/canny_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
