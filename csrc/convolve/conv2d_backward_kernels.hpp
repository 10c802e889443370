// conv2d gradient loops, compiled once per ISA (included inside the namespace
// medfuse::<isa> by conv2d_backward*.cpp after <cstdint>). Plain loops the
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
