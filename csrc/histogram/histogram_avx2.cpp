// Integer-key histogram loops for the avx2 path (built with its own -m flags).
#include <cstdint>

#include "histogram/histogram_internal.hpp"

namespace medfuse {
namespace avx2 {
#include "histogram/histogram_kernels.hpp"

MEDFUSE_HIST_KEY_TYPES(MEDFUSE_HIST_KEYS_PART)
MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_HIST_UNIFORM_PART)
}  // namespace avx2
}  // namespace medfuse
