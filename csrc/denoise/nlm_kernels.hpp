// Non-local means inner loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by nlm.cpp / nlm_avx2.cpp / nlm_avx512.cpp; the
// .cpp includes <algorithm>, <cstdint>, <vector> and, for the SIMD paths,
// <immintrin.h> first).
//
// Plain loops over contiguous rows that the compiler vectorizes with the
// unit's -m flags; every lane does the same IEEE operations in the same
// order (no FMA: the build passes -ffp-contract=off), so the paths agree
// bit for bit.

namespace {

// Squared differences and patch sums in float32. For uint8 they are integers
// below 2^24 (patch side <= 15), hence exact in any order.
template <class T, class D = float>
void nlm_band(const NlmJob& job, std::int64_t y0, std::int64_t y1, T* out) {
    const T* pad = static_cast<const T*>(job.pad);
    const std::int64_t w = job.w, ps = job.pstride;
    const int pr = job.pr, sr = job.sr, R = pr + sr;
    const std::int64_t nb = y1 - y0;  // band rows
    const std::int64_t w2 = w + 2 * pr;      // columns whose patch sums are needed
    const std::int64_t rows = nb + 2 * pr;   // rows of squared differences
    std::vector<D> d2(static_cast<std::size_t>(rows * w2));
    std::vector<D> vs(static_cast<std::size_t>(w2));
    std::vector<float> accw(static_cast<std::size_t>(nb * w), 0.f), accv(static_cast<std::size_t>(nb * w), 0.f);
    std::vector<float> wt(static_cast<std::size_t>(w));
    std::vector<D> hsum(static_cast<std::size_t>(w));
    const bool exact = std::is_same<T, std::uint8_t>::value;
    const float* lut = job.lut;
    const float scale = job.scale, fbins = static_cast<float>(job.bins);
    for (int dy = -sr; dy <= sr; ++dy) {
        for (int dx = -sr; dx <= sr; ++dx) {
            // Squared differences for rows y0-pr .. y1+pr-1, columns -pr .. w+pr-1.
            for (std::int64_t r = 0; r < rows; ++r) {
                const T* a = pad + (y0 - pr + r + R) * ps + (R - pr);
                const T* b = a + dy * ps + dx;
                D* d = d2.data() + r * w2;
                for (std::int64_t x = 0; x < w2; ++x) {
                    const D t = static_cast<D>(a[x]) - static_cast<D>(b[x]);
                    d[x] = t * t;
                }
            }
            for (std::int64_t y = 0; y < nb; ++y) {
                // Vertical patch sums, top to bottom (uint8: a running sum;
                // every value is an integer below 2^24, so exact in float).
                const D* d = d2.data() + y * w2;
                D* vp = vs.data();
                if (exact && y > 0) {
                    const D* add = d + 2 * pr * w2;
                    const D* sub = d - w2;
                    for (std::int64_t x = 0; x < w2; ++x) vp[x] = vp[x] + add[x] - sub[x];
                } else {
                    for (std::int64_t x = 0; x < w2; ++x) vp[x] = d[x];
                    for (int k = 1; k <= 2 * pr; ++k) {
                        const D* dk = d + k * w2;
                        for (std::int64_t x = 0; x < w2; ++x) vp[x] += dk[x];
                    }
                }
                // Horizontal sums (left to right) -> weights.
                const D* v = vs.data();
                D* hs = hsum.data();
                for (std::int64_t x = 0; x < w; ++x) hs[x] = v[x];
                for (int k = 1; k <= 2 * pr; ++k) {
                    const D* vk = v + k;
                    for (std::int64_t x = 0; x < w; ++x) hs[x] += vk[x];
                }
                float* wp = wt.data();
                std::int64_t x0 = 0;
#if defined(__AVX512F__)
                {  // the compiler does not vectorize the table lookup itself
                    const __m512 vs16 = _mm512_set1_ps(scale), vb16 = _mm512_set1_ps(fbins);
                    for (; x0 + 16 <= w; x0 += 16) {
                        // Masked forms: GCC 12 warns about the undefined sources of the plain ones.
                        const __mmask16 all = 0xFFFF;
                        const __m512 t = _mm512_maskz_min_ps(all, _mm512_mul_ps(_mm512_loadu_ps(hs + x0), vs16), vb16);
                        const __m512i idx = _mm512_maskz_cvttps_epi32(all, t);
                        _mm512_storeu_ps(wp + x0, checked::mask_i32gather_ps<4>(_mm512_setzero_ps(), all, idx, lut));
                    }
                }
#elif defined(__AVX2__)
                {
                    const __m256 vs8 = _mm256_set1_ps(scale), vb8 = _mm256_set1_ps(fbins);
                    for (; x0 + 8 <= w; x0 += 8) {
                        const __m256 t = _mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(hs + x0), vs8), vb8);
                        _mm256_storeu_ps(wp + x0, checked::i32gather_ps<4>(lut, _mm256_cvttps_epi32(t)));
                    }
                }
#endif
                for (std::int64_t x = x0; x < w; ++x) {
                    float t = static_cast<float>(hs[x]) * scale;
                    t = t < fbins ? t : fbins;
                    wp[x] = lut[static_cast<int>(t)];
                }
                const T* q = pad + (y0 + y + R + dy) * ps + R + dx;
                float* aw = accw.data() + y * w;
                float* av = accv.data() + y * w;
                for (std::int64_t x = 0; x < w; ++x) {
                    const float c = wt[static_cast<std::size_t>(x)];
                    aw[x] = aw[x] + c;
                    av[x] = av[x] + c * static_cast<float>(q[x]);
                }
            }
        }
    }
    for (std::int64_t y = 0; y < nb; ++y) {
        T* o = out + (y0 + y) * w;
        const float* aw = accw.data() + y * w;
        const float* av = accv.data() + y * w;
        for (std::int64_t x = 0; x < w; ++x) {
            const float r = av[x] / aw[x];
            if constexpr (std::is_same<T, float>::value) {
                o[x] = r;
            } else {
                const float n = __builtin_nearbyintf(r);
                o[x] = static_cast<T>(n < 0.f ? 0.f : (n > 255.f ? 255.f : n));
            }
        }
    }
}

}  // namespace

void nlm_u8_band(const NlmJob& job, std::int64_t y0, std::int64_t y1) {
    nlm_band<std::uint8_t>(job, y0, y1, static_cast<std::uint8_t*>(job.out));
}

void nlm_f32_band(const NlmJob& job, std::int64_t y0, std::int64_t y1) {
    nlm_band<float>(job, y0, y1, static_cast<float*>(job.out));
}
