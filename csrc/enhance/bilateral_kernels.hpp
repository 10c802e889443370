// Bilateral-filter inner loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by bilateral.cpp / bilateral_avx2.cpp; no headers
// here: the .cpp includes <cmath>, <cstdint> and <immintrin.h> first).
//
// Each output pixel sums over the window offsets in the job's order, in
// float32, multiply then add; the AVX2 path runs 8 pixels per vector with the
// same operations per lane, so both paths agree bit for bit.

namespace {

// The float32 colour weight at table position alpha = |I(q) - I(p)| * scale,
// clamped to amax = bins + 0.5 (NaN -> amax) so the index stays inside the
// table whatever the input: in range, alpha <= bins * (1 + a few ulp) and the
// clamp changes nothing. Every loop (scalar and vector) goes through these.
inline float lut_weight_f32(const float* lut, float diff, float scale, float amax) {
    float alpha = diff * scale;
    alpha = alpha < amax ? alpha : amax;
    const int idx = static_cast<int>(__builtin_floorf(alpha));
    alpha -= static_cast<float>(idx);
    return lut[idx] + alpha * (lut[idx + 1] - lut[idx]);
}

#if defined(__AVX2__)
// 8 lanes of lut_weight_f32, same operations per lane. _mm256_min_ps returns
// its second operand when either is NaN, so NaN -> amax as in the scalar form.
inline __m256 lut_weight_f32x8(const float* lut, __m256 v, __m256 v0, __m256 scale, __m256 amax) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 alpha = _mm256_min_ps(_mm256_mul_ps(_mm256_and_ps(_mm256_sub_ps(v, v0), absmask), scale), amax);
    const __m256 fl = _mm256_floor_ps(alpha);
    const __m256i idx = _mm256_cvttps_epi32(fl);
    alpha = _mm256_sub_ps(alpha, fl);
    const __m256 l0 = checked::i32gather_ps<4>(lut, idx);
    const __m256 l1 = checked::i32gather_ps<4>(lut + 1, idx);
    return _mm256_add_ps(l0, _mm256_mul_ps(alpha, _mm256_sub_ps(l1, l0)));
}
#endif

}  // namespace

void bilateral_u8_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1) {
    const auto* pad = static_cast<const std::uint8_t*>(job.pad);
    auto* out = static_cast<std::uint8_t*>(job.out);
    const std::int64_t w = job.w;
    for (std::int64_t y = y0; y < y1; ++y) {
        const std::uint8_t* c = pad + (y + job.radius) * job.pstride + job.radius;
        std::uint8_t* o = out + y * w;
        std::int64_t x = 0;
#if defined(__AVX2__)
        // Two vectors of 8 pixels per pass: independent sums keep more
        // gathers in flight (each lane's operations are unchanged).
        for (; x + 16 <= w; x += 16) {
            const __m256i va0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + x)));
            const __m256i vb0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + x + 8)));
            __m256 suma = _mm256_setzero_ps(), wsuma = _mm256_setzero_ps();
            __m256 sumb = _mm256_setzero_ps(), wsumb = _mm256_setzero_ps();
            for (int k = 0; k < job.nk; ++k) {
                const std::uint8_t* q = c + x + job.ofs[k];
                const __m256 sw = _mm256_set1_ps(job.space[k]);
                const __m256i va = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
                const __m256i vb = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8)));
                const __m256 wa = _mm256_mul_ps(sw, checked::i32gather_ps<4>(job.lut, _mm256_abs_epi32(_mm256_sub_epi32(va, va0))));
                const __m256 wb = _mm256_mul_ps(sw, checked::i32gather_ps<4>(job.lut, _mm256_abs_epi32(_mm256_sub_epi32(vb, vb0))));
                suma = _mm256_add_ps(suma, _mm256_mul_ps(_mm256_cvtepi32_ps(va), wa));
                wsuma = _mm256_add_ps(wsuma, wa);
                sumb = _mm256_add_ps(sumb, _mm256_mul_ps(_mm256_cvtepi32_ps(vb), wb));
                wsumb = _mm256_add_ps(wsumb, wb);
            }
            const __m256i ra = _mm256_cvtps_epi32(_mm256_div_ps(suma, wsuma));
            const __m256i rb = _mm256_cvtps_epi32(_mm256_div_ps(sumb, wsumb));
            const __m128i a16 = _mm_packs_epi32(_mm256_castsi256_si128(ra), _mm256_extracti128_si256(ra, 1));
            const __m128i b16 = _mm_packs_epi32(_mm256_castsi256_si128(rb), _mm256_extracti128_si256(rb, 1));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o + x), _mm_packus_epi16(a16, b16));
        }
        for (; x + 8 <= w; x += 8) {
            const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + x)));
            __m256 sum = _mm256_setzero_ps(), wsum = _mm256_setzero_ps();
            for (int k = 0; k < job.nk; ++k) {
                const __m256i v = _mm256_cvtepu8_epi32(
                    _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + x + job.ofs[k])));
                const __m256i d = _mm256_abs_epi32(_mm256_sub_epi32(v, v0));
                const __m256 wt = _mm256_mul_ps(_mm256_set1_ps(job.space[k]), checked::i32gather_ps<4>(job.lut, d));
                sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_cvtepi32_ps(v), wt));
                wsum = _mm256_add_ps(wsum, wt);
            }
            const __m256i r = _mm256_cvtps_epi32(_mm256_div_ps(sum, wsum));  // round half to even
            const __m128i r16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(o + x), _mm_packus_epi16(r16, r16));
        }
#endif
        for (; x < w; ++x) {
            const int v0 = c[x];
            float sum = 0.f, wsum = 0.f;
            for (int k = 0; k < job.nk; ++k) {
                const int v = c[x + job.ofs[k]];
                const int d = v > v0 ? v - v0 : v0 - v;
                const float wt = job.space[k] * job.lut[d];
                sum = sum + static_cast<float>(v) * wt;
                wsum = wsum + wt;
            }
            const float r = __builtin_nearbyintf(sum / wsum);
            o[x] = static_cast<std::uint8_t>(r < 0.f ? 0.f : (r > 255.f ? 255.f : r));
        }
    }
}

void bilateral_f32_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1) {
    const auto* pad = static_cast<const float*>(job.pad);
    auto* out = static_cast<float*>(job.out);
    const std::int64_t w = job.w;
    for (std::int64_t y = y0; y < y1; ++y) {
        const float* c = pad + (y + job.radius) * job.pstride + job.radius;
        float* o = out + y * w;
        std::int64_t x = 0;
#if defined(__AVX2__)
        const __m256 scale = _mm256_set1_ps(job.scale), amax = _mm256_set1_ps(job.alpha_max);
        auto weight = [&](__m256 v, __m256 v0, __m256 sw) {
            return _mm256_mul_ps(sw, lut_weight_f32x8(job.lut, v, v0, scale, amax));
        };
        for (; x + 16 <= w; x += 16) {  // two independent vectors per pass
            const __m256 va0 = _mm256_loadu_ps(c + x), vb0 = _mm256_loadu_ps(c + x + 8);
            __m256 suma = _mm256_setzero_ps(), wsuma = _mm256_setzero_ps();
            __m256 sumb = _mm256_setzero_ps(), wsumb = _mm256_setzero_ps();
            for (int k = 0; k < job.nk; ++k) {
                const float* q = c + x + job.ofs[k];
                const __m256 sw = _mm256_set1_ps(job.space[k]);
                const __m256 va = _mm256_loadu_ps(q), vb = _mm256_loadu_ps(q + 8);
                const __m256 wa = weight(va, va0, sw), wb = weight(vb, vb0, sw);
                suma = _mm256_add_ps(suma, _mm256_mul_ps(va, wa));
                wsuma = _mm256_add_ps(wsuma, wa);
                sumb = _mm256_add_ps(sumb, _mm256_mul_ps(vb, wb));
                wsumb = _mm256_add_ps(wsumb, wb);
            }
            _mm256_storeu_ps(o + x, _mm256_div_ps(suma, wsuma));
            _mm256_storeu_ps(o + x + 8, _mm256_div_ps(sumb, wsumb));
        }
        for (; x + 8 <= w; x += 8) {
            const __m256 v0 = _mm256_loadu_ps(c + x);
            __m256 sum = _mm256_setzero_ps(), wsum = _mm256_setzero_ps();
            for (int k = 0; k < job.nk; ++k) {
                const __m256 v = _mm256_loadu_ps(c + x + job.ofs[k]);
                const __m256 wt = weight(v, v0, _mm256_set1_ps(job.space[k]));
                sum = _mm256_add_ps(sum, _mm256_mul_ps(v, wt));
                wsum = _mm256_add_ps(wsum, wt);
            }
            _mm256_storeu_ps(o + x, _mm256_div_ps(sum, wsum));
        }
#endif
        for (; x < w; ++x) {
            const float v0 = c[x];
            float sum = 0.f, wsum = 0.f;
            for (int k = 0; k < job.nk; ++k) {
                const float v = c[x + job.ofs[k]];
                const float wt = job.space[k] * lut_weight_f32(job.lut, __builtin_fabsf(v - v0), job.scale, job.alpha_max);
                sum = sum + v * wt;
                wsum = wsum + wt;
            }
            o[x] = sum / wsum;
        }
    }
}
