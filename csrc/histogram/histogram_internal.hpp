// Per-ISA entry points of the histogram loops (histogram_kernels.hpp).
#pragma once
#include <cstdint>
#include <vector>

#include "histogram/histogram.hpp"

// The instantiated types, listed once: X(T) for the integer-key loop, X(T, B, D)
// (data, bin, denominator) for numpy.histogram's uniform-bin arithmetic. Used
// for the declarations below and, in histogram_kernels.hpp, the definitions.
#define MEDFUSE_HIST_KEY_TYPES(X) X(std::uint8_t) X(std::uint16_t) X(std::int16_t) X(std::int32_t)
#define MEDFUSE_HIST_UNIFORM_TYPES(X) \
    X(double, double, double) X(float, float, float) X(float, float, double) X(float, double, double)

namespace medfuse {
#define MEDFUSE_KP_DECL(T)                                                                                     \
    void keys_part(const T* x, const std::uint8_t* m, i64 b, i64 e, i64 lo, i64 hi, int s, i64 nk, i64* out, \
                   i64 stride, int nsub);
#define MEDFUSE_UP_DECL(T, B, D)                                                                             \
    void uniform_part(const T* x, const std::uint8_t* m, i64 b, i64 e, T lo_thr, T hi_thr, B lo_b, D denom, \
                      const B* edges, i64 nbins, i64* out, std::uint32_t* h, i64 stride, int nsub);
namespace baseline {
MEDFUSE_HIST_KEY_TYPES(MEDFUSE_KP_DECL)
MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_UP_DECL)
}  // namespace baseline
#ifdef MEDFUSE_HAVE_AVX2
namespace avx2 {
MEDFUSE_HIST_KEY_TYPES(MEDFUSE_KP_DECL)
MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_UP_DECL)
}  // namespace avx2
#endif
#ifdef MEDFUSE_HAVE_AVX512
namespace avx512 {
MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_UP_DECL)
}  // namespace avx512
#endif
#undef MEDFUSE_UP_DECL
#undef MEDFUSE_KP_DECL
}  // namespace medfuse
