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
}  // namespace medfuse
