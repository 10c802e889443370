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
    for (i64 r0 = 0; r0 < HO; r0 += rows) {
        const i64 r1 = r0 + rows < HO ? r0 + rows : HO;
        const i64 q0 = r0 * WO, len = (r1 - r0) * WO;
        for (i64 k = 0; k < K; ++k) {
            const i64 ci = k / taps, ky = (k % taps) / job.kw, kx = k % job.kw;
            // tmp = sum_o w[o, k] gy[o, chunk], four channels per pass
            for (i64 q = 0; q < len; ++q) tmp[q] = T(0);
            i64 o = 0;
            for (; o + 4 <= cog; o += 4) {
                const T a0 = wg[o * K + k], a1 = wg[(o + 1) * K + k], a2 = wg[(o + 2) * K + k],
                        a3 = wg[(o + 3) * K + k];
                const T* g0 = gy + o * P + q0;
                const T* g1 = g0 + P;
                const T* g2 = g1 + P;
                const T* g3 = g2 + P;
                for (i64 q = 0; q < len; ++q) tmp[q] = (((tmp[q] + a0 * g0[q]) + a1 * g1[q]) + a2 * g2[q]) + a3 * g3[q];
            }
            for (; o < cog; ++o) {
                const T a0 = wg[o * K + k];
                const T* g0 = gy + o * P + q0;
                for (i64 q = 0; q < len; ++q) tmp[q] = tmp[q] + a0 * g0[q];
            }
            // scatter-add into the input plane
            T* plane = gx + ci * H * W;
            const i64 wi0 = -job.pw + kx * job.dw;
            i64 lo, hi;
            valid_cols(wi0, job.sw, W, WO, lo, hi);
            for (i64 r = r0; r < r1; ++r) {
                const i64 hrow = r * job.sh - job.ph + ky * job.dh;
                if (hrow < 0 || hrow >= H) continue;
                T* dst = plane + hrow * W;
                const T* src = tmp + (r - r0) * WO;
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

// Output channels [o0, o1) of one group: acc holds (o1 - o0) * taps * LANES partial sums.
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
    for (i64 ci = 0; ci < cg; ++ci) {
        for (i64 i = 0; i < nb * taps * LANES; ++i) acc[i] = T(0);
        for (i64 img = 0; img < job.n; ++img) {
            const T* plane = job.x + (img * job.c + g * cg + ci) * H * W;
            for (i64 r = 0; r < HO; ++r) {
                for (i64 ky = 0; ky < job.kh; ++ky) {
                    const i64 hrow = r * job.sh - job.ph + ky * job.dh;
                    if (hrow < 0 || hrow >= H) continue;
                    const T* xrow = plane + hrow * W;
                    for (i64 kx = 0; kx < job.kw; ++kx) {
                        const i64 wi0 = -job.pw + kx * job.dw;
                        i64 lo, hi;
                        valid_cols(wi0, job.sw, W, WO, lo, hi);
                        if (lo >= hi) continue;
                        // column t of the output row reads x column wi0 + t * sw
                        const i64 len = hi - lo;
                        for (i64 ob = 0; ob < nb; ++ob) {
                            const T* gy = job.gy + (img * job.co + o0 + ob) * P + r * WO + lo;
                            T* a = acc + (ob * taps + ky * job.kw + kx) * LANES;
                            i64 t = 0;
                            if (job.sw == 1) {
                                const T* xs = xrow + (wi0 + lo);
                                for (; t + LANES <= len; t += LANES)
                                    for (int j = 0; j < LANES; ++j) a[j] = a[j] + gy[t + j] * xs[t + j];
                                for (int j = 0; t < len; ++t, ++j) a[j] = a[j] + gy[t] * xs[t];
                            } else {
                                const i64 s = job.sw;
                                const T* xs = xrow + (wi0 + lo * s);
                                for (; t + LANES <= len; t += LANES)
                                    for (int j = 0; j < LANES; ++j) a[j] = a[j] + gy[t + j] * xs[(t + j) * s];
                                for (int j = 0; t < len; ++t, ++j) a[j] = a[j] + gy[t] * xs[t * s];
                            }
                        }
                    }
                }
            }
        }
        for (i64 ob = 0; ob < nb; ++ob)
            for (i64 tp = 0; tp < taps; ++tp) {
                const T* a = acc + (ob * taps + tp) * LANES;
                T s = T(0);
                for (int j = 0; j < LANES; ++j) s = s + a[j];
                job.gw[(o0 + ob) * K + ci * taps + tp] = s;
            }
    }
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
