// Non-local means inner loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by nlm.cpp / nlm_avx2.cpp / nlm_avx512.cpp; the
// .cpp includes <algorithm>, <cstdint>, <vector> and, for the SIMD paths,
// <immintrin.h> first).
//
// Plain loops over contiguous rows that the compiler vectorizes with the
// unit's -m flags; every lane does the same IEEE operations in the same
// order (no FMA: the build passes -ffp-contract=off), so the paths agree
// bit for bit. Symmetric offsets and the accumulation order: nlm.hpp.

namespace {

// wt[x] = lut[min(int(ssd[x] * scale), bins)] for x in [0, n).
inline void nlm_weights(const float* __restrict ssd, std::int64_t n, const float* __restrict lut, float scale,
                        float fbins, float* __restrict wt) {
    std::int64_t x0 = 0;
#if defined(__AVX512F__)
    {  // the compiler does not vectorize the table lookup itself
        const __m512 vs16 = _mm512_set1_ps(scale), vb16 = _mm512_set1_ps(fbins);
        for (; x0 + 16 <= n; x0 += 16) {
            // compat512 (common/avx512_compat.hpp) and the masked gather with
            // every lane set: GCC 12 rejects the plain forms under -Werror.
            const __mmask16 all = 0xFFFF;
            const __m512 t = compat512::min_ps(_mm512_mul_ps(_mm512_loadu_ps(ssd + x0), vs16), vb16);
            const __m512i idx = compat512::cvttps_epi32(t);
            _mm512_storeu_ps(wt + x0, checked::mask_i32gather_ps<4>(_mm512_setzero_ps(), all, idx, lut));
        }
    }
#elif defined(__AVX2__)
    {
        const __m256 vs8 = _mm256_set1_ps(scale), vb8 = _mm256_set1_ps(fbins);
        for (; x0 + 8 <= n; x0 += 8) {
            const __m256 t = _mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(ssd + x0), vs8), vb8);
            _mm256_storeu_ps(wt + x0, checked::i32gather_ps<4>(lut, _mm256_cvttps_epi32(t)));
        }
    }
#endif
    for (std::int64_t x = x0; x < n; ++x) {
        float t = ssd[x] * scale;
        t = t < fbins ? t : fbins;
        wt[x] = lut[static_cast<int>(t)];
    }
}

// aw[x] += c[x]; av[x] += c[x] * q[x]
inline void nlm_accumulate(const float* __restrict c, const float* __restrict q, std::int64_t n, float* __restrict aw,
                           float* __restrict av) {
    for (std::int64_t x = 0; x < n; ++x) {
        aw[x] = aw[x] + c[x];
        av[x] = av[x] + c[x] * q[x];
    }
}

// Rows [y0, y1) of the output. For each half offset d = (dy, dx) the weight
// map W_d is computed on rows y0-dy .. y1-1 and columns min(0,-dx) ..
// max(w, w-dx)-1: every W_d(p) and W_d(p-d) a band pixel p needs.
template <class T>
void nlm_band(const NlmJob& job, std::int64_t y0, std::int64_t y1, T* out) {
    using i64 = std::int64_t;
    const float* pad = job.pad;
    const i64 w = job.w, ps = job.pstride;
    const int pr = job.pr, sr = job.sr, R = pr + sr, K = 2 * pr + 1;
    const i64 nb = y1 - y0;
    const i64 cmax2 = w + sr + 2 * pr;  // widest squared-difference row
    std::vector<float> d2(static_cast<std::size_t>((nb + sr + 2 * pr) * cmax2));
    std::vector<float> vs(static_cast<std::size_t>(cmax2)), hs(static_cast<std::size_t>(w + sr)),
        wt(static_cast<std::size_t>(w + sr));
    std::vector<float> accw(static_cast<std::size_t>(nb * w)), accv(static_cast<std::size_t>(nb * w));
    const bool exact = std::is_same<T, std::uint8_t>::value;
    const float* lut = job.lut;
    const float scale = job.scale, fbins = static_cast<float>(job.bins), w0 = lut[0];
    for (i64 i = 0; i < nb; ++i) {  // d = 0: distance 0, weight lut[0]
        const float* q = pad + (y0 + i + R) * ps + R;
        float* aw = accw.data() + i * w;
        float* av = accv.data() + i * w;
        for (i64 x = 0; x < w; ++x) {
            aw[x] = w0;
            av[x] = w0 * q[x];
        }
    }
    for (int dy = 0; dy <= sr; ++dy) {
        for (int dx = (dy == 0 ? 1 : -sr); dx <= sr; ++dx) {
            const i64 nr = nb + dy;                  // weight rows: image rows y0-dy .. y1-1
            const i64 cx0 = dx > 0 ? -dx : 0;         // first weight column
            const i64 nc = w + (dx > 0 ? dx : -dx);   // weight columns
            const i64 nc2 = nc + 2 * pr;
            // Squared differences, rows y0-dy-pr .., columns cx0-pr ..
            for (i64 r = 0; r < nr + 2 * pr; ++r) {
                const float* __restrict a = pad + (y0 - dy - pr + r + R) * ps + (cx0 - pr + R);
                const float* __restrict b = a + dy * ps + dx;
                float* __restrict d = d2.data() + r * nc2;
                for (i64 x = 0; x < nc2; ++x) {
                    const float t = a[x] - b[x];
                    d[x] = t * t;
                }
            }
            for (i64 r = 0; r < nr; ++r) {
                // Vertical patch sums, top to bottom (uint8: a running sum;
                // every value is an integer below 2^24, so exact in float).
                const float* d = d2.data() + r * nc2;
                float* __restrict vp = vs.data();
                if (exact && r > 0) {
                    const float* __restrict add = d + 2 * pr * nc2;
                    const float* __restrict sub = d - nc2;
                    for (i64 x = 0; x < nc2; ++x) vp[x] = vp[x] + add[x] - sub[x];
                } else {
                    for (i64 x = 0; x < nc2; ++x) vp[x] = d[x];
                    for (int k = 1; k < K; ++k) {
                        const float* __restrict dk = d + k * nc2;
                        for (i64 x = 0; x < nc2; ++x) vp[x] += dk[x];
                    }
                }
                // Horizontal sums (left to right) -> weights.
                float* __restrict h = hs.data();
                for (i64 x = 0; x < nc; ++x) h[x] = vp[x];
                for (int k = 1; k < K; ++k) {
                    const float* __restrict vk = vp + k;
                    for (i64 x = 0; x < nc; ++x) h[x] += vk[x];
                }
                nlm_weights(h, nc, lut, scale, fbins, wt.data());
                // -d term of band row r (pixel p gets W_d(p-d) I(p-d)) ...
                if (r < nb) {
                    const float* q = pad + (y0 + r - dy + R) * ps + R - dx;
                    nlm_accumulate(wt.data() + (-dx - cx0), q, w, accw.data() + r * w, accv.data() + r * w);
                }
                // ... then the +d term of band row r-dy (W_d(p) I(p+d)).
                if (r >= dy) {
                    const i64 i = r - dy;
                    const float* q = pad + (y0 + i + dy + R) * ps + R + dx;
                    nlm_accumulate(wt.data() - cx0, q, w, accw.data() + i * w, accv.data() + i * w);
                }
            }
        }
    }
    for (i64 y = 0; y < nb; ++y) {
        T* o = out + (y0 + y) * w;
        const float* aw = accw.data() + y * w;
        const float* av = accv.data() + y * w;
        for (i64 x = 0; x < w; ++x) {
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
