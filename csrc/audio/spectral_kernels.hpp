// Spectral inner loops, compiled once per instruction set.
//
// Included *inside* a namespace by spectral.cpp (baseline), spectral_avx2.cpp
// and spectral_avx512.cpp, each built with its own -m flags, so every
// function here exists once per ISA and none can be merged across paths by
// the linker. It includes no headers (the including file provides <cstdint>,
// <cmath> and, on x86, <immintrin.h>) and instantiates no std:: templates.
//
// Every array of the FFT holds kSpecLanes frames side by side (element
// [k * 16 + lane]); the innermost loops run over the 16 lanes (or over
// contiguous runs of whole 16-lane rows), which the compiler turns into one
// AVX-512 vector, two AVX2 vectors or four SSE2 vectors of the same IEEE
// operations. No FMA contraction (-ffp-contract=off), so every path gives the
// same bits. The only hand-written intrinsics are the 16 x 16 / 8 x 8
// transposes that gather 16 windowed frames into lane order: they move
// values without arithmetic (the products are formed before the transpose,
// one per element as in the scalar loop).

// The arrays of a loop never overlap (distinct rows of the scratch): tell
// GCC's vectoriser, which otherwise gives up on loops over many pointers.
#ifndef MEDFUSE_SPEC_IVDEP
#if defined(__GNUC__) && !defined(__clang__)
#define MEDFUSE_SPEC_IVDEP _Pragma("GCC ivdep")
#else
#define MEDFUSE_SPEC_IVDEP
#endif
#endif

namespace kern {

using i64 = std::int64_t;
constexpr int L = kSpecLanes;

// ---- FFT ---------------------------------------------------------------------------

// One Stockham radix-4 pass (decimation in frequency) over rows of 16 lanes:
// x holds `4 m` groups of `s` rows, y receives them reordered. Per group p
// (twiddles w^p, w^2p, w^3p of this pass) the four inputs are runs of s
// contiguous rows, so the inner loop runs over s * 16 contiguous values.
template <class C, bool Inv>
void radix4_pass(const C* __restrict xr, const C* __restrict xi, C* __restrict yr, C* __restrict yi, i64 m,
                 i64 s, const C* __restrict tw) {
    const i64 S = s * L;
    for (i64 p = 0; p < m; ++p) {
        const C* __restrict ar = xr + p * S;
        const C* __restrict ai = xi + p * S;
        const C* __restrict br = xr + (p + m) * S;
        const C* __restrict bi = xi + (p + m) * S;
        const C* __restrict cr = xr + (p + 2 * m) * S;
        const C* __restrict ci = xi + (p + 2 * m) * S;
        const C* __restrict dr = xr + (p + 3 * m) * S;
        const C* __restrict di = xi + (p + 3 * m) * S;
        C* __restrict o0r = yr + 4 * p * S;
        C* __restrict o0i = yi + 4 * p * S;
        C* __restrict o1r = o0r + S;
        C* __restrict o1i = o0i + S;
        C* __restrict o2r = o0r + 2 * S;
        C* __restrict o2i = o0i + 2 * S;
        C* __restrict o3r = o0r + 3 * S;
        C* __restrict o3i = o0i + 3 * S;
        if (p == 0) {  // twiddles 1
            MEDFUSE_SPEC_IVDEP
            for (i64 i = 0; i < S; ++i) {
                const C apcr = ar[i] + cr[i], apci = ai[i] + ci[i];
                const C amcr = ar[i] - cr[i], amci = ai[i] - ci[i];
                const C bpdr = br[i] + dr[i], bpdi = bi[i] + di[i];
                const C bmdr = br[i] - dr[i], bmdi = bi[i] - di[i];
                // forward: j = i (b - d) = (-bmdi, bmdr); inverse: -i (b - d)
                const C jr = Inv ? bmdi : -bmdi, ji = Inv ? -bmdr : bmdr;
                o0r[i] = apcr + bpdr;
                o0i[i] = apci + bpdi;
                o1r[i] = amcr - jr;
                o1i[i] = amci - ji;
                o2r[i] = apcr - bpdr;
                o2i[i] = apci - bpdi;
                o3r[i] = amcr + jr;
                o3i[i] = amci + ji;
            }
            continue;
        }
        const C w1r = tw[6 * p], w1i = Inv ? -tw[6 * p + 1] : tw[6 * p + 1];
        const C w2r = tw[6 * p + 2], w2i = Inv ? -tw[6 * p + 3] : tw[6 * p + 3];
        const C w3r = tw[6 * p + 4], w3i = Inv ? -tw[6 * p + 5] : tw[6 * p + 5];
        MEDFUSE_SPEC_IVDEP
        for (i64 i = 0; i < S; ++i) {
            const C apcr = ar[i] + cr[i], apci = ai[i] + ci[i];
            const C amcr = ar[i] - cr[i], amci = ai[i] - ci[i];
            const C bpdr = br[i] + dr[i], bpdi = bi[i] + di[i];
            const C bmdr = br[i] - dr[i], bmdi = bi[i] - di[i];
            const C jr = Inv ? bmdi : -bmdi, ji = Inv ? -bmdr : bmdr;
            o0r[i] = apcr + bpdr;
            o0i[i] = apci + bpdi;
            const C u1r = amcr - jr, u1i = amci - ji;
            const C u2r = apcr - bpdr, u2i = apci - bpdi;
            const C u3r = amcr + jr, u3i = amci + ji;
            o1r[i] = u1r * w1r - u1i * w1i;
            o1i[i] = u1r * w1i + u1i * w1r;
            o2r[i] = u2r * w2r - u2i * w2i;
            o2i[i] = u2r * w2i + u2i * w2r;
            o3r[i] = u3r * w3r - u3i * w3i;
            o3i[i] = u3r * w3i + u3i * w3r;
        }
    }
}

// Power-of-two complex FFT of 16 lanes, natural order in and out (Stockham:
// ping-pong between (ar, ai) and (br, bi)). Returns the buffer holding the
// result through rr / ri. Inverse: conjugated twiddles, no scaling.
template <class C, bool Inv>
void fft_pow2(C* ar, C* ai, C* br, C* bi, const FftTab<C>& f, C** rr, C** ri) {
    i64 n = f.big, s = 1;
    const C* tw = f.tw4;
    C *xr = ar, *xi = ai, *yr = br, *yi = bi;
    while (n >= 4) {
        const i64 m = n / 4;
        radix4_pass<C, Inv>(xr, xi, yr, yi, m, s, tw);
        tw += 6 * m;
        C* t = xr;
        xr = yr;
        yr = t;
        t = xi;
        xi = yi;
        yi = t;
        n = m;
        s *= 4;
    }
    if (n == 2) {
        const i64 S = s * L;
        const C* __restrict pr = xr;
        const C* __restrict pi = xi;
        C* __restrict qr = yr;
        C* __restrict qi = yi;
        MEDFUSE_SPEC_IVDEP
        for (i64 i = 0; i < S; ++i) {
            const C a = pr[i], b = pr[i + S], c = pi[i], d = pi[i + S];
            qr[i] = a + b;
            qr[i + S] = a - b;
            qi[i] = c + d;
            qi[i + S] = c - d;
        }
        xr = yr;
        xi = yi;
    }
    *rr = xr;
    *ri = xi;
}

// Row q of the L interleaved transforms times the complex number t[q].
template <class C>
inline void mul_rows(C* __restrict re, C* __restrict im, const C* t_re, const C* t_im, i64 rows) {
    for (i64 q = 0; q < rows; ++q) {
        const C cr = t_re[q], ci = t_im[q];
        C* __restrict xr = re + q * L;
        C* __restrict xi = im + q * L;
        MEDFUSE_SPEC_IVDEP
        for (int l = 0; l < L; ++l) {
            const C a = xr[l], b = xi[l];
            xr[l] = a * cr - b * ci;
            xi[l] = a * ci + b * cr;
        }
    }
}

// Complex FFT of length f.m held in (ar, ai)[0, m) (buffers of f.big rows;
// rows >= m zero for Bluestein); (br, bi) is work space. The result is in
// *rr / *ri (one of the two buffers).
template <class C>
void fft_complex(C* ar, C* ai, C* br, C* bi, const FftTab<C>& f, C** rr, C** ri) {
    if (!f.bluestein) {
        fft_pow2<C, false>(ar, ai, br, bi, f, rr, ri);
        return;
    }
    // Bluestein: X_k = c_k sum_j (a_j c_j) conj(c_{k-j}), c_j = exp(-pi i j^2 / m),
    // the convolution through a power-of-two transform (rows >= m are zero).
    mul_rows(ar, ai, f.ch_re, f.ch_im, f.m);
    C *xr, *xi;
    fft_pow2<C, false>(ar, ai, br, bi, f, &xr, &xi);
    mul_rows(xr, xi, f.bk_re, f.bk_im, f.big);
    C* wr = xr == ar ? br : ar;
    C* wi = xr == ar ? bi : ai;
    fft_pow2<C, true>(xr, xi, wr, wi, f, rr, ri);
    mul_rows(*rr, *ri, f.ch_re, f.ch_im, f.m);
}

// ---- framing: 16 windowed frames into lane order --------------------------------------

// Generic: re[q * 16 + l] = frame_l[2q] w[2q], im[...] = frame_l[2q + 1] w[2q + 1]
// (half) or re = frame_l[q] w[q], im = 0 for q in [q0, m).
template <class T, class C>
void load_scalar(const T* const* fr, const C* w, bool half, i64 q0, i64 m, C* __restrict re, C* __restrict im) {
    for (int l = 0; l < L; ++l) {
        const T* x = fr[l];
        if (half) {
            for (i64 q = q0; q < m; ++q) {
                re[q * L + l] = static_cast<C>(x[2 * q]) * w[2 * q];
                im[q * L + l] = static_cast<C>(x[2 * q + 1]) * w[2 * q + 1];
            }
        } else {
            for (i64 q = q0; q < m; ++q) {
                re[q * L + l] = static_cast<C>(x[q]) * w[q];
                im[q * L + l] = C(0);
            }
        }
    }
}

template <class T, class C>
void load_frames(const T* const* fr, const C* w, bool half, i64 m, C* re, C* im) {
    load_scalar(fr, w, half, 0, m, re, im);
}

#if defined(__AVX512F__)
// Unpacks and shuffles GCC 12 accepts (common/avx512_compat.hpp).
using compat512::shuffle_f32x4;
using compat512::unpackhi_pd;
using compat512::unpackhi_ps;
using compat512::unpacklo_pd;
using compat512::unpacklo_ps;

// float frames, even n: 8 complex samples (16 floats) of 16 frames per step,
// a 16 x 16 transpose turns frame-major into lane-major rows.
inline void load_frames(const float* const* fr, const float* w, bool half, i64 m, float* re, float* im) {
    if (!half) {
        load_scalar(fr, w, half, 0, m, re, im);
        return;
    }
    const i64 m8 = m / 8 * 8;
    for (i64 q0 = 0; q0 < m8; q0 += 8) {
        const __m512 wv = _mm512_loadu_ps(w + 2 * q0);
        __m512 r[16];
        for (int l = 0; l < 16; ++l) r[l] = _mm512_mul_ps(_mm512_loadu_ps(fr[l] + 2 * q0), wv);
        // 16 x 16 transpose: unpack pairs, then 64-bit pairs, then 128-bit lanes twice.
        __m512 t[16];
        for (int l = 0; l < 16; l += 2) {
            t[l] = unpacklo_ps(r[l], r[l + 1]);
            t[l + 1] = unpackhi_ps(r[l], r[l + 1]);
        }
        for (int l = 0; l < 16; l += 4) {
            r[l] = unpacklo_pd(t[l], t[l + 2]);
            r[l + 1] = unpackhi_pd(t[l], t[l + 2]);
            r[l + 2] = unpacklo_pd(t[l + 1], t[l + 3]);
            r[l + 3] = unpackhi_pd(t[l + 1], t[l + 3]);
        }
        // r[4g + j] holds, per 128-bit block c, element 4c + j of frames 4g..4g+3.
        for (int g = 0; g < 4; g += 2) {
            for (int j = 0; j < 4; ++j) {
                t[4 * g + j] = shuffle_f32x4<0x88>(r[4 * g + j], r[4 * (g + 1) + j]);
                t[4 * (g + 1) + j] = shuffle_f32x4<0xdd>(r[4 * g + j], r[4 * (g + 1) + j]);
            }
        }
        // t[0..3]: blocks (c0, c2) of frames 0-3 | (c0, c2) of frames 4-7; t[4..7]: (c1, c3) ...
        for (int j = 0; j < 4; ++j) {
            const __m512 c0 = shuffle_f32x4<0x88>(t[j], t[8 + j]);       // element j of c0
            const __m512 c2 = shuffle_f32x4<0xdd>(t[j], t[8 + j]);       // element 8 + j
            const __m512 c1 = shuffle_f32x4<0x88>(t[4 + j], t[12 + j]);  // element 4 + j
            const __m512 c3 = shuffle_f32x4<0xdd>(t[4 + j], t[12 + j]);  // element 12 + j
            // element e of the 16 floats is sample 2 q0 + e: row q0 + e / 2, re if e even
            const int es[4] = {j, 4 + j, 8 + j, 12 + j};
            const __m512 cs[4] = {c0, c1, c2, c3};
            for (int u = 0; u < 4; ++u) {
                const int e = es[u];
                float* dst = (e % 2 == 0 ? re : im) + (q0 + e / 2) * L;
                _mm512_storeu_ps(dst, cs[u]);
            }
        }
    }
    if (m8 < m) load_scalar(fr, w, half, m8, m, re, im);
}
#elif defined(__AVX2__)
// float frames, even n: 4 complex samples (8 floats) of 8 frames per 8 x 8
// transpose, twice per 16 lanes.
inline void load_frames(const float* const* fr, const float* w, bool half, i64 m, float* re, float* im) {
    if (!half) {
        load_scalar(fr, w, half, 0, m, re, im);
        return;
    }
    const i64 m4 = m / 4 * 4;
    for (i64 q0 = 0; q0 < m4; q0 += 4) {
        const __m256 wv = _mm256_loadu_ps(w + 2 * q0);
        for (int h = 0; h < 16; h += 8) {
            __m256 r[8], t[8];
            for (int l = 0; l < 8; ++l) r[l] = _mm256_mul_ps(_mm256_loadu_ps(fr[h + l] + 2 * q0), wv);
            for (int l = 0; l < 8; l += 2) {
                t[l] = _mm256_unpacklo_ps(r[l], r[l + 1]);
                t[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]);
            }
            for (int l = 0; l < 8; l += 4) {
                r[l] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t[l]), _mm256_castps_pd(t[l + 2])));
                r[l + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t[l]), _mm256_castps_pd(t[l + 2])));
                r[l + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t[l + 1]), _mm256_castps_pd(t[l + 3])));
                r[l + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t[l + 1]), _mm256_castps_pd(t[l + 3])));
            }
            // r[4g + j]: per 128-bit half c, element 4c + j of frames 4g..4g+3
            for (int j = 0; j < 4; ++j) {
                const __m256 lo = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);  // element j
                const __m256 hi = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);  // element 4 + j
                float* d0 = (j % 2 == 0 ? re : im) + (q0 + j / 2) * L + h;
                float* d1 = (j % 2 == 0 ? re : im) + (q0 + 2 + j / 2) * L + h;
                _mm256_storeu_ps(d0, lo);
                _mm256_storeu_ps(d1, hi);
            }
        }
    }
    if (m4 < m) load_scalar(fr, w, half, m4, m, re, im);
}
#endif

// Bytes of the path's own vectors (see Native below).
#if defined(__AVX512F__)
constexpr int kNativeBytes = 64;
#elif defined(__AVX2__)
constexpr int kNativeBytes = 32;
#else
constexpr int kNativeBytes = 16;
#endif

// ---- dB ----------------------------------------------------------------------------

// 10 log10(max(amin, v)) - ref_db for 16 lanes. float32: our own natural
// logarithm in plain lane arithmetic (exponent from the bits; mantissa m in
// [sqrt(1/2), sqrt(2)); ln m = 2 atanh(u), u = (m - 1) / (m + 1), |u| <= 0.172,
// by its odd series to u^11), so it vectorises and gives the same bits on
// every path; a few ulp from log10f. float64: libm's log10.
inline void db_lanes(const float* __restrict v, float* __restrict out, double amin, double ref_db) {
    // the path's own vector width, NF lanes at a time (see Native)
    typedef float VF __attribute__((vector_size(kNativeBytes)));
    typedef int VI __attribute__((vector_size(kNativeBytes)));
    typedef unsigned int VU __attribute__((vector_size(kNativeBytes)));
    constexpr int NF = kNativeBytes / static_cast<int>(sizeof(float));
    for (int o = 0; o < L; o += NF) {
        const VF zero = {};
        const VF a = zero + static_cast<float>(amin);
        VF x;
        __builtin_memcpy(&x, v + o, sizeof(x));
        VF y = x > a ? x : a;
        const VI sub = y < 1.17549435e-38f;  // subnormal (-1 / 0): scale into the normal range
        y = sub ? y * 8388608.0f : y;
        VI e = sub & -23;
        VU u;
        __builtin_memcpy(&u, &y, sizeof(u));
        e += __builtin_convertvector((u >> 23) & 0xffu, VI) - 127;
        u = (u & 0x7fffffu) | 0x3f800000u;
        VF mm;  // mantissa in [1, 2)
        __builtin_memcpy(&mm, &u, sizeof(mm));
        const VI up = mm > 1.41421356f;
        mm = up ? mm * 0.5f : mm;
        e -= up;  // up is -1 where the mantissa was halved
        const VF fe = __builtin_convertvector(e, VF);
        const VF t = (mm - 1.0f) / (mm + 1.0f);
        const VF t2 = t * t;
        const VF p = 2.0f + t2 * (0.666666667f + t2 * (0.4f + t2 * (0.285714286f + t2 * (0.222222222f + t2 * 0.181818182f))));
        // ln 2 = 0.693359375 (exact in 9 bits) - 2.12194440e-4
        const VF ln = fe * 0.693359375f + (t * p + fe * -2.12194440e-4f);
        VF res = ln * 4.34294482f - static_cast<float>(ref_db);  // 10 / ln 10
        // +inf (an overflowed band) and NaN stay what they are, as in numpy
        const VI odd = ~(x <= 3.40282347e38f) & ~(x < a);
        res = odd ? x : res;
        __builtin_memcpy(out + o, &res, sizeof(res));
    }
}

inline void db_lanes(const double* __restrict v, double* __restrict out, double amin, double ref_db) {
    for (int l = 0; l < L; ++l) out[l] = 10.0 * ::log10(v[l] > amin || v[l] != v[l] ? v[l] : amin) - ref_db;
}

template <class C>
inline C power_of(C p, double power) {
    // p = |X|^2
    if (power == 1.0) return static_cast<C>(::sqrt(static_cast<double>(p)));
    return static_cast<C>(::pow(::sqrt(static_cast<double>(p)), power));
}

// ---- one block of 16 frames ------------------------------------------------------------

// The 16 lanes of a row go through the path's own vector width, NL lanes at a
// time (AVX-512: one vector of 16 floats; AVX2: two of 8; SSE2: four of 4),
// each lane with the same IEEE operations in the same order on every path.
// (A 16-lane GCC vector on AVX2 made GCC 12 build every scalar broadcast, as
// in c * v, from 16 scalar stores and a reload: store-forwarding stalls made
// the AVX2 spectrum 3-4x slower than AVX-512's.) Chunks move in and out
// through memcpy (unaligned loads/stores); no vector crosses a function call.
template <class C>
struct Native {
    typedef C type __attribute__((vector_size(kNativeBytes)));
    static constexpr int lanes = kNativeBytes / static_cast<int>(sizeof(C));
};
#define MEDFUSE_SPEC_LD(v, p) __builtin_memcpy(&(v), (p), sizeof(v))
#define MEDFUSE_SPEC_ST(p, v) __builtin_memcpy((p), &(v), sizeof(v))

// float32 results computed in float64: x - x of each value after the cast
// to T (a finite double can exceed float's range).
template <class T, class C>
inline void check_cast(const C* v, T& acc) {
    for (int l = 0; l < L; ++l) {
        const T t = static_cast<T>(v[l]);
        acc = acc + (t - t);
    }
}

template <class V>
inline bool all_zero(const V& v) {
    bool ok = true;
    for (std::size_t l = 0; l < sizeof(V) / sizeof(v[0]); ++l) ok = ok && v[l] == 0;
    return ok;
}

template <class T, class C>
double spec_block_impl(const SpecJob<T, C>& j, i64 b, i64 t0, C* s) {
    typedef typename Native<C>::type V;
    constexpr int NL = Native<C>::lanes;
    static_assert(L % NL == 0, "the lanes of a row split into whole vectors");
    const FftTab<C>& f = j.fft;
    const i64 big = f.big, m = f.m, nf = j.n_freq, T_ = j.n_frames;
    C* ar = s;
    C* ai = s + big * L;
    C* br = s + 2 * big * L;
    C* bi = s + 3 * big * L;
    C* pw = s + 4 * big * L;
    const i64 nl = (T_ - t0) < L ? (T_ - t0) : L;

    // Frames of the block; lanes past the last frame repeat it (never written out).
    const T* xb = j.x + b * j.len;
    const T* fr[L];
    for (int l = 0; l < L; ++l) fr[l] = xb + (t0 + (l < nl ? l : nl - 1)) * j.hop;
    load_frames(fr, j.window, f.half, m, ar, ai);
    if (f.bluestein)
        for (i64 i = m * L; i < big * L; ++i) ar[i] = ai[i] = C(0);
    C *zr, *zi;
    fft_complex(ar, ai, br, bi, f, &zr, &zi);

    // Spectrum bin k of the real transform. half: X_k = (Z_k + conj Z_{m-k}) / 2
    // + W^k (Z_k - conj Z_{m-k}) / (2i), W = exp(-2 pi i / n); else X_k = Z_k.
    const bool cplx = j.mode == SpecMode::complex_out;
    const C h = C(0.5);
    // chk stays 0 while every value written is finite (x - x is NaN for inf / NaN);
    // lanes past the last frame repeat it, so they may take part.
    V chk = {};
    T tchk = T(0);
    const bool narrow = sizeof(T) < sizeof(C);
    C ar_[L], ai_[L];
    for (i64 k = 0; k < nf; ++k) {
        const i64 ka = f.half ? (k == m ? 0 : k) : k;
        const i64 kb = k == 0 ? 0 : m - k;
        const C c = f.half ? f.post_re[k] : C(0), sn = f.half ? f.post_im[k] : C(0);
        for (int o = 0; o < L; o += NL) {
            V xr, xi;
            if (f.half) {
                V pr, pi, qr, qi;
                MEDFUSE_SPEC_LD(pr, zr + ka * L + o);
                MEDFUSE_SPEC_LD(pi, zi + ka * L + o);
                MEDFUSE_SPEC_LD(qr, zr + kb * L + o);
                MEDFUSE_SPEC_LD(qi, zi + kb * L + o);
                const V er = (pr + qr) * h, ei = (pi - qi) * h;
                const V dr = pr - qr, di = pi + qi;
                const V vr = di * h, vi = -dr * h;  // (Z_k - conj Z_{m-k}) / (2i)
                xr = er + (c * vr - sn * vi);
                xi = ei + (c * vi + sn * vr);
            } else {
                MEDFUSE_SPEC_LD(xr, zr + ka * L + o);
                MEDFUSE_SPEC_LD(xi, zi + ka * L + o);
            }
            if (cplx) {
                chk = chk + (xr - xr) + (xi - xi);
                MEDFUSE_SPEC_ST(ar_ + o, xr);
                MEDFUSE_SPEC_ST(ai_ + o, xi);
            } else {
                const V p = xr * xr + xi * xi;
                MEDFUSE_SPEC_ST(pw + k * L + o, p);
            }
        }
        if (cplx) {
            if (narrow) {
                check_cast(ar_, tchk);
                check_cast(ai_, tchk);
            }
            T* out = j.out + ((b * nf + k) * T_ + t0) * 2;
            if (nl == L) {
                for (int l = 0; l < L; ++l) {
                    out[2 * l] = static_cast<T>(ar_[l]);
                    out[2 * l + 1] = static_cast<T>(ai_[l]);
                }
            } else {
                for (i64 l = 0; l < nl; ++l) {
                    out[2 * l] = static_cast<T>(ar_[l]);
                    out[2 * l + 1] = static_cast<T>(ai_[l]);
                }
            }
        }
    }
    double best = -HUGE_VAL;
    if (cplx) return all_zero(chk) && tchk == T(0) ? best : NAN;
    if (j.power != 2.0)
        for (i64 i = 0; i < nf * L; ++i) pw[i] = power_of(pw[i], j.power);
    if (j.mode == SpecMode::power) {
        for (i64 k = 0; k < nf; ++k) {
            T* out = j.out + (b * nf + k) * T_ + t0;
            for (int o = 0; o < L; o += NL) {
                V p;
                MEDFUSE_SPEC_LD(p, pw + k * L + o);
                chk = chk + (p - p);
            }
            if (narrow) check_cast(pw + k * L, tchk);
            for (i64 l = 0; l < nl; ++l) out[l] = static_cast<T>(pw[k * L + l]);
        }
        return all_zero(chk) && tchk == T(0) ? best : NAN;
    }
    // Mel bands: filter mi is non-zero on bins [mel_lo, mel_hi) only.
    C acc_[L], dbv[L], mx[L];
    for (int l = 0; l < L; ++l) mx[l] = static_cast<C>(-HUGE_VAL);
    for (i64 mi = 0; mi < j.n_mels; ++mi) {
        const C* fb = j.mel + j.mel_off[mi];  // weights of bins [lo, hi)
        const i64 lo = j.mel_lo[mi];
        for (int o = 0; o < L; o += NL) {
            V acc = {};
            for (i64 k = lo; k < j.mel_hi[mi]; ++k) {
                V p;
                MEDFUSE_SPEC_LD(p, pw + k * L + o);
                acc = acc + fb[k - lo] * p;
            }
            MEDFUSE_SPEC_ST(acc_ + o, acc);
            chk = chk + (acc - acc);
        }
        if (j.mode == SpecMode::mel) {
            if (narrow) check_cast(acc_, tchk);
            T* out = j.out + (b * j.n_mels + mi) * T_ + t0;
            for (i64 l = 0; l < nl; ++l) out[l] = static_cast<T>(acc_[l]);
        } else {
            db_lanes(acc_, dbv, j.amin, j.ref_db);
            C* out = j.db + (b * j.n_mels + mi) * T_ + t0;
            if (nl == L)
                __builtin_memcpy(out, dbv, sizeof(dbv));
            else
                for (i64 l = 0; l < nl; ++l) out[l] = dbv[l];
            for (int o = 0; o < L; o += NL) {
                V d, x;
                MEDFUSE_SPEC_LD(d, dbv + o);
                MEDFUSE_SPEC_LD(x, mx + o);
                x = d > x ? d : x;
                MEDFUSE_SPEC_ST(mx + o, x);
            }
        }
    }
    if (!all_zero(chk) || tchk != T(0)) return NAN;  // a band overflowed (mel; mfcc: its dB would be inf)
    // exact maximum over the block's real frames
    for (i64 l = 0; l < nl; ++l) best = static_cast<double>(mx[l]) > best ? static_cast<double>(mx[l]) : best;
    return best;
}

template <class T, class C>
bool dct_block_impl(const SpecJob<T, C>& j, i64 b, i64 t0, double floor, C* s) {
    typedef typename Native<C>::type V;
    constexpr int NL = Native<C>::lanes;
    const i64 T_ = j.n_frames, nm = j.n_mels;
    const i64 nl = (T_ - t0) < L ? (T_ - t0) : L;
    const C fl = static_cast<C>(floor);
    // The block's dB values clipped at the floor, lane order (n_mels x 16).
    C* v = s;
    for (i64 mi = 0; mi < nm; ++mi) {
        const C* src = j.db + (b * nm + mi) * T_ + t0;
        C row[L] = {};
        if (nl == L)
            __builtin_memcpy(row, src, sizeof(row));
        else
            for (i64 l = 0; l < nl; ++l) row[l] = src[l];
        for (int o = 0; o < L; o += NL) {
            V d;
            MEDFUSE_SPEC_LD(d, row + o);
            d = d > fl ? d : fl;
            MEDFUSE_SPEC_ST(v + mi * L + o, d);
        }
    }
    C out[L];
    V chk = {};
    T tchk = T(0);
    // Four coefficients at a time: four independent sums (each in mel order)
    // instead of one chain of dependent additions.
    for (i64 k0 = 0; k0 < j.n_mfcc; k0 += 4) {
        const i64 nk = j.n_mfcc - k0 < 4 ? j.n_mfcc - k0 : 4;
        const C* d0 = j.dct + k0 * nm;
        const C* d1 = nk > 1 ? d0 + nm : d0;
        const C* d2 = nk > 2 ? d0 + 2 * nm : d0;
        const C* d3 = nk > 3 ? d0 + 3 * nm : d0;
        C res[4][L];
        for (int o = 0; o < L; o += NL) {
            V acc[4] = {};
            for (i64 mi = 0; mi < nm; ++mi) {
                V x;
                MEDFUSE_SPEC_LD(x, v + mi * L + o);
                acc[0] = acc[0] + d0[mi] * x;
                acc[1] = acc[1] + d1[mi] * x;
                acc[2] = acc[2] + d2[mi] * x;
                acc[3] = acc[3] + d3[mi] * x;
            }
            for (i64 q = 0; q < nk; ++q) {
                MEDFUSE_SPEC_ST(res[q] + o, acc[q]);
                chk = chk + (acc[q] - acc[q]);
            }
        }
        for (i64 q = 0; q < nk; ++q) {
            __builtin_memcpy(out, res[q], sizeof(out));
            if (sizeof(T) < sizeof(C)) check_cast(out, tchk);
            T* o = j.out + (b * j.n_mfcc + k0 + q) * T_ + t0;
            for (i64 l = 0; l < nl; ++l) o[l] = static_cast<T>(out[l]);
        }
    }
    return all_zero(chk) && tchk == T(0);  // false: a coefficient is not finite
}

#undef MEDFUSE_SPEC_LD
#undef MEDFUSE_SPEC_ST

}  // namespace kern

double spec_block(const SpecJob<float, float>& j, std::int64_t b, std::int64_t t0, float* s) {
    return kern::spec_block_impl(j, b, t0, s);
}
double spec_block(const SpecJob<float, double>& j, std::int64_t b, std::int64_t t0, double* s) {
    return kern::spec_block_impl(j, b, t0, s);
}
double spec_block(const SpecJob<double, double>& j, std::int64_t b, std::int64_t t0, double* s) {
    return kern::spec_block_impl(j, b, t0, s);
}
bool dct_block(const SpecJob<float, float>& j, std::int64_t b, std::int64_t t0, double floor, float* s) {
    return kern::dct_block_impl(j, b, t0, floor, s);
}
bool dct_block(const SpecJob<float, double>& j, std::int64_t b, std::int64_t t0, double floor, double* s) {
    return kern::dct_block_impl(j, b, t0, floor, s);
}
bool dct_block(const SpecJob<double, double>& j, std::int64_t b, std::int64_t t0, double floor, double* s) {
    return kern::dct_block_impl(j, b, t0, floor, s);
}
