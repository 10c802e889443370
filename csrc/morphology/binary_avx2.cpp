// Binary morphology row loops for the avx2 path (built with its own -m flags).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "morphology/binary.hpp"

namespace medfuse {
namespace avx2 {
#include "morphology/binary_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
