// Test-only accesses through the AVX-512 wrappers, for
// tests/test_checked_simd.py (see checked_simd_selftest.hpp); an empty
// translation unit outside the sanitizer build.
#include "common/checked_simd.hpp"

#if MEDFUSE_CHECKED_SIMD
#include <immintrin.h>

#include <string>

#include "common/checked_simd_selftest.hpp"

namespace medfuse {
namespace checked {

bool selftest_avx512(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes,
                     bool checked, double* out) {
    if (op == "mask_i32gather_pd") {
        double* buf = new double[static_cast<std::size_t>(n_alloc)]();
        const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(offset)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __mmask8 m = static_cast<__mmask8>(lanes);
        *out = lane_sum<double>(checked ? mask_i32gather_pd<8>(_mm512_setzero_pd(), m, idx, buf)
                                        : _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, idx, buf, 8));
        delete[] buf;
        return true;
    }
    if (op != "mask_storeu_ps" && op != "maskz_loadu_ps" && op != "mask_i32gather_ps") return false;
    float* buf = new float[static_cast<std::size_t>(n_alloc)]();
    const __mmask16 m = static_cast<__mmask16>(lanes);
    float* p = buf + offset;  // may lie before/after the buffer: only enabled lanes are accessed
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(offset)),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    if (op == "mask_storeu_ps") {
        const __m512 v = _mm512_set1_ps(1.f);
        if (checked)
            mask_storeu_ps(p, m, v);
        else
            _mm512_mask_storeu_ps(p, m, v);
        double s = 0.0;
        for (std::int64_t i = 0; i < n_alloc; ++i) s += buf[i];
        *out = s;
    } else if (op == "maskz_loadu_ps") {
        *out = lane_sum<float>(checked ? maskz_loadu_ps(m, p) : _mm512_maskz_loadu_ps(m, p));
    } else {
        *out = lane_sum<float>(checked ? mask_i32gather_ps<4>(_mm512_setzero_ps(), m, idx, buf)
                                       : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, buf, 4));
    }
    delete[] buf;
    return true;
}

}  // namespace checked
}  // namespace medfuse

#endif  // MEDFUSE_CHECKED_SIMD
