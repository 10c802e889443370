// Canny inner loops for the avx512 path (built with its own -m flags).
#include <cstdint>

#include "edges/canny.hpp"

namespace medfuse {
namespace avx512 {
#include "edges/canny_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
