// Attention inner loops, compiled once per instruction set.
//
// Included *inside* a namespace by attention.cpp (baseline),
// attention_avx2.cpp and attention_avx512.cpp, each built with its own -m
// flags, so every function here exists once per ISA and none can be merged
// across paths by the linker. It includes no headers (the including file
// provides <cstdint>, <cmath> and, for the SIMD paths,
// <immintrin.h>) and instantiates no std:: templates.
//
// Structure: register-tiled GEMM micro-kernels (MR rows x 2 vectors) over
// packed blocks; a vectorised exp; the online-softmax forward block; the
// FlashAttention-2 backward blocks. Every reduction runs in a fixed order, so
// a given ISA path gives the same bits for any thread count.

namespace kern {

using i64 = std::int64_t;

// ---------------------------------------------------------------- vectors --
#if defined(__AVX2__) && defined(__FMA__)

template <class T> struct Vec;

template <> struct Vec<float> {
    static constexpr int W = 8;
    __m256 v;
    static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
    void store(float* p) const { _mm256_storeu_ps(p, v); }
    static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
    static Vec bcast(const float* p) { return {checked::broadcast_ss(p)}; }
    static Vec zero() { return {_mm256_setzero_ps()}; }
    friend Vec fmadd(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
    friend Vec vmax(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
    float hmax() const {
        alignas(32) float t[8];
        _mm256_store_ps(t, v);
        float m = t[0];
        for (int i = 1; i < 8; ++i) m = t[i] > m ? t[i] : m;
        return m;
    }
    float hsum() const {
        alignas(32) float t[8];
        _mm256_store_ps(t, v);
        return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    }
    // exp, Cephes-style: x = n ln2 + r, |r| <= ln2/2, degree-7 polynomial
    // (about 1 ulp); below -87.33 (incl. -inf) the result is 0, NaN stays NaN.
    friend Vec vexp(Vec xv) {
        const __m256 x = xv.v;
        const __m256 lo = _mm256_set1_ps(-87.33654475f), hi = _mm256_set1_ps(88.0f);
        __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
        __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
        r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
        __m256 y = _mm256_set1_ps(1.9875691500E-4f);
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507E-3f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894E-2f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459E-1f));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201E-1f));
        y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
        const __m256i n = _mm256_cvtps_epi32(fx);
        const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
        y = _mm256_mul_ps(y, p2);
        y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
        y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
        y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        return {y};
    }
};

template <> struct Vec<double> {
    static constexpr int W = 4;
    __m256d v;
    static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
    void store(double* p) const { _mm256_storeu_pd(p, v); }
    static Vec set1(double x) { return {_mm256_set1_pd(x)}; }
    static Vec bcast(const double* p) { return {checked::broadcast_sd(p)}; }
    static Vec zero() { return {_mm256_setzero_pd()}; }
    friend Vec fmadd(Vec a, Vec b, Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_pd(a.v, b.v)}; }
    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_pd(a.v, b.v)}; }
    friend Vec vmax(Vec a, Vec b) { return {_mm256_max_pd(a.v, b.v)}; }
    double hmax() const {
        alignas(32) double t[4];
        _mm256_store_pd(t, v);
        double m = t[0];
        for (int i = 1; i < 4; ++i) m = t[i] > m ? t[i] : m;
        return m;
    }
    double hsum() const {
        alignas(32) double t[4];
        _mm256_store_pd(t, v);
        return (t[0] + t[2]) + (t[1] + t[3]);
    }
    // exp: x = n ln2 + r, |r| <= ln2/2, Taylor series to degree 13 (error
    // below 1e-16 relative); below -708.39 the result is 0.
    friend Vec vexp(Vec xv) {
        const __m256d x = xv.v;
        const __m256d lo = _mm256_set1_pd(-708.3964185322641), hi = _mm256_set1_pd(709.0);
        __m256d xc = _mm256_min_pd(_mm256_max_pd(x, lo), hi);
        __m256d fx = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256d r = _mm256_fnmadd_pd(fx, _mm256_set1_pd(6.93145751953125E-1), xc);
        r = _mm256_fnmadd_pd(fx, _mm256_set1_pd(1.42860682030941723212E-6), r);
        static constexpr double c[14] = {1.0,
                                         1.0,
                                         1.0 / 2,
                                         1.0 / 6,
                                         1.0 / 24,
                                         1.0 / 120,
                                         1.0 / 720,
                                         1.0 / 5040,
                                         1.0 / 40320,
                                         1.0 / 362880,
                                         1.0 / 3628800,
                                         1.0 / 39916800,
                                         1.0 / 479001600,
                                         1.0 / 6227020800.0};
        __m256d y = _mm256_set1_pd(c[13]);
        for (int i = 12; i >= 0; --i) y = _mm256_fmadd_pd(y, r, _mm256_set1_pd(c[i]));
        // 2^n: n + 1023 in the low mantissa bits of (2^52 + n + 1023), shifted into the exponent.
        const __m256d magic = _mm256_add_pd(fx, _mm256_set1_pd(4503599627370496.0 + 1023.0));
        const __m256d p2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(magic), 52));
        y = _mm256_mul_pd(y, p2);
        y = _mm256_blendv_pd(y, _mm256_setzero_pd(), _mm256_cmp_pd(x, lo, _CMP_LT_OQ));
        y = _mm256_blendv_pd(y, _mm256_set1_pd(__builtin_inf()), _mm256_cmp_pd(x, hi, _CMP_GT_OQ));
        y = _mm256_blendv_pd(y, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
        return {y};
    }
};

template <class T> struct Tile { static constexpr int MR = 6; };

#else  // portable baseline: small fixed arrays the compiler maps to SSE

template <class T> struct Vec {
    static constexpr int W = 16 / static_cast<int>(sizeof(T));
    T v[W];
    static Vec load(const T* p) {
        Vec r;
        for (int i = 0; i < W; ++i) r.v[i] = p[i];
        return r;
    }
    void store(T* p) const {
        for (int i = 0; i < W; ++i) p[i] = v[i];
    }
    static Vec set1(T x) {
        Vec r;
        for (int i = 0; i < W; ++i) r.v[i] = x;
        return r;
    }
    static Vec bcast(const T* p) { return set1(*p); }
    static Vec zero() { return set1(T(0)); }
    friend Vec fmadd(Vec a, Vec b, Vec c) {
        for (int i = 0; i < W; ++i) c.v[i] = a.v[i] * b.v[i] + c.v[i];
        return c;
    }
    friend Vec operator*(Vec a, Vec b) {
        for (int i = 0; i < W; ++i) a.v[i] *= b.v[i];
        return a;
    }
    friend Vec operator+(Vec a, Vec b) {
        for (int i = 0; i < W; ++i) a.v[i] += b.v[i];
        return a;
    }
    friend Vec operator-(Vec a, Vec b) {
        for (int i = 0; i < W; ++i) a.v[i] -= b.v[i];
        return a;
    }
    friend Vec vmax(Vec a, Vec b) {
        for (int i = 0; i < W; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
        return a;
    }
    T hmax() const {
        T m = v[0];
        for (int i = 1; i < W; ++i) m = v[i] > m ? v[i] : m;
        return m;
    }
    T hsum() const {
        T s = v[0];
        for (int i = 1; i < W; ++i) s += v[i];
        return s;
    }
    friend Vec vexp(Vec a) {
        for (int i = 0; i < W; ++i) a.v[i] = std::exp(a.v[i]);
        return a;
    }
};

template <class T> struct Tile { static constexpr int MR = 4; };

#endif

template <class T> constexpr T neg_inf() { return static_cast<T>(-__builtin_inf()); }

// ------------------------------------------------------------------ GEMM --
// C[MR x NR] (+)= sum_k A(r, k) * B[k, 0:NR], A(r, k) = A[r * ars + k * aks],
// B row-major with leading dimension ldb, NR = 2 vectors.
template <class T, int MR>
inline void micro(i64 K, const T* A, i64 ars, i64 aks, const T* B, i64 ldb, T* C, i64 ldc,
                  bool acc) {
    using V = Vec<T>;
    constexpr int W = V::W;
    V c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        if (acc) {
            c0[r] = V::load(C + r * ldc);
            c1[r] = V::load(C + r * ldc + W);
        } else {
            c0[r] = V::zero();
            c1[r] = V::zero();
        }
    }
    for (i64 k = 0; k < K; ++k) {
        const V b0 = V::load(B + k * ldb), b1 = V::load(B + k * ldb + W);
        const T* a = A + k * aks;
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            const V ar = V::bcast(a + r * ars);
            c0[r] = fmadd(ar, b0, c0[r]);
            c1[r] = fmadd(ar, b1, c1[r]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        c0[r].store(C + r * ldc);
        c1[r].store(C + r * ldc + W);
    }
}

template <class T, int MR>
inline void micro_cols(i64 N, i64 K, const T* A, i64 ars, i64 aks, const T* B, i64 ldb, T* C,
                       i64 ldc, bool acc) {
    constexpr i64 NR = 2 * Vec<T>::W;
    for (i64 j = 0; j < N; j += NR) micro<T, MR>(K, A, ars, aks, B + j, ldb, C + j, ldc, acc);
}

// C[M x N] (+)= A(M x K) B(K x N); N a multiple of 2 vectors (padded buffers).
template <class T>
void gemm(i64 M, i64 N, i64 K, const T* A, i64 ars, i64 aks, const T* B, i64 ldb, T* C, i64 ldc,
          bool acc) {
    constexpr int MR = Tile<T>::MR;
    i64 i = 0;
    for (; i + MR <= M; i += MR) micro_cols<T, MR>(N, K, A + i * ars, ars, aks, B, ldb, C + i * ldc, ldc, acc);
    const i64 rest = M - i;
    const T* a = A + i * ars;
    T* c = C + i * ldc;
    switch (rest) {
        case 1: micro_cols<T, 1>(N, K, a, ars, aks, B, ldb, c, ldc, acc); break;
        case 2: micro_cols<T, 2>(N, K, a, ars, aks, B, ldb, c, ldc, acc); break;
        case 3: micro_cols<T, 3>(N, K, a, ars, aks, B, ldb, c, ldc, acc); break;
        case 4: micro_cols<T, 4>(N, K, a, ars, aks, B, ldb, c, ldc, acc); break;
        case 5: micro_cols<T, 5>(N, K, a, ars, aks, B, ldb, c, ldc, acc); break;
        default: break;
    }
}

// --------------------------------------------------------------- packing --
// dst[c * ld + j] = src[j * d + c] for j < n; columns n..ld-1 zeroed.
template <class T>
void pack_t(const T* src, i64 n, i64 d, T* dst, i64 ld) {
    for (i64 c = 0; c < d; ++c) {
        T* row = dst + c * ld;
        for (i64 j = 0; j < n; ++j) row[j] = src[j * d + c];
        for (i64 j = n; j < ld; ++j) row[j] = T(0);
    }
}
// dst[j * ld + c] = src[j * d + c] for c < d; columns d..ld-1 zeroed.
template <class T>
void pack_rows(const T* src, i64 n, i64 d, T* dst, i64 ld) {
    for (i64 j = 0; j < n; ++j) {
        const T* s = src + j * d;
        T* row = dst + j * ld;
        for (i64 c = 0; c < d; ++c) row[c] = s[c];
        for (i64 c = d; c < ld; ++c) row[c] = T(0);
    }
}

// ----------------------------------------------------------------- scores --
// S[r, 0:bc] *= scale, then mask, causal and key tail (>= nk) applied.
template <class T>
void finish_scores(const AttnJob<T>& job, i64 b, i64 i0, i64 nq, i64 j0, i64 nk, T* S, i64 bc) {
    using V = Vec<T>;
    constexpr int W = V::W;
    const V sc = V::set1(job.scale);
    for (i64 r = 0; r < nq; ++r) {
        T* s = S + r * bc;
        for (i64 j = 0; j < bc; j += W) (V::load(s + j) * sc).store(s + j);
    }
    const T ninf = neg_inf<T>();
    if (job.mask_kind == MaskKind::boolean) {
        for (i64 r = 0; r < nq; ++r) {
            const std::uint8_t* m = job.mask_b + job.mask_off[b] + (i0 + r) * job.mask_rs + j0 * job.mask_cs;
            T* s = S + r * bc;
            for (i64 j = 0; j < nk; ++j) s[j] = m[j * job.mask_cs] ? s[j] : ninf;
        }
    } else if (job.mask_kind == MaskKind::additive) {
        for (i64 r = 0; r < nq; ++r) {
            const T* m = job.mask_f + job.mask_off[b] + (i0 + r) * job.mask_rs + j0 * job.mask_cs;
            T* s = S + r * bc;
            for (i64 j = 0; j < nk; ++j) s[j] += m[j * job.mask_cs];
        }
    }
    if (job.causal && j0 + nk - 1 > i0) {  // some key after some row
        for (i64 r = 0; r < nq; ++r) {
            T* s = S + r * bc;
            i64 first = i0 + r + 1 - j0;  // first masked column
            if (first < 0) first = 0;
            for (i64 j = first; j < nk; ++j) s[j] = ninf;
        }
    }
    if (nk < bc)
        for (i64 r = 0; r < nq; ++r)
            for (i64 j = nk; j < bc; ++j) S[r * bc + j] = ninf;
}

// ---------------------------------------------------------------- forward --
template <class T>
void fwd_block(const AttnJob<T>& job, i64 b, i64 qb, T* scratch) {
    using V = Vec<T>;
    constexpr int W = V::W;
    const i64 d = job.d, dv = job.dv;
    const i64 bc = attn_pad<T>(kAttnBc), dvp = attn_pad<T>(dv);
    const i64 i0 = qb * kAttnFwdBr;
    const i64 nq = job.lq - i0 < kAttnFwdBr ? job.lq - i0 : kAttnFwdBr;
    T* Kt = scratch;
    T* Vp = Kt + d * bc;
    T* S = Vp + kAttnBc * dvp;
    T* O = S + kAttnFwdBr * bc;
    T* m = O + kAttnFwdBr * dvp;
    T* l = m + kAttnFwdBr;
    const T ninf = neg_inf<T>();
    for (i64 i = 0; i < nq * dvp; ++i) O[i] = T(0);
    for (i64 r = 0; r < nq; ++r) {
        m[r] = ninf;
        l[r] = T(0);
    }
    const T* Q = job.q + job.q_off[b] + i0 * d;
    const T* Kb = job.k + job.k_off[b];
    const T* Vb = job.v + job.v_off[b];
    i64 kend = job.lk;
    if (job.causal && i0 + nq < kend) kend = i0 + nq;
    for (i64 j0 = 0; j0 < kend; j0 += kAttnBc) {
        const i64 nk = job.lk - j0 < kAttnBc ? job.lk - j0 : kAttnBc;
        pack_t(Kb + j0 * d, nk, d, Kt, bc);
        // rows of V serve as B directly when dv needs no column padding
        const T* Vsrc = Vp;
        if (dv == dvp) Vsrc = Vb + j0 * dv;
        else pack_rows(Vb + j0 * dv, nk, dv, Vp, dvp);
        gemm<T>(nq, bc, d, Q, d, 1, Kt, bc, S, bc, false);
        finish_scores(job, b, i0, nq, j0, nk, S, bc);
        for (i64 r = 0; r < nq; ++r) {
            T* s = S + r * bc;
            V mx = V::load(s);
            for (i64 j = W; j < bc; j += W) mx = vmax(mx, V::load(s + j));
            const T bm = mx.hmax();
            const T mnew = (bm > m[r] || bm != bm) ? bm : m[r];  // NaN propagates
            if (mnew == ninf) {  // nothing to attend to so far (or only NaN: the max skips it)
                bool nan = false;
                for (i64 j = 0; j < bc; ++j) {
                    nan = nan || s[j] != s[j];
                    s[j] = T(0);
                }
                if (nan) m[r] = l[r] = s[0] = static_cast<T>(__builtin_nan(""));
                continue;
            }
            const V mv = V::set1(mnew);
            V sum = V::zero();
            for (i64 j = 0; j < bc; j += W) {
                const V p = vexp(V::load(s + j) - mv);
                p.store(s + j);
                sum = sum + p;
            }
            if (mnew != m[r]) {
                T alpha_arr[W];
                V::set1(m[r] - mnew).store(alpha_arr);
                const T alpha = vexp(V::load(alpha_arr)).hmax();  // all lanes equal
                const V av = V::set1(alpha);
                T* o = O + r * dvp;
                for (i64 c = 0; c < dvp; c += W) (V::load(o + c) * av).store(o + c);
                l[r] = l[r] * alpha + sum.hsum();
                m[r] = mnew;
            } else {
                l[r] = l[r] + sum.hsum();
            }
        }
        gemm<T>(nq, dvp, nk, S, bc, 1, Vsrc, dvp, O, dvp, true);
    }
    T* out = job.out + (b * job.lq + i0) * dv;
    for (i64 r = 0; r < nq; ++r) {
        const T* o = O + r * dvp;
        T* dst = out + r * dv;
        if (!(l[r] == T(0))) {  // l = 0 only for rows with nothing to attend to; NaN propagates
            const T inv = T(1) / l[r];
            for (i64 c = 0; c < dv; ++c) dst[c] = o[c] * inv;
        } else {
            for (i64 c = 0; c < dv; ++c) dst[c] = T(0);
        }
        if (job.lse != nullptr)
            job.lse[b * job.lq + i0 + r] = l[r] == T(0) ? ninf : m[r] + std::log(l[r]);
    }
}

// --------------------------------------------------------------- backward --
// From raw scores (S = Q K^T) and dP = dO V^T: P = exp(scale S - lse) into S,
// dS = scale * P * (dP - delta) into dP.
template <class T>
void make_p_ds(const AttnJob<T>& job, i64 b, i64 i0, i64 nq, i64 j0, i64 nk, T* S, T* dP, i64 bc) {
    using V = Vec<T>;
    constexpr int W = V::W;
    finish_scores(job, b, i0, nq, j0, nk, S, bc);
    const V sc = V::set1(job.scale);
    for (i64 r = 0; r < nq; ++r) {
        T* s = S + r * bc;
        T* dp = dP + r * bc;
        const T lse = job.lse_in[b * job.lq + i0 + r];
        if (lse == neg_inf<T>()) {  // fully masked row: no probability, no gradient
            for (i64 j = 0; j < bc; ++j) {
                s[j] = T(0);
                dp[j] = T(0);
            }
            continue;
        }
        const V lv = V::set1(lse), dl = V::set1(job.delta[b * job.lq + i0 + r]);
        for (i64 j = 0; j < bc; j += W) {
            const V p = vexp(V::load(s + j) - lv);
            p.store(s + j);
            ((p * (V::load(dp + j) - dl)) * sc).store(dp + j);
        }
    }
}

template <class T>
void bwd_kv_block(const AttnJob<T>& job, i64 b, i64 kb, T* scratch, T* dq_acc) {
    const i64 d = job.d, dv = job.dv;
    const i64 bc = attn_pad<T>(kAttnBc), dp = attn_pad<T>(d), dvp = attn_pad<T>(dv);
    const i64 j0 = kb * kAttnBc;
    const i64 nk = job.lk - j0 < kAttnBc ? job.lk - j0 : kAttnBc;
    T* Kt = scratch;
    T* Vt = Kt + d * bc;
    T* Kp = Vt + dv * bc;
    T* Qp = Kp + kAttnBc * dp;
    T* dOp = Qp + kAttnBr * dp;
    T* S = dOp + kAttnBr * dvp;
    T* dP = S + kAttnBr * bc;
    T* dK = dP + kAttnBr * bc;
    T* dV = dK + kAttnBc * dp;
    const T* Kb = job.k + job.k_off[b] + j0 * d;
    const T* Vb = job.v + job.v_off[b] + j0 * dv;
    const T* Qb = job.q + job.q_off[b];
    const T* dOb = job.dout + b * job.lq * dv;
    pack_t(Kb, nk, d, Kt, bc);
    pack_t(Vb, nk, dv, Vt, bc);
    // Row-major operands are used in place when their width needs no padding
    // (same arithmetic either way).
    const T* Ksrc = d == dp ? Kb : Kp;
    if (dq_acc != nullptr && d != dp) pack_rows(Kb, nk, d, Kp, dp);
    for (i64 i = 0; i < nk * dp; ++i) dK[i] = T(0);
    for (i64 i = 0; i < nk * dvp; ++i) dV[i] = T(0);
    i64 qstart = 0;
    if (job.causal) qstart = j0 / kAttnBr * kAttnBr;  // earlier blocks see none of these keys
    for (i64 i0 = qstart; i0 < job.lq; i0 += kAttnBr) {
        const i64 nq = job.lq - i0 < kAttnBr ? job.lq - i0 : kAttnBr;
        if (job.causal && j0 >= i0 + nq) continue;  // every key after every row (as bwd_q_block)
        const T* Q = Qb + i0 * d;
        const T* dO = dOb + i0 * dv;
        gemm<T>(nq, bc, d, Q, d, 1, Kt, bc, S, bc, false);
        gemm<T>(nq, bc, dv, dO, dv, 1, Vt, bc, dP, bc, false);
        make_p_ds(job, b, i0, nq, j0, nk, S, dP, bc);
        const T* dOsrc = dOp;
        if (dv == dvp) dOsrc = dO;
        else pack_rows(dO, nq, dv, dOp, dvp);
        const T* Qsrc = Qp;
        if (d == dp) Qsrc = Q;
        else pack_rows(Q, nq, d, Qp, dp);
        gemm<T>(nk, dvp, nq, S, 1, bc, dOsrc, dvp, dV, dvp, true);  // dV += P^T dO
        gemm<T>(nk, dp, nq, dP, 1, bc, Qsrc, dp, dK, dp, true);     // dK += dS^T Q
        if (dq_acc != nullptr)
            gemm<T>(nq, dp, nk, dP, bc, 1, Ksrc, dp, dq_acc + i0 * dp, dp, true);  // dQ += dS K
    }
    T* dko = job.dk + (b * job.lk + j0) * d;
    T* dvo = job.dv_out + (b * job.lk + j0) * dv;
    for (i64 r = 0; r < nk; ++r) {
        for (i64 c = 0; c < d; ++c) dko[r * d + c] = dK[r * dp + c];
        for (i64 c = 0; c < dv; ++c) dvo[r * dv + c] = dV[r * dvp + c];
    }
}

template <class T>
void bwd_q_block(const AttnJob<T>& job, i64 b, i64 qb, T* scratch) {
    const i64 d = job.d, dv = job.dv;
    const i64 bc = attn_pad<T>(kAttnBc), dp = attn_pad<T>(d), dvp = attn_pad<T>(dv);
    const i64 i0 = qb * kAttnBr;
    const i64 nq = job.lq - i0 < kAttnBr ? job.lq - i0 : kAttnBr;
    T* Kt = scratch;
    T* Vt = Kt + d * bc;
    T* Kp = Vt + dv * bc;
    T* dQ = Kp + kAttnBc * dp;
    T* S = dQ + kAttnBr * dp + kAttnBr * dvp;
    T* dP = S + kAttnBr * bc;
    const T* Q = job.q + job.q_off[b] + i0 * d;
    const T* dO = job.dout + (b * job.lq + i0) * dv;
    for (i64 i = 0; i < nq * dp; ++i) dQ[i] = T(0);
    i64 kend = job.lk;
    if (job.causal && i0 + nq < kend) kend = i0 + nq;
    for (i64 j0 = 0; j0 < kend; j0 += kAttnBc) {
        // Same block pairs as bwd_kv_block visits (causal: it starts at the
        // query block holding row j0, i.e. skips exactly the pairs skipped here).
        const i64 nk = job.lk - j0 < kAttnBc ? job.lk - j0 : kAttnBc;
        const T* Kb = job.k + job.k_off[b] + j0 * d;
        const T* Vb = job.v + job.v_off[b] + j0 * dv;
        pack_t(Kb, nk, d, Kt, bc);
        pack_t(Vb, nk, dv, Vt, bc);
        const T* Ksrc = Kp;
        if (d == dp) Ksrc = Kb;
        else pack_rows(Kb, nk, d, Kp, dp);
        gemm<T>(nq, bc, d, Q, d, 1, Kt, bc, S, bc, false);
        gemm<T>(nq, bc, dv, dO, dv, 1, Vt, bc, dP, bc, false);
        make_p_ds(job, b, i0, nq, j0, nk, S, dP, bc);
        gemm<T>(nq, dp, nk, dP, bc, 1, Ksrc, dp, dQ, dp, true);
    }
    T* dqo = job.dq + (b * job.lq + i0) * d;
    for (i64 r = 0; r < nq; ++r)
        for (i64 c = 0; c < d; ++c) dqo[r * d + c] = dQ[r * dp + c];
}

}  // namespace kern

void attn_fwd_block(const AttnJob<float>& j, std::int64_t b, std::int64_t qb, float* s) {
    kern::fwd_block(j, b, qb, s);
}
void attn_fwd_block(const AttnJob<double>& j, std::int64_t b, std::int64_t qb, double* s) {
    kern::fwd_block(j, b, qb, s);
}
void attn_bwd_kv_block(const AttnJob<float>& j, std::int64_t b, std::int64_t kb, float* s,
                       float* dq_acc) {
    kern::bwd_kv_block(j, b, kb, s, dq_acc);
}
void attn_bwd_kv_block(const AttnJob<double>& j, std::int64_t b, std::int64_t kb, double* s,
                       double* dq_acc) {
    kern::bwd_kv_block(j, b, kb, s, dq_acc);
}
void attn_bwd_q_block(const AttnJob<float>& j, std::int64_t b, std::int64_t qb, float* s) {
    kern::bwd_q_block(j, b, qb, s);
}
void attn_bwd_q_block(const AttnJob<double>& j, std::int64_t b, std::int64_t qb, double* s) {
    kern::bwd_q_block(j, b, qb, s);
}
