// conv2d gradient loops for the avx512 path (built with its own -m flags),
// and the avx512 float32 grad weight without an im2col matrix
// (conv2d_gw_vec_kernels.hpp on GwVec below; see conv2d_backward.hpp).
#include <algorithm>
#include <cstdint>
#include <immintrin.h>
#include <vector>

#include "common/checked_simd.hpp"
#include "common/simd_transpose.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_backward_kernels.hpp"

namespace {

using i64 = std::int64_t;

// The avx512 vector operations of conv2d_gw_vec_kernels.hpp: 16 lanes (zmm),
// 8 output channels per register tile. A tap's lanes inside the row: one
// bit mask per entry (32 bits for stride 2, where output pixel l is input
// lane 2 l), every load masked (zero-masking: lanes off read nothing).
struct GwVec {
    using V = __m512;
    static constexpr int L = 16, OB = conv2d_bwd_detail::kGwOc;
    struct Cols {
        std::vector<i64> off;
        std::vector<std::uint32_t> mask;
    };
    struct GyTail {};
    static V loadu(const float* p) { return _mm512_loadu_ps(p); }
    static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static void resize(Cols& c, i64 entries, int /*sw*/) {
        c.off.resize(static_cast<std::size_t>(entries));
        c.mask.resize(static_cast<std::size_t>(entries));
    }
    static void set(Cols& c, std::size_t e, i64 base, i64 lo, i64 hi, int /*sw*/) {
        c.off[e] = base;
        c.mask[e] = hi > lo ? static_cast<std::uint32_t>(((std::uint64_t(1) << (hi - lo)) - 1u) << lo) : 0u;
    }
    template <int SW>
    static V load_x(const Cols& cols, std::size_t e, const float* row, bool rin) {
        const std::uint32_t m = cols.mask[e] & (rin ? ~std::uint32_t(0) : 0u);
        const float* p = row + cols.off[e];
        if (SW == 1) return checked::maskz_loadu_ps(static_cast<__mmask16>(m), p);
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const __m512 a = checked::maskz_loadu_ps(static_cast<__mmask16>(m & 0xffffu), p);
        const __m512 b = checked::maskz_loadu_ps(static_cast<__mmask16>(m >> 16), p + 16);
        return _mm512_permutex2var_ps(a, even, b);
    }
    static GyTail tail(i64 /*WO*/) { return {}; }
    static V load_gy(const GyTail& /*t*/, i64 v, i64 WO, const float* p) {
        const int npix = static_cast<int>(WO - 16 * v < 16 ? WO - 16 * v : 16);
        return checked::maskz_loadu_ps(static_cast<__mmask16>((1u << npix) - 1u), p);
    }
};

}  // namespace

#include "convolve/conv2d_gw_vec_kernels.hpp"

}  // namespace avx512
}  // namespace medfuse
