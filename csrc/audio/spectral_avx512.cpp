// Spectral inner loops for the avx512 path (built with its own -m flags).
#include <cmath>
#include <cstdint>

#include <immintrin.h>

#include "common/avx512_compat.hpp"
#include "audio/spectral.hpp"

namespace medfuse {
namespace avx512 {
#include "audio/spectral_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
