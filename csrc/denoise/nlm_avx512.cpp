// Non-local means inner loops for the avx512 path (built with its own -m flags).
#include <algorithm>
#include <cstdint>
#include <immintrin.h>
#include <type_traits>
#include <vector>

#include "common/avx512_compat.hpp"
#include "common/checked_simd.hpp"
#include "denoise/nlm.hpp"

namespace medfuse {
namespace avx512 {
#include "denoise/nlm_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
