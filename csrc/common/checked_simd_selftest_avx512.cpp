// Test-only accesses for tests/test_checked_simd.py (see
// checked_simd_selftest.hpp); an empty translation unit outside the
// sanitizer build.
#include "common/checked_simd.hpp"

#if MEDFUSE_CHECKED_SIMD
#include <immintrin.h>

#include <stdexcept>
#include <string>

#include "common/checked_simd_selftest.hpp"

namespace medfuse {
namespace checked {

namespace {

double lane_sum(__m512 v) {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    double s = 0.0;
    for (float x : t) s += x;
    return s;
}

double lane_sum(__m256 v) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    double s = 0.0;
    for (float x : t) s += x;
    return s;
}

double lane_sum(__m256d v) {
    alignas(32) double t[4];
    _mm256_store_pd(t, v);
    return t[0] + t[1] + t[2] + t[3];
}

double lane_sum(__m512d v) {
    alignas(64) double t[8];
    _mm512_store_pd(t, v);
    double s = 0.0;
    for (double x : t) s += x;
    return s;
}

}  // namespace

double selftest(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes, bool checked) {
    const bool pd = op == "mask_i32gather_pd" || op == "broadcast_sd";
    double out = 0.0;
    if (pd) {
        double* buf = new double[static_cast<std::size_t>(n_alloc)]();
        const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(offset)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __mmask8 m = static_cast<__mmask8>(lanes);
        if (op == "mask_i32gather_pd")
            out = lane_sum(checked ? mask_i32gather_pd<8>(_mm512_setzero_pd(), m, idx, buf)
                                   : _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, idx, buf, 8));
        else
            out = lane_sum(checked ? broadcast_sd(buf + offset) : _mm256_broadcast_sd(buf + offset));
        delete[] buf;
        return out;
    }
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
        for (std::int64_t i = 0; i < n_alloc; ++i) out += buf[i];
    } else if (op == "maskz_loadu_ps") {
        out = lane_sum(checked ? maskz_loadu_ps(m, p) : _mm512_maskz_loadu_ps(m, p));
    } else if (op == "mask_i32gather_ps") {
        out = lane_sum(checked ? mask_i32gather_ps<4>(_mm512_setzero_ps(), m, idx, buf)
                               : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, buf, 4));
    } else if (op == "i32gather_ps") {  // AVX2: all 8 lanes
        const __m256i idx8 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(offset)),
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        out = lane_sum(checked ? i32gather_ps<4>(buf, idx8) : _mm256_i32gather_ps(buf, idx8, 4));
    } else if (op == "broadcast_ss") {
        out = lane_sum(checked ? broadcast_ss(p) : _mm256_broadcast_ss(p));
    } else {
        delete[] buf;
        throw std::invalid_argument("selftest: unknown op '" + op + "'");
    }
    delete[] buf;
    return out;
}

}  // namespace checked
}  // namespace medfuse

#endif  // MEDFUSE_CHECKED_SIMD
