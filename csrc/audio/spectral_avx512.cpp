// Spectral inner loops for the avx512 path (built with its own -m flags).
#include <cmath>
#include <cstdint>

#include <immintrin.h>

#include "audio/spectral.hpp"

namespace medfuse {
namespace avx512 {
#include "audio/spectral_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
