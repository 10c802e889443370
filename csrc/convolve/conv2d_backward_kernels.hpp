// conv2d gradient loops, compiled once per ISA (included inside the namespace
// medfuse::<isa> by conv2d_backward*.cpp after <cstdint>; the AVX2 / AVX-512
// files also after "common/simd_transpose.hpp"). Plain loops the
// vectorizer turns into SIMD code; no FMA contraction (-ffp-contract=off), so
// each path has one fixed rounding order.

namespace {

using i64 = std::int64_t;
constexpr int LANES = conv2d_bwd_detail::kLanes;

// Output columns t with 0 <= wi0 + t * s < W, as [lo, hi) within [0, len).
inline void valid_cols(i64 wi0, i64 s, i64 W, i64 len, i64& lo, i64& hi) {
    lo = wi0 >= 0 ? 0 : (-wi0 + s - 1) / s;
    hi = wi0 > W - 1 ? 0 : (W - 1 - wi0) / s + 1;
    if (hi > len) hi = len;
    if (lo > hi) lo = hi;
}

// tmp rows r = 0..nk-1 (length len, rows `len` apart) = sum_o wt[(k0 + r) * cog + o] * gy[o * P + q0 + q]:
// a 4 x 16 register tile accumulated over o in order.
template <class T>
void dcol_rows(const T* wt, const T* gy, i64 cog, i64 P, i64 q0, i64 len, i64 k0, int nk, T* tmp) {
    constexpr int NK = 4;
    i64 q = 0;
    for (; q + LANES <= len; q += LANES) {
        T acc[NK][LANES] = {};
        for (i64 o = 0; o < cog; ++o) {
            const T* g = gy + o * P + q0 + q;
            for (int r = 0; r < NK; ++r) {
                const T a = r < nk ? wt[(k0 + r) * cog + o] : T(0);
                for (int j = 0; j < LANES; ++j) acc[r][j] = acc[r][j] + a * g[j];
            }
        }
        for (int r = 0; r < nk; ++r)
            for (int j = 0; j < LANES; ++j) tmp[r * len + q + j] = acc[r][j];
    }
    for (; q < len; ++q)
        for (int r = 0; r < nk; ++r) {
            T acc = T(0);
            for (i64 o = 0; o < cog; ++o) acc = acc + wt[(k0 + r) * cog + o] * gy[o * P + q0 + q];
            tmp[r * len + q] = acc;
        }
}

// tmp: 4 * min(rows, HO) * WO + K * cog elements (pixel rows, then the transposed weights).
template <class T>
void grad_input_impl(const Conv2dGradJob<T>& job, i64 img, i64 g, T* tmp) {
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 H = job.h, W = job.wd, HO = job.ho, WO = job.wo, P = HO * WO;
    const i64 taps = job.kh * job.kw, K = cg * taps;
    T* gx = job.gx + (img * job.c + g * cg) * H * W;
    for (i64 i = 0; i < cg * H * W; ++i) gx[i] = T(0);
    const T* gy = job.gy + (img * job.co + g * cog) * P;
    const T* wg = job.w + g * cog * K;
    i64 rows = conv2d_bwd_detail::kRowChunk / WO;
    if (rows < 1) rows = 1;
    if (rows > HO) rows = HO;
    T* wt = tmp + 4 * rows * WO;
    for (i64 o = 0; o < cog; ++o)
        for (i64 k = 0; k < K; ++k) wt[k * cog + o] = wg[o * K + k];
    for (i64 r0 = 0; r0 < HO; r0 += rows) {
        const i64 r1 = r0 + rows < HO ? r0 + rows : HO;
        const i64 q0 = r0 * WO, len = (r1 - r0) * WO;
        for (i64 k0 = 0; k0 < K; k0 += 4) {
            const int nk = static_cast<int>(K - k0 < 4 ? K - k0 : 4);
            dcol_rows(wt, gy, cog, P, q0, len, k0, nk, tmp);
            for (int rr = 0; rr < nk; ++rr) {
                const i64 k = k0 + rr;
                const i64 ci = k / taps, ky = (k % taps) / job.kw, kx = k % job.kw;
                // scatter-add into the input plane
                T* plane = gx + ci * H * W;
                const i64 wi0 = -job.pw + kx * job.dw;
                i64 lo, hi;
                valid_cols(wi0, job.sw, W, WO, lo, hi);
                for (i64 r = r0; r < r1; ++r) {
                    const i64 hrow = r * job.sh - job.ph + ky * job.dh;
                    if (hrow < 0 || hrow >= H) continue;
                    T* dst = plane + hrow * W;
                    const T* src = tmp + rr * len + (r - r0) * WO;
                    if (job.sw == 1) {
                        T* d1 = dst + (wi0 + lo);
                        const T* s1 = src + lo;
                        for (i64 t = 0; t < hi - lo; ++t) d1[t] = d1[t] + s1[t];
                    } else {
                        for (i64 t = lo; t < hi; ++t) dst[wi0 + t * job.sw] = dst[wi0 + t * job.sw] + src[t];
                    }
                }
            }
        }
    }
}

// Output channels [o0, o1) of one group: acc holds taps * P + (o1 - o0) * K scratch values.
template <class T>
void grad_weight_impl(const Conv2dGradJob<T>& job, i64 o0, i64 o1, T* acc) {
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 H = job.h, W = job.wd, HO = job.ho, WO = job.wo, P = HO * WO;
    const i64 taps = job.kh * job.kw, K = cg * taps;
    const i64 g = o0 / cog, nb = o1 - o0;
    if (job.gb) {
        for (i64 o = o0; o < o1; ++o) {
            T lane[LANES] = {};
            for (i64 img = 0; img < job.n; ++img) {
                const T* gy = job.gy + (img * job.co + o) * P;
                i64 p = 0;
                for (; p + LANES <= P; p += LANES)
                    for (int j = 0; j < LANES; ++j) lane[j] = lane[j] + gy[p + j];
                for (int j = 0; p < P; ++p, ++j) lane[j] = lane[j] + gy[p];
            }
            T s = T(0);
            for (int j = 0; j < LANES; ++j) s = s + lane[j];
            job.gb[o] = s;
        }
    }
    if (!job.gw) return;
    // acc: the (taps x P) im2col rows of one input channel of one image, then the sums.
    T* col = acc;
    T* sums = acc + taps * P;
    for (i64 i = 0; i < nb * K; ++i) sums[i] = T(0);
    for (i64 img = 0; img < job.n; ++img) {
        for (i64 ci = 0; ci < cg; ++ci) {
            const T* plane = job.x + (img * job.c + g * cg + ci) * H * W;
            for (i64 ky = 0; ky < job.kh; ++ky)
                for (i64 kx = 0; kx < job.kw; ++kx) {
                    T* row = col + (ky * job.kw + kx) * P;
                    const i64 wi0 = -job.pw + kx * job.dw;
                    i64 lo, hi;
                    valid_cols(wi0, job.sw, W, WO, lo, hi);
                    for (i64 r = 0; r < HO; ++r) {
                        T* d = row + r * WO;
                        const i64 hrow = r * job.sh - job.ph + ky * job.dh;
                        if (hrow < 0 || hrow >= H) {
                            for (i64 t = 0; t < WO; ++t) d[t] = T(0);
                            continue;
                        }
                        const T* xr = plane + hrow * W;
                        for (i64 t = 0; t < lo; ++t) d[t] = T(0);
                        if (job.sw == 1) {
                            for (i64 t = lo; t < hi; ++t) d[t] = xr[wi0 + t];
                        } else {
                            for (i64 t = lo; t < hi; ++t) d[t] = xr[wi0 + t * job.sw];
                        }
                        for (i64 t = hi; t < WO; ++t) d[t] = T(0);
                    }
                }
            // sums[ob, ci, tap] += one 16-lane dot over P per (image, input channel), in order
            for (i64 tp = 0; tp < taps; ++tp) {
                const T* c = col + tp * P;
                for (i64 ob0 = 0; ob0 < nb; ob0 += 4) {
                    const int nob = static_cast<int>(nb - ob0 < 4 ? nb - ob0 : 4);
                    T lane[4][LANES] = {};
                    const T* gys[4];
                    for (int u = 0; u < 4; ++u)
                        gys[u] = job.gy + (img * job.co + o0 + ob0 + (u < nob ? u : 0)) * P;
                    i64 p = 0;
                    for (; p + LANES <= P; p += LANES)
                        for (int u = 0; u < 4; ++u)
                            for (int j = 0; j < LANES; ++j) lane[u][j] = lane[u][j] + gys[u][p + j] * c[p + j];
                    for (int j = 0; p < P; ++p, ++j)
                        for (int u = 0; u < 4; ++u) lane[u][j] = lane[u][j] + gys[u][p] * c[p];
                    for (int u = 0; u < nob; ++u) {
                        T s = T(0);
                        for (int j = 0; j < LANES; ++j) s = s + lane[u][j];
                        T& dst = sums[(ob0 + u) * K + ci * taps + tp];
                        dst = dst + s;
                    }
                }
            }
        }
    }
    for (i64 ob = 0; ob < nb; ++ob)
        for (i64 k = 0; k < K; ++k) job.gw[(o0 + ob) * K + k] = sums[ob * K + k];
}

}  // namespace

void conv2d_grad_input(const Conv2dGradJob<float>& job, i64 img, i64 g, float* tmp) {
    grad_input_impl(job, img, g, tmp);
}
void conv2d_grad_input(const Conv2dGradJob<double>& job, i64 img, i64 g, double* tmp) {
    grad_input_impl(job, img, g, tmp);
}
void conv2d_grad_weight(const Conv2dGradJob<float>& job, i64 o0, i64 o1, float* acc) {
    grad_weight_impl(job, o0, o1, acc);
}
void conv2d_grad_weight(const Conv2dGradJob<double>& job, i64 o0, i64 o1, double* acc) {
    grad_weight_impl(job, o0, o1, acc);
}

// y[img, o] = sum over k = (c, ky, kx) in order of w[o, k] x[...], then + bias.
void conv2d_forward_direct(const Conv2dGradJob<double>& job, i64 img, i64 o) {
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 H = job.h, W = job.wd, HO = job.ho, WO = job.wo, P = HO * WO;
    const i64 taps = job.kh * job.kw, K = cg * taps;
    const i64 g = o / cog;
    double* y = job.gx + (img * job.co + o) * P;
    for (i64 p = 0; p < P; ++p) y[p] = 0.0;
    for (i64 k = 0; k < K; ++k) {
        const i64 ci = k / taps, ky = (k % taps) / job.kw, kx = k % job.kw;
        const double a = job.w[o * K + k];
        const double* plane = job.x + (img * job.c + g * cg + ci) * H * W;
        const i64 wi0 = -job.pw + kx * job.dw;
        i64 lo, hi;
        valid_cols(wi0, job.sw, W, WO, lo, hi);
        for (i64 r = 0; r < HO; ++r) {
            const i64 hrow = r * job.sh - job.ph + ky * job.dh;
            if (hrow < 0 || hrow >= H) continue;
            const double* xs = plane + hrow * W;
            double* yr = y + r * WO;
            for (i64 t = lo; t < hi; ++t) yr[t] = yr[t] + a * xs[wi0 + t * job.sw];
        }
    }
    if (job.gy)
        for (i64 p = 0; p < P; ++p) y[p] = y[p] + job.gy[o];
}

#if defined(__AVX2__)
// ---- grad weight, channels-last (AVX2 and AVX-512) -------------------------
// gw[o, c, ky, kx] = sum over (n, ho, wo) of gy[n, o, ho, wo] xp[n, c, ho sh + ky dh, wo sw + kx dw]
// with xp = x zero-padded. The group's input channels are copied once into a
// padded, blocked channels-last buffer xcl[n][cb][hp][wp][L] (L input channels
// per block, conv2d_grad_weight_cl_pack in conv2d_backward.cpp; zeros in the
// padding and past cg), so an L-channel vector of one input pixel is one
// aligned load and one block's rows are contiguous. A register tile of OB
// output channels x 3 taps (kx) x L input channels (AVX-512: 8 x 3 x 16 in
// zmm or 8 x 3 x 8 in ymm, both within 32 registers; AVX2: 4 x 3 x 8, 12
// accumulators in 16 ymm) accumulates over the output pixels in order
// (n, ho, wo): per pixel 3 vector loads, OB broadcasts of gy, 3 OB FMAs, and
// no lane sums at the end. A task (input-channel block, range of output
// channels) walks bands of output rows of each image and, per band, every
// block of OB output channels and every tap, carrying the partial sums in a
// buffer, so the band's input rows and gy rows are reused from cache. Each
// gw element is one accumulation chain in an order fixed by the shapes,
// whoever runs the task.
namespace {

#if defined(__AVX512F__)
struct GwLanes16 {
    using V = __m512;
    static constexpr int L = 16, OB = conv2d_bwd_detail::kGwOc;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_load_ps(p); }
    static V loadu(const float* p) { return _mm512_loadu_ps(p); }
    static V bcast(const float* p) { return _mm512_set1_ps(*p); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};
#endif
struct GwLanes8 {
    using V = __m256;
#if defined(__AVX512F__)
    static constexpr int L = 8, OB = conv2d_bwd_detail::kGwOc;
#else
    static constexpr int L = 8, OB = conv2d_bwd_detail::kGwOc2;
#endif
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const float* p) { return _mm256_load_ps(p); }
    static V loadu(const float* p) { return _mm256_loadu_ps(p); }
    static V bcast(const float* p) { return checked::broadcast_ss(p); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
};

// Output rows [ho0, ho1) of one image for OB output channels (gy rows gyr[i])
// and taps coff[0..NX-1] (offsets in xb, the block's plane at row ky dh):
// partial sums loaded from and stored to buf (OB x NX vectors).
template <class S, int NX>
void gw_cl_tile(const float* xb, const float* const* gyr, i64 ho0, i64 ho1, i64 WO, i64 rstride, i64 cstride,
                const i64* coff, float* buf) {
    constexpr int OB = S::OB, L = S::L;
    typename S::V acc[OB][NX];
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) acc[i][j] = S::loadu(buf + (i * NX + j) * L);
    for (i64 ho = ho0; ho < ho1; ++ho) {
        const float* xr = xb + ho * rstride;
        const i64 q0 = ho * WO;
        for (i64 wo = 0; wo < WO; ++wo) {
            const float* xp = xr + wo * cstride;
            typename S::V xv[NX];
#pragma GCC unroll 3
            for (int j = 0; j < NX; ++j) xv[j] = S::load(xp + coff[j]);
            const i64 q = q0 + wo;
#pragma GCC unroll 8
            for (int i = 0; i < OB; ++i) {
                const typename S::V gv = S::bcast(gyr[i] + q);
#pragma GCC unroll 3
                for (int j = 0; j < NX; ++j) acc[i][j] = S::fma(gv, xv[j], acc[i][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) S::store(buf + (i * NX + j) * L, acc[i][j]);
}

template <class S>
void gw_cl_task(const Conv2dGradJob<float>& job, const float* xcl, i64 g, i64 cb, i64 o0, i64 o1) {
    constexpr int L = S::L, OB = S::OB;
    const i64 cog = job.co / job.groups, cg = job.c / job.groups, cblocks = (cg + L - 1) / L;
    const i64 kh = job.kh, kw = job.kw, taps = kh * kw, K = cg * taps, kxc = (kw + 2) / 3;
    const i64 Hp = job.h + 2 * job.ph, Wp = job.wd + 2 * job.pw, HO = job.ho, WO = job.wo, P = HO * WO;
    const i64 plane = Hp * Wp * L;
    const i64 nblk = (o1 - o0 + OB - 1) / OB;
    const i64 nc = cg - cb * L < L ? cg - cb * L : L;
    const i64 blk_len = kh * kxc * OB * 3 * L;
    std::vector<float> buf(static_cast<std::size_t>(nblk * blk_len), 0.f);
    // Bands of about 256 output pixels: the band's input rows of one block and
    // its gy rows stay in L1/L2 while every output block and tap uses them.
    const i64 band = WO >= 256 ? 1 : 256 / WO;
    for (i64 n = 0; n < job.n; ++n) {
        const float* xn = xcl + (n * cblocks + cb) * plane;
        for (i64 ho0 = 0; ho0 < HO; ho0 += band) {
            const i64 ho1 = ho0 + band < HO ? ho0 + band : HO;
            for (i64 b = 0; b < nblk; ++b) {
                const i64 ob0 = o0 + b * OB, mr = o1 - ob0 < OB ? o1 - ob0 : OB;
                const float* gyr[OB];
                for (int i = 0; i < OB; ++i)
                    gyr[i] = job.gy + (n * job.co + g * cog + ob0 + (i < mr ? i : 0)) * P;
                for (i64 ky = 0; ky < kh; ++ky) {
                    const float* xb = xn + ky * job.dh * Wp * L;
                    for (i64 q = 0; q < kxc; ++q) {
                        const int nx = static_cast<int>(kw - 3 * q < 3 ? kw - 3 * q : 3);
                        i64 coff[3] = {0, 0, 0};
                        for (int j = 0; j < nx; ++j) coff[j] = (3 * q + j) * job.dw * L;
                        float* bb = buf.data() + b * blk_len + (ky * kxc + q) * OB * 3 * L;
                        if (nx == 3)
                            gw_cl_tile<S, 3>(xb, gyr, ho0, ho1, WO, job.sh * Wp * L, job.sw * L, coff, bb);
                        else if (nx == 2)
                            gw_cl_tile<S, 2>(xb, gyr, ho0, ho1, WO, job.sh * Wp * L, job.sw * L, coff, bb);
                        else
                            gw_cl_tile<S, 1>(xb, gyr, ho0, ho1, WO, job.sh * Wp * L, job.sw * L, coff, bb);
                    }
                }
            }
        }
    }
    for (i64 b = 0; b < nblk; ++b) {
        const i64 ob0 = o0 + b * OB, mr = o1 - ob0 < OB ? o1 - ob0 : OB;
        for (i64 ky = 0; ky < kh; ++ky)
            for (i64 q = 0; q < kxc; ++q) {
                const i64 nx = kw - 3 * q < 3 ? kw - 3 * q : 3;
                const float* bb = buf.data() + b * blk_len + (ky * kxc + q) * OB * 3 * L;
                for (i64 i = 0; i < mr; ++i)
                    for (i64 j = 0; j < nx; ++j)
                        for (i64 l = 0; l < nc; ++l)
                            job.gw[(g * cog + ob0 + i) * K + (cb * L + l) * taps + ky * kw + 3 * q + j] =
                                bb[(i * nx + j) * L + l];
            }
    }
}

}  // namespace

// Image n of group g into xcl[n][cb][hp][wp][lanes]: zero rows and columns of
// padding, each 8 channels x 8 pixels of a row moved by one 8 x 8 transpose
// (channels past cg and pixels past the row read as zeros).
void conv2d_grad_weight_cl_pack(const Conv2dGradJob<float>& job, i64 g, i64 n, i64 lanes, float* xcl) {
    const i64 cg = job.c / job.groups, cblocks = (cg + lanes - 1) / lanes;
    const i64 H = job.h, W = job.wd, Hp = H + 2 * job.ph, Wp = W + 2 * job.pw, plane = Hp * Wp * lanes;
    float* dst = xcl + n * cblocks * plane;
    const float* src = job.x + (n * job.c + g * cg) * H * W;
    const __m256 z = _mm256_setzero_ps();
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (i64 cb = 0; cb < cblocks; ++cb) {
        float* blk = dst + cb * plane;
        for (i64 i = 0; i < job.ph * Wp * lanes; ++i) blk[i] = 0.f;
        for (i64 i = (job.ph + H) * Wp * lanes; i < plane; ++i) blk[i] = 0.f;
        for (i64 y = 0; y < H; ++y) {
            float* row = blk + (y + job.ph) * Wp * lanes;
            for (i64 i = 0; i < job.pw * lanes; ++i) row[i] = 0.f;
            for (i64 i = (job.pw + W) * lanes; i < Wp * lanes; ++i) row[i] = 0.f;
            float* d = row + job.pw * lanes;
            for (i64 h0 = 0; h0 < lanes; h0 += 8) {
                const i64 c0 = cb * lanes + h0;
                const i64 nch = cg - c0 < 8 ? (cg - c0 > 0 ? cg - c0 : 0) : 8;
                for (i64 x0 = 0; x0 < W; x0 += 8) {
                    const i64 npx = W - x0 < 8 ? W - x0 : 8;
                    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(npx)), iota);
                    __m256 r[8];
                    for (int i = 0; i < 8; ++i) {
                        const float* s = src + ((c0 + i) * H + y) * W + x0;
                        r[i] = i >= nch ? z : npx == 8 ? _mm256_loadu_ps(s) : checked::maskload_ps(s, m);
                    }
                    simd_transpose::transpose8(r);
                    for (i64 j = 0; j < npx; ++j) _mm256_storeu_ps(d + (x0 + j) * lanes + h0, r[j]);
                }
            }
        }
    }
}

void conv2d_grad_weight_cl(const Conv2dGradJob<float>& job, const float* xcl, i64 g, i64 cb, i64 o0, i64 o1,
                           int lanes) {
#if defined(__AVX512F__)
    if (lanes == 16) {
        gw_cl_task<GwLanes16>(job, xcl, g, cb, o0, o1);
        return;
    }
#endif
    (void)lanes;
    gw_cl_task<GwLanes8>(job, xcl, g, cb, o0, o1);
}
#endif  // __AVX2__
