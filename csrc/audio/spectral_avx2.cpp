// Spectral inner loops for the avx2 path (built with its own -m flags).
#include <cmath>
#include <cstdint>

#include <immintrin.h>

#include "common/avx512_compat.hpp"
#include "audio/spectral.hpp"

namespace medfuse {
namespace avx2 {
#include "audio/spectral_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
