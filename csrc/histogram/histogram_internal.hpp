// Per-ISA entry points of the integer-key histogram loop (histogram_kernels.hpp).
#pragma once
#include <cstdint>

#include "histogram/histogram.hpp"

namespace medfuse {
#define MEDFUSE_KP_DECL(T)                                                                                     \
    void keys_part(const T* x, const std::uint8_t* m, i64 b, i64 e, i64 lo, i64 hi, int s, i64 nk, i64* out, \
                   std::uint32_t* h, i64 stride, int nsub);
namespace baseline {
MEDFUSE_KP_DECL(std::uint8_t)
MEDFUSE_KP_DECL(std::uint16_t)
MEDFUSE_KP_DECL(std::int16_t)
MEDFUSE_KP_DECL(std::int32_t)
}  // namespace baseline
#ifdef MEDFUSE_HAVE_AVX2
namespace avx2 {
MEDFUSE_KP_DECL(std::uint8_t)
MEDFUSE_KP_DECL(std::uint16_t)
MEDFUSE_KP_DECL(std::int16_t)
MEDFUSE_KP_DECL(std::int32_t)
}  // namespace avx2
#endif
#undef MEDFUSE_KP_DECL

// Uniform-bin counting (numpy.histogram's arithmetic), per (data, bin, denominator) type.
#define MEDFUSE_UP_DECL(T, B, D)                                                                             \
    void uniform_part(const T* x, const std::uint8_t* m, i64 b, i64 e, T lo_thr, T hi_thr, B lo_b, D denom, \
                      const B* edges, i64 nbins, i64* out, std::uint32_t* h, i64 stride, int nsub);
#define MEDFUSE_UP_DECL_ALL                \
    MEDFUSE_UP_DECL(double, double, double) \
    MEDFUSE_UP_DECL(float, float, float)    \
    MEDFUSE_UP_DECL(float, float, double)   \
    MEDFUSE_UP_DECL(float, double, double)
namespace baseline {
MEDFUSE_UP_DECL_ALL
}  // namespace baseline
#ifdef MEDFUSE_HAVE_AVX2
namespace avx2 {
MEDFUSE_UP_DECL_ALL
}  // namespace avx2
#endif
#ifdef MEDFUSE_HAVE_AVX512
namespace avx512 {
MEDFUSE_UP_DECL_ALL
}  // namespace avx512
#endif
#undef MEDFUSE_UP_DECL_ALL
#undef MEDFUSE_UP_DECL
}  // namespace medfuse
