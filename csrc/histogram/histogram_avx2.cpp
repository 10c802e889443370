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

#define MEDFUSE_UP(T, B, D)                                                                                     \
    void uniform_part(const T* x, const std::uint8_t* m, i64 b, i64 e, T lo_thr, T hi_thr, B lo_b, D denom,    \
                      const B* edges, i64 nbins, i64* out, std::uint32_t* h, i64 stride, int nsub) {          \
        hk::uniform_part<T, B, D>(x, m, b, e, lo_thr, hi_thr, lo_b, denom, edges, nbins, out, h, stride, nsub); \
    }
MEDFUSE_UP(double, double, double)
MEDFUSE_UP(float, float, float)
MEDFUSE_UP(float, float, double)
MEDFUSE_UP(float, double, double)
#undef MEDFUSE_UP
}  // namespace avx2
}  // namespace medfuse
