// Integer-key histogram loops for the avx2 path (built with its own -m flags).
#include <cstdint>

#include "histogram/histogram_internal.hpp"

namespace medfuse {
namespace avx2 {
#include "histogram/histogram_kernels.hpp"

#define MEDFUSE_KP(T)                                                                                          \
    void keys_part(const T* x, const std::uint8_t* m, i64 b, i64 e, i64 lo, i64 hi, int s, i64 nk, i64* out, \
                   std::uint32_t* h, i64 stride, int nsub) {                                                  \
        hk::keys_part<T>(x, m, b, e, lo, hi, s, nk, out, h, stride, nsub);                                    \
    }
MEDFUSE_KP(std::uint8_t)
MEDFUSE_KP(std::uint16_t)
MEDFUSE_KP(std::int16_t)
MEDFUSE_KP(std::int32_t)
#undef MEDFUSE_KP
}  // namespace avx2
}  // namespace medfuse
