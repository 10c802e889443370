// Bilateral-filter inner loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by bilateral.cpp / bilateral_avx2.cpp /
// bilateral_avx512.cpp; no headers here: the .cpp includes <cmath>,
// <cstdint>, <immintrin.h> and the checked-SIMD / AVX-512 compat headers
// first).
//
// Each output pixel sums over the window offsets in the job's order, in
// float32, multiply then add, with colour weights from one float32 formula
// (color_weight; uint8 values converted to float, exactly); the AVX2
// path runs 8 pixels per vector and the AVX-512 path 16 (both compute each
// pair's weight once where they can: pair_rows), with the same operations
// per lane, so every path agrees bit for bit.

namespace {

// ---- vector traits (1 lane: scalar; 8: AVX2; 16: AVX-512) -----------------

// 2^-n as float32 exponent bits, from ym = y + 1.5 * 2^23 whose low mantissa
// bits hold n = rint(y) (0 <= n <= 125): (127 - n) << 23 = (127 + bits(1.5 * 2^23)
// - bits(ym)) << 23 in 32-bit wrap-around arithmetic.
constexpr std::uint32_t kPow2Bias = 127u + 0x4B400000u;

struct V1 {
    using V = float;
    static constexpr int L = 1;
    static V set1(float a) { return a; }
    static V add(V a, V b) { return a + b; }
    static V sub(V a, V b) { return a - b; }
    static V mul(V a, V b) { return a * b; }
    static V min(V a, V b) { return a < b ? a : b; }  // never NaN here
    static V pow2neg(V ym) {
        std::uint32_t bits;
        __builtin_memcpy(&bits, &ym, sizeof bits);
        bits = (kPow2Bias - bits) << 23;
        float r;
        __builtin_memcpy(&r, &bits, sizeof r);
        return r;
    }
};

#if defined(__AVX2__)
struct V8 {
    using V = __m256;
    static constexpr int L = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float a) { return _mm256_set1_ps(a); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V min(V a, V b) { return _mm256_min_ps(a, b); }
    static V pow2neg(V ym) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int>(kPow2Bias)), _mm256_castps_si256(ym)), 23));
    }
    static V loadu(const float* p) { return _mm256_loadu_ps(p); }
    static void storeu(float* p, V a) { _mm256_storeu_ps(p, a); }
    static V vals(const float* p) { return _mm256_loadu_ps(p); }
    static V vals(const std::uint8_t* p) {
        return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
    static void store(float* o, V sum, V wsum) { _mm256_storeu_ps(o, _mm256_div_ps(sum, wsum)); }
    static void store(std::uint8_t* o, V sum, V wsum) {
        const __m256i r = _mm256_cvtps_epi32(_mm256_div_ps(sum, wsum));  // round half to even
        const __m128i r16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm_packus_epi16(r16, r16));
    }
};
#endif

#if defined(__AVX512F__)
struct V16 {
    using V = __m512;
    static constexpr int L = 16;
    static constexpr __mmask16 kAll = 0xFFFF;  // masked forms: see common/avx512_compat.hpp
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float a) { return _mm512_set1_ps(a); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V min(V a, V b) { return compat512::min_ps(a, b); }
    static V pow2neg(V ym) {
        return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
            kAll, _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int>(kPow2Bias)), _mm512_castps_si512(ym)), 23));
    }
    static V loadu(const float* p) { return _mm512_loadu_ps(p); }
    static void storeu(float* p, V a) { _mm512_storeu_ps(p, a); }
    static V vals(const float* p) { return _mm512_loadu_ps(p); }
    static V vals(const std::uint8_t* p) {
        return _mm512_maskz_cvtepi32_ps(
            kAll, _mm512_maskz_cvtepu8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
    static void store(float* o, V sum, V wsum) { _mm512_storeu_ps(o, _mm512_div_ps(sum, wsum)); }
    static void store(std::uint8_t* o, V sum, V wsum) {
        // round half to even (the current rounding mode), then saturate to 0..255
        const __m512i r = _mm512_maskz_cvtps_epi32(kAll, _mm512_div_ps(sum, wsum));
        const __m512i r0 = _mm512_maskz_max_epi32(kAll, r, _mm512_setzero_si512());
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm512_maskz_cvtusepi32_epi8(kAll, r0));
    }
};
#endif

// ---- the colour weight ---------------------------------------------------------
//
// exp(-d^2 / (2 sigma_color^2)) of a difference d = v - v0, as 2^-y with
// y = (d * coeff)^2, coeff = sqrt(log2(e) / 2) / sigma_color in float32
// (finite: the driver clamps it to FLT_MAX, so y is never NaN; an overflow
// gives y = inf): y is clamped to 125 (weights below 2^-125 ~ 2e-38 are all
// that small, and 2^-n p stays a normal float), split as y = n - g with
// n = rint(y) (by the 1.5 * 2^23 addition, exact for 0 <= y <= 125) and g in
// [-0.5, 0.5], 2^g by a degree-5 polynomial evaluated as
// (c0 + c1 g) + g^2 ((c2 + c3 g) + g^2 (c4 + c5 g)) (a shorter dependency
// chain than Horner's; relative error below 2.6e-7 over the interval,
// float32 rounding included), then scaled by 2^-n exactly (exponent bits).
// One template for every lane width; multiply then add throughout (no FMA):
// the scalar, AVX2 and AVX-512 forms and the NumPy twin do the same float32
// operations in the same order, so they agree bit for bit.
constexpr float kExp2C1 = 0.693146944f, kExp2C2 = 0.240221202f, kExp2C3 = 0.0555071309f,
                kExp2C4 = 0.00967554096f, kExp2C5 = 0.00132764713f;
constexpr float kExp2Max = 125.f;
constexpr float kRoundMagic = 12582912.f;  // 1.5 * 2^23

template <class S>
inline typename S::V color_weight(typename S::V v, typename S::V v0, typename S::V coeff) {
    using V = typename S::V;
    const V t = S::mul(S::sub(v, v0), coeff);
    const V y = S::min(S::mul(t, t), S::set1(kExp2Max));
    const V ym = S::add(y, S::set1(kRoundMagic));
    const V g = S::sub(S::sub(ym, S::set1(kRoundMagic)), y);  // rint(y) - y
    const V g2 = S::mul(g, g);
    const V a = S::add(S::mul(S::set1(kExp2C1), g), S::set1(1.f));
    const V b = S::add(S::mul(S::set1(kExp2C3), g), S::set1(kExp2C2));
    const V c = S::add(S::mul(S::set1(kExp2C5), g), S::set1(kExp2C4));
    const V p = S::add(a, S::mul(g2, S::add(b, S::mul(g2, c))));
    return S::mul(p, S::pow2neg(ym));
}

inline void store1(float* o, float sum, float wsum) { *o = sum / wsum; }
inline void store1(std::uint8_t* o, float sum, float wsum) {
    const float r = __builtin_nearbyintf(sum / wsum);  // round half to even, then saturate
    *o = static_cast<std::uint8_t>(r < 0.f ? 0.f : (r > 255.f ? 255.f : r));
}

// ---- the direct sum -----------------------------------------------------------

template <class T>
inline void direct1(const BilateralRows& job, const T* c, T* o) {
    const float v0 = static_cast<float>(c[0]);
    float sum = 0.f, wsum = 0.f;
    for (int k = 0; k < job.nk; ++k) {
        const float v = static_cast<float>(c[job.ofs[k]]);
        const float wt = job.space[k] * color_weight<V1>(v, v0, job.coeff);
        sum = sum + v * wt;
        wsum = wsum + wt;
    }
    store1(o, sum, wsum);
}

#if defined(__AVX2__)
// The S::L pixels at c (centre pointer) into o.
template <class S, class T>
inline void direct(const BilateralRows& job, const T* c, T* o, typename S::V coeff) {
    const typename S::V v0 = S::vals(c);
    typename S::V sum = S::zero(), wsum = S::zero();
    for (int k = 0; k < job.nk; ++k) {
        const typename S::V v = S::vals(c + job.ofs[k]);
        const typename S::V wt = S::mul(S::set1(job.space[k]), color_weight<S>(v, v0, coeff));
        sum = S::add(sum, S::mul(v, wt));
        wsum = S::add(wsum, wt);
    }
    S::store(o, sum, wsum);
}

// ---- each pair's weight computed once (AVX2, AVX-512) -------------------------
//
// The weight of a pair, w(p, p + o) = space(o) * colour(I(p + o) - I(p)), is
// the same bits as w(p + o, p): space(-o) == space(o) (same r^2), and in
// float32 fl(a - b) == -fl(b - a), whose product with the coefficient
// squares to the same y. So a band's rows first get the weights of the
// forward half of the window (the offsets after the centre in row-major
// order) into a ring of radius + 1 rows, and each output pixel then sums over
// the whole window in the usual row-major order, reading a backward offset's
// weight where its mirror pair stored it. Every output is the same float32
// sum, in the same order, as the direct loops compute (and the NumPy twin):
// only the number of colour-weight evaluations halves. Pixels within 16
// columns of the left/right edge (whose mirror pairs would lie in the
// padding) run the direct sum.
//
// uint8 images are read as float rows converted once per row (a ring of
// 2 radius + 1 padded rows; the same exact values the per-load conversion
// gave), so the inner loops only load.
//
// Rows y0..y1-1; false (nothing done) where the method does not apply:
// radius above 16, or rows narrower than 48 pixels.
template <class S, class T>
bool pair_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1) {
    using i64 = std::int64_t;
    using V = typename S::V;
    constexpr int L = S::L;
    const int r = job.radius, nk = job.nk;
    const i64 w = job.w, ps = job.pstride;
    if (r > 16 || w < 48) return false;
    const int kc = nk / 2, nf = nk - 1 - kc;  // the window is point-symmetric: kc is its centre
    const i64 ws = (w + 15) / 16 * 16;          // a weight plane's row
    const int slots = r + 1;
    const auto* pad = static_cast<const T*>(job.pad);
    auto* out = static_cast<T*>(job.out);
    const V coeff = S::set1(job.coeff);
    std::vector<int> dy(static_cast<std::size_t>(nk)), dx(static_cast<std::size_t>(nk));
    for (int k = 0; k < nk; ++k) {
        const i64 o = job.ofs[k] + r;  // = dy * ps + (dx + r), with 0 <= dx + r <= 2r < ps
        const i64 i = (o >= 0 ? o : o - (ps - 1)) / ps;
        dy[static_cast<std::size_t>(k)] = static_cast<int>(i);
        dx[static_cast<std::size_t>(k)] = static_cast<int>(job.ofs[k] - i * ps);
    }
    std::unique_ptr<float[]> ring(new float[static_cast<std::size_t>(slots) * nf * ws]);
    auto slot = [&](i64 yy) { return ring.get() + ((yy - y0 + r) % slots) * nf * ws; };
    // Padded image row of image row yy (yy in [y0 - r, y1 + r)) as floats, at its column -r.
    // Rows are read up to 15 floats past their padded width (weight columns up to ws): uint8 ring rows
    // carry that many zeros; float rows run into the next padded row, inside the padded image.
    constexpr bool kU8 = std::is_same<T, std::uint8_t>::value;
    const int frows = 2 * r + 1;
    const i64 fstride = (ps + 16 + 15) / 16 * 16;
    std::unique_ptr<float[]> fring(kU8 ? new float[static_cast<std::size_t>(frows * fstride)]() : nullptr);
    auto frow = [&](i64 yy) -> const float* {
        if constexpr (kU8)
            return fring.get() + ((yy - y0 + 2 * r) % frows) * fstride;
        else
            return pad + (yy + r) * ps;
    };
    i64 converted = y0 - r;  // uint8: rows below this are in the ring
    auto convert_upto = [&](i64 last) {  // rows converted..last (at most y1 + r - 1)
        if constexpr (kU8) {
            for (; converted <= last; ++converted) {
                const T* src = pad + (converted + r) * ps;
                float* dst = fring.get() + ((converted - y0 + 2 * r) % frows) * fstride;
                i64 x = 0;
                for (; x + L <= ps; x += L) S::storeu(dst + x, S::vals(src + x));
                for (; x < ps; ++x) dst[x] = static_cast<float>(src[x]);
            }
        } else {
            (void)last;
        }
    };
    std::vector<const float*> wp(static_cast<std::size_t>(nk)), fk(kU8 ? static_cast<std::size_t>(nk) : 0);  // fk: uint8 only
    const V wc = S::set1(job.space[kc]);  // the centre's weight: space * colour(0), colour(0) = 1 exactly
    for (i64 yy = y0 - r; yy < y1; ++yy) {
        convert_upto(yy + r);
        // forward weights of row yy (rows above y0 only serve as backward weights of the band's rows)
        const T* c = pad + (yy + r) * ps + r;
        const float* fc = frow(yy) + r;
        if constexpr (kU8)
            for (int k = 0; k < nk; ++k)
                fk[static_cast<std::size_t>(k)] =
                    frow(yy + dy[static_cast<std::size_t>(k)]) + r + dx[static_cast<std::size_t>(k)];
        // offset k's source row: the float ring (uint8) or the padded image itself (float32, whose
        // offsets stay plain additions: a table of pointers there measured 2.03 -> 2.2-2.3 ms, 512^2 d9)
        auto src = [&](int k) -> const float* {
            if constexpr (kU8)
                return fk[static_cast<std::size_t>(k)];
            else
                return c + job.ofs[k];
        };
        float* ring_row = slot(yy);
        for (int j = 0; j < nf; ++j) {
            const int k = kc + 1 + j;
            const V sw = S::set1(job.space[k]);
            const float* q = src(k);
            float* plane = ring_row + j * ws;
            for (i64 x = 0; x < ws; x += L)
                S::storeu(plane + x, S::mul(sw, color_weight<S>(S::loadu(q + x), S::loadu(fc + x), coeff)));
        }
        if (yy < y0) continue;
        T* o = out + yy * w;
        for (int e = 0; e < 16; e += L) {
            direct<S>(job, c + e, o + e, coeff);
            direct<S>(job, c + (w - 16 + e), o + (w - 16 + e), coeff);
        }
        for (int k = 0; k < nk; ++k) {
            const std::size_t sk = static_cast<std::size_t>(k);
            if (k < kc)  // backward: the mirror offset's weight, stored at the partner pixel
                wp[sk] = slot(yy + dy[sk]) + (nk - 2 - k - kc) * ws + dx[sk];
            else if (k > kc)
                wp[sk] = ring_row + (k - kc - 1) * ws;
            else
                wp[sk] = nullptr;
        }
        i64 x = 16;
        for (; x + 4 * L <= w - 16; x += 4 * L) {  // four independent sums per pass
            V s0 = S::zero(), s1 = s0, s2 = s0, s3 = s0, w0 = s0, w1 = s0, w2 = s0, w3 = s0;
            for (int k = 0; k < nk; ++k) {
                const float* pw = wp[static_cast<std::size_t>(k)];
                const float* q = src(k) + x;
                const V a0 = pw ? S::loadu(pw + x) : wc, a1 = pw ? S::loadu(pw + x + L) : wc;
                const V a2 = pw ? S::loadu(pw + x + 2 * L) : wc, a3 = pw ? S::loadu(pw + x + 3 * L) : wc;
                s0 = S::add(s0, S::mul(S::loadu(q), a0));
                s1 = S::add(s1, S::mul(S::loadu(q + L), a1));
                s2 = S::add(s2, S::mul(S::loadu(q + 2 * L), a2));
                s3 = S::add(s3, S::mul(S::loadu(q + 3 * L), a3));
                w0 = S::add(w0, a0);
                w1 = S::add(w1, a1);
                w2 = S::add(w2, a2);
                w3 = S::add(w3, a3);
            }
            S::store(o + x, s0, w0);
            S::store(o + x + L, s1, w1);
            S::store(o + x + 2 * L, s2, w2);
            S::store(o + x + 3 * L, s3, w3);
        }
        for (; x < w - 16; x += L) {
            const i64 xs = x < w - 16 - L ? x : w - 16 - L;  // the last vector may overlap its neighbour (same values)
            V s0 = S::zero(), w0 = s0;
            for (int k = 0; k < nk; ++k) {
                const float* pw = wp[static_cast<std::size_t>(k)];
                const V a0 = pw ? S::loadu(pw + xs) : wc;
                s0 = S::add(s0, S::mul(S::loadu(src(k) + xs), a0));
                w0 = S::add(w0, a0);
            }
            S::store(o + xs, s0, w0);
        }
    }
    return true;
}
#endif

template <class T>
void bilateral_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1) {
#if defined(__AVX512F__)
    if (pair_rows<V16, T>(job, y0, y1)) return;
    const __m512 coeff16 = _mm512_set1_ps(job.coeff);
#elif defined(__AVX2__)
    if (pair_rows<V8, T>(job, y0, y1)) return;
#endif
#if defined(__AVX2__)
    const __m256 coeff8 = _mm256_set1_ps(job.coeff);
#endif
    const auto* pad = static_cast<const T*>(job.pad);
    auto* out = static_cast<T*>(job.out);
    const std::int64_t w = job.w;
    for (std::int64_t y = y0; y < y1; ++y) {
        const T* c = pad + (y + job.radius) * job.pstride + job.radius;
        T* o = out + y * w;
        std::int64_t x = 0;
#if defined(__AVX512F__)
        for (; x + 16 <= w; x += 16) direct<V16>(job, c + x, o + x, coeff16);
#endif
#if defined(__AVX2__)
        for (; x + 8 <= w; x += 8) direct<V8>(job, c + x, o + x, coeff8);
#endif
        for (; x < w; ++x) direct1(job, c + x, o + x);
    }
}

}  // namespace

void bilateral_u8_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1) {
    bilateral_rows<std::uint8_t>(job, y0, y1);
}

void bilateral_f32_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1) {
    bilateral_rows<float>(job, y0, y1);
}
