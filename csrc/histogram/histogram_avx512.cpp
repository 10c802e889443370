// Uniform-bin histogram loop for the avx512 path (built with its own -m flags):
// the branch-free bin arithmetic of histogram_kernels.hpp in 512-bit lanes.
#include <immintrin.h>

#include <cstdint>

#include "common/avx512_compat.hpp"
#include "common/checked_simd.hpp"
#include "histogram/histogram_internal.hpp"

namespace medfuse {
namespace avx512 {
#include "histogram/histogram_kernels.hpp"

namespace hk {
// float64 keys in 8 lanes: the same comparisons and arithmetic as the generic
// uniform_keys (IEEE operations, so the same keys), with the two edge
// look-ups as gathers.
template <>
inline void uniform_keys<double, double, double>(const double* MEDFUSE_RESTRICT x, const std::uint8_t* MEDFUSE_RESTRICT m,
                                                 i64 len, double lo_thr, double hi_thr, double lo_b, double denom,
                                                 const double* MEDFUSE_RESTRICT edges, std::int32_t nbins,
                                                 u32* MEDFUSE_RESTRICT keys) {
    const __m512d vlo = _mm512_set1_pd(lo_thr), vhi = _mm512_set1_pd(hi_thr), vlob = _mm512_set1_pd(lo_b);
    const __m512d vden = _mm512_set1_pd(denom), vdn = _mm512_set1_pd(static_cast<double>(nbins));
    const __m512d vzero = _mm512_setzero_pd(), vtop = _mm512_set1_pd(static_cast<double>(nbins - 1));
    const __m256i one = _mm256_set1_epi32(1), last = _mm256_set1_epi32(nbins - 1), dummy = _mm256_set1_epi32(nbins);
    const __m256i zero_i = _mm256_setzero_si256();
    i64 j = 0;
    for (; j + 8 <= len; j += 8) {
        const __m512d v = _mm512_loadu_pd(x + j);
        __mmask8 ok = _mm512_cmp_pd_mask(v, vlo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v, vhi, _CMP_LE_OQ);
        if (m) {
            const __m128i mb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m + j));
            ok &= static_cast<__mmask8>(_mm_test_epi8_mask(mb, mb));
        }
        const __m512d xb = _mm512_mask_blend_pd(ok, vlob, v);
        const __m512d f = _mm512_mul_pd(_mm512_div_pd(_mm512_sub_pd(xb, vlob), vden), vdn);
        // compat512 (common/avx512_compat.hpp) and the masked gather with every lane
        // set: GCC 12 rejects the plain forms under -Werror.
        const __mmask8 all = static_cast<__mmask8>(0xFF);
        const __m512d fc = compat512::min_pd(compat512::max_pd(f, vzero), vtop);
        __m256i idx = compat512::cvttpd_epi32(fc);
        const __m512d e0 = checked::mask_i32gather_pd<8>(vzero, all, idx, edges);
        const __m512d e1 = checked::mask_i32gather_pd<8>(vzero, all, idx, edges + 1);
        const __mmask8 below = _mm512_cmp_pd_mask(xb, e0, _CMP_LT_OQ);
        const __mmask8 dec = below & _mm256_cmpgt_epi32_mask(idx, zero_i);
        const __mmask8 inc = static_cast<__mmask8>(~below) & _mm256_cmpneq_epi32_mask(idx, last) &
                             _mm512_cmp_pd_mask(xb, e1, _CMP_GE_OQ);
        idx = _mm256_mask_sub_epi32(idx, dec, idx, one);
        idx = _mm256_mask_add_epi32(idx, inc, idx, one);
        idx = _mm256_mask_blend_epi32(ok, dummy, idx);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + j), idx);
    }
    for (; j < len; ++j)
        keys[j] = uniform_key<double, double, double>(x[j], !m || m[j] != 0, lo_thr, hi_thr, lo_b, denom, edges, nbins);
}
}  // namespace hk

MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_HIST_UNIFORM_PART)
}  // namespace avx512
}  // namespace medfuse
