// Binary morphology row loops for the avx512 path (built with its own -m flags).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "morphology/binary.hpp"

namespace medfuse {
namespace avx512 {
#include "morphology/binary_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
