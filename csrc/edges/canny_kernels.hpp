// Canny inner loops, compiled once per instruction set.
//
// This file is included *inside* a namespace by canny.cpp (baseline),
// canny_avx2.cpp and canny_avx512.cpp, each built with its own -m flags, so
// every function here exists once per ISA and none can be merged across
// paths by the linker. It includes no headers and uses no std:: templates
// for the same reason. Loops are written for the auto-vectorizer: contiguous
// rows, restrict pointers, branch-free selects.
//
// Float order of operations is fixed (and must match reference/edges.py):
// a 1D pass accumulates from zero over taps in ascending order, skipping zero
// taps; passes run along x, then y, then z; magnitudes sum x, y, z.

#ifndef MEDFUSE_RESTRICT
#define MEDFUSE_RESTRICT __restrict__
#endif

namespace kern {

using i64 = std::int64_t;
using u8 = unsigned char;

template <int A> struct Taps;
template <> struct Taps<3> {
    static constexpr int s[3] = {1, 2, 1};
    static constexpr int d[3] = {-1, 0, 1};
};
template <> struct Taps<5> {
    static constexpr int s[5] = {1, 4, 6, 4, 1};
    static constexpr int d[5] = {-1, -2, 0, 2, 1};
};
template <> struct Taps<7> {
    static constexpr int s[7] = {1, 6, 15, 20, 15, 6, 1};
    static constexpr int d[7] = {-1, -4, -5, 0, 5, 4, 1};
};

template <class T> inline T vabs(T v) { return v < T(0) ? T(-v) : v; }
inline i64 clampi(i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }

// reflect101 ("mirror") border index, any i.
inline i64 reflect101(i64 i, i64 n) {
    if (n == 1) return 0;
    const i64 period = 2 * n - 2;
    i64 r = (i < 0 ? -i : i) % period;
    return r >= n ? period - r : r;
}

// A comparison threshold as magnitude type M, saturated (no UB on overflow).
template <class M>
inline M to_threshold(double v) {
    if constexpr (M(0.5) == M(0) && sizeof(M) == 2) {  // biased 16-bit magnitudes (magnitude2)
        if (!(v > 0.0)) return M(-32768);
        if (v >= 65535.0) return M(32767);  // no magnitude exceeds it
        return static_cast<M>(static_cast<int>(v) - 32768);  // m > v  <=>  m > floor(v) for integer m
    }
    if constexpr (M(0.5) == M(0)) {  // integral M
        constexpr M kMax = M((1ull << (sizeof(M) * 8 - 1)) - 1);
        if (!(v > 0.0)) return M(0);
        if (v >= static_cast<double>(kMax)) return kMax;
    }
    return static_cast<M>(v);
}

// Replicate-border copy of one input row into `pad` (length W + 2R), as G.
template <class In, class G, int R>
inline void load_row(const In* MEDFUSE_RESTRICT src, G* MEDFUSE_RESTRICT pad, i64 W) {
    for (i64 x = 0; x < W; ++x) pad[R + x] = static_cast<G>(src[x]);
    for (int k = 0; k < R; ++k) {
        pad[k] = static_cast<G>(src[0]);
        pad[R + W + k] = static_cast<G>(src[W - 1]);
    }
}

// Horizontal pass: hd = derivative taps, hs = smoothing taps.
template <class G, int A>
inline void row_pass(const G* MEDFUSE_RESTRICT pad, G* MEDFUSE_RESTRICT hd,
                     G* MEDFUSE_RESTRICT hs, i64 W) {
    for (i64 x = 0; x < W; ++x) {
        G ad = G(0), as = G(0);
        for (int k = 0; k < A; ++k) {
            if (Taps<A>::d[k] != 0) ad = static_cast<G>(ad + static_cast<G>(Taps<A>::d[k]) * pad[x + k]);
            as = static_cast<G>(as + static_cast<G>(Taps<A>::s[k]) * pad[x + k]);
        }
        hd[x] = ad;
        hs[x] = as;
    }
}

// Vertical pass over A rows: out = sum_k taps[k] * rows[k].
template <class G, int A, bool Deriv>
inline void col_pass(const G* const* rows, G* MEDFUSE_RESTRICT out, i64 n) {
    const G* r[A];
    for (int k = 0; k < A; ++k) r[k] = rows[k];
    for (i64 x = 0; x < n; ++x) {
        G acc = G(0);
        for (int k = 0; k < A; ++k) {
            const int t = Deriv ? Taps<A>::d[k] : Taps<A>::s[k];
            if (t != 0) acc = static_cast<G>(acc + static_cast<G>(t) * r[k][x]);
        }
        out[x] = acc;
    }
}

// cv2's aperture-7 rule: int16(round-half-even(v / 16)).
inline void round16_row(int* MEDFUSE_RESTRICT g, i64 W) {
    for (i64 x = 0; x < W; ++x) {
        const int v = g[x];
        const int q = v >> 4;  // floor
        const int rem = v & 15;
        g[x] = q + ((rem > 8) | ((rem == 8) & (q & 1)));
    }
}

template <class G>
inline void scale_row(G* MEDFUSE_RESTRICT g, double w, i64 n) {
    const G wg = static_cast<G>(w);  // multiply in G's precision, as the twin does
    for (i64 x = 0; x < n; ++x) g[x] = g[x] * wg;
}

// 16-bit magnitudes (M = short, L1 only) are stored biased: |gx| + |gy| - 32768,
// which keeps the order of the true values up to 65535 (the narrow int16
// paths: |gx| + |gy| <= 2 * 27144); comparisons and equality are unchanged.
template <class M>
constexpr bool kBiased = sizeof(M) == 2;
template <class M>
constexpr M mag_zero() { return kBiased<M> ? M(-32768) : M(0); }

template <class G, class M, bool L2>
inline void magnitude2(const G* MEDFUSE_RESTRICT gx, const G* MEDFUSE_RESTRICT gy,
                       M* MEDFUSE_RESTRICT mag, i64 W) {
    if constexpr (kBiased<M>) {
        static_assert(!L2, "16-bit magnitudes are L1 only");
        for (i64 x = 0; x < W; ++x) {
            const unsigned short a = static_cast<unsigned short>(vabs(gx[x]));
            const unsigned short b = static_cast<unsigned short>(vabs(gy[x]));
            mag[x] = static_cast<M>(static_cast<unsigned short>(static_cast<unsigned short>(a + b) ^ 0x8000u));
        }
    } else {
        for (i64 x = 0; x < W; ++x) {
            const M a = static_cast<M>(gx[x]), b = static_cast<M>(gy[x]);
            mag[x] = L2 ? M(a * a + b * b) : M(vabs(a) + vabs(b));
        }
    }
}

// Non-maximum suppression and double threshold for one row.
// mp, mc, mn: magnitudes of rows y-1, y, y+1, padded (index x+1), zero outside.
// out: 0 = not an edge, 1 = weak candidate, 255 = strong.
template <class G, class M, class D>
inline void nms_span(const G* MEDFUSE_RESTRICT gx, const G* MEDFUSE_RESTRICT gy,
                     const M* MEDFUSE_RESTRICT mp, const M* MEDFUSE_RESTRICT mc,
                     const M* MEDFUSE_RESTRICT mn, u8* MEDFUSE_RESTRICT out, i64 b, i64 e,
                     M low, M high) {
    for (i64 x = b; x < e; ++x) {
        const M m = mc[x + 1];
        const D ax = vabs(static_cast<D>(gx[x]));
        const D ay = vabs(static_cast<D>(gy[x]));
        const D ay15 = ay * D(32768);
        const bool ysig = ay15 >= ax * D(13573);  // not horizontal
        const bool xsig = ay15 <= ax * D(79109);  // not vertical
        const bool neg = (gx[x] < G(0)) != (gy[x] < G(0));
        const bool diag = xsig & ysig;
        const M pl = mp[x], pc = mp[x + 1], pr = mp[x + 2];
        const M cl = mc[x], cr = mc[x + 2];
        const M nl = mn[x], nc = mn[x + 1], nr = mn[x + 2];
        if constexpr (M(0.5) == M(0)) {
            // Integral M: the same selects as masks (GCC's if-conversion left
            // this loop scalar for some instantiations with 16-bit M).
            const M kn = static_cast<M>(-static_cast<M>(neg));
            const M ky = static_cast<M>(-static_cast<M>(!ysig));
            const M kx = static_cast<M>(-static_cast<M>(!xsig));
            const M dn1 = static_cast<M>((pr & kn) | (pl & static_cast<M>(~kn)));
            const M dn2 = static_cast<M>((nl & kn) | (nr & static_cast<M>(~kn)));
            const M v1 = static_cast<M>((pc & kx) | (dn1 & static_cast<M>(~kx)));
            const M v2 = static_cast<M>((nc & kx) | (dn2 & static_cast<M>(~kx)));
            const M n1 = static_cast<M>((cl & ky) | (v1 & static_cast<M>(~ky)));
            const M n2 = static_cast<M>((cr & ky) | (v2 & static_cast<M>(~ky)));
            const int keep = static_cast<int>(m > low) & static_cast<int>(m > n1) &
                             (static_cast<int>(m > n2) | (static_cast<int>(m == n2) & static_cast<int>(!diag)));
            const int strong = keep & static_cast<int>(m > high);
            out[x] = static_cast<u8>(static_cast<u8>(-strong) | static_cast<u8>(keep));  // 255, 1 or 0
        } else {
            const M dn1 = neg ? pr : pl;
            const M dn2 = neg ? nl : nr;
            const M n1 = !ysig ? cl : (!xsig ? pc : dn1);
            const M n2 = !ysig ? cr : (!xsig ? nc : dn2);
            const bool keep = (m > low) & (m > n1) & ((m > n2) | ((m == n2) & !diag));
            out[x] = keep ? (m > high ? u8(255) : u8(1)) : u8(0);
        }
    }
}

// The same over a whole row, skipping blocks where no magnitude exceeds
// `low` (most of a typical image) after one cheap vector comparison.
// Block length, measured on Zen 4 (the canny-* benchmark images): 32 on AVX2
// (64 took 1-16 % longer: CT slices most, the X-ray least), 64 on AVX-512
// (32 took 6-12 % longer on the 512^2 CT slices); with 16 GCC no longer
// vectorizes the span (4x slower on both).
#if defined(__AVX2__) && !defined(__AVX512F__)
constexpr i64 kNmsBlock = 32;
#else
constexpr i64 kNmsBlock = 64;
#endif
template <class G, class M, class D>
inline void nms_row(const G* MEDFUSE_RESTRICT gx, const G* MEDFUSE_RESTRICT gy,
                    const M* MEDFUSE_RESTRICT mp, const M* MEDFUSE_RESTRICT mc,
                    const M* MEDFUSE_RESTRICT mn, u8* MEDFUSE_RESTRICT out, i64 W, M low,
                    M high) {
    constexpr i64 kBlock = kNmsBlock;
    i64 b = 0;
    for (; b + kBlock <= W; b += kBlock) {
        int any = 0;
        for (i64 x = b; x < b + kBlock; ++x) any |= static_cast<int>(mc[x + 1] > low);
        if (!any) {
            for (i64 x = b; x < b + kBlock; ++x) out[x] = u8(0);
            continue;
        }
        nms_span<G, M, D>(gx, gy, mp, mc, mn, out, b, b + kBlock, low, high);
    }
    nms_span<G, M, D>(gx, gy, mp, mc, mn, out, b, W, low, high);
}

struct Bufs2D {
    void* const* b;
    template <class T> T* get(int i) const { return static_cast<T*>(b[i]); }
};

// One band of rows [r0, r1) of a 2D image.
template <class In, class G, class M, class D, int A, bool L2, bool R16>
void band2d(const medfuse::CannyJob& job, i64 r0, i64 r1, void* const* bufs) {
    constexpr int R = A / 2;
    const i64 H = job.height, W = job.width;
    const In* img = static_cast<const In*>(job.img);
    constexpr bool kFloat = G(0.5) != G(0);  // float path (no <type_traits> here)
    Bufs2D B{bufs};
    G* pad = B.get<G>(0);
    G* hd[A];
    G* hs[A];
    for (int k = 0; k < A; ++k) {
        hd[k] = B.get<G>(1 + k);
        hs[k] = B.get<G>(1 + A + k);
    }
    G* gxr[3];
    G* gyr[3];
    M* magr[3];
    for (int k = 0; k < 3; ++k) {
        gxr[k] = B.get<G>(1 + 2 * A + k);
        gyr[k] = B.get<G>(4 + 2 * A + k);
        magr[k] = B.get<M>(7 + 2 * A + k);
    }
    const M low = to_threshold<M>(job.low_cmp), high = to_threshold<M>(job.high_cmp);
    const double wy = job.weights[1], wx = job.weights[2];

    auto slot = [](i64 v, i64 n) { return static_cast<int>(((v % n) + n) % n); };

    // Optional Gaussian pre-smoothing, one smoothed row at a time: x pass of
    // input rows (cached by row), then y pass (reflect101 borders both).
    const int ky = job.smooth_len[1], kx = job.smooth_len[2];
    const bool smoothing = kFloat && (ky > 1 || kx > 1);
    const double* wyt = job.smooth_taps[1];
    const double* wxt = job.smooth_taps[2];
    const i64 ry = ky / 2, rx = kx / 2;
    G* xpad = B.get<G>(10 + 2 * A);
    G* srow = B.get<G>(11 + 2 * A);
    const int ncache = 2 * ky;
    i64* cache_id = B.get<i64>(12 + 2 * A);
    i64* xidx = B.get<i64>(13 + 2 * A);  // reflect101 column of each padded position
    for (int i = 0; i < ncache; ++i) cache_id[i] = -1;
    if (smoothing)
        for (i64 i = 0; i < W + 2 * rx; ++i) xidx[i] = reflect101(i - rx, W);
    i64 srow_id = -1;
    // Both passes accumulate each output from zero over the taps in ascending
    // order, skipping zero taps (as the twin does); the loops keep a chunk of
    // outputs in registers while the taps stream past, which is the same
    // arithmetic per output in a cache-friendlier order.
#if defined(__GNUC__)
    // GCC/Clang vector extensions (no headers): kU vectors of 32 bytes per
    // chunk; each lane does exactly the scalar operations.
    typedef G VecG __attribute__((vector_size(32)));
    typedef G VecGu __attribute__((vector_size(32), aligned(alignof(G)), may_alias));
    constexpr int kNV = static_cast<int>(32 / sizeof(G));
    constexpr int kU = 4;
    constexpr int CH = kU * kNV;
#endif
    auto xpass_row = [&](i64 r) -> const G* {
        const int sl = static_cast<int>(r % ncache);
        G* dst = B.get<G>(14 + 2 * A + sl);
        if (cache_id[sl] == r) return dst;
        const In* src = img + r * W;
        const i64 np = W + 2 * rx;
        const i64 lo = rx < np ? rx : np;
        for (i64 i = 0; i < lo; ++i) xpad[i] = static_cast<G>(src[xidx[i]]);
        for (i64 x = 0; x < W; ++x) xpad[rx + x] = static_cast<G>(src[x]);
        for (i64 i = rx + W; i < np; ++i) xpad[i] = static_cast<G>(src[xidx[i]]);
        i64 x = 0;
#if defined(__GNUC__)
        for (; x + CH <= W; x += CH) {
            VecG acc[kU] = {};
            for (int k = 0; k < kx; ++k) {
                if (wxt[k] == 0.0) continue;
                const G t = static_cast<G>(wxt[k]);
                const G* sk = xpad + k + x;
                for (int u = 0; u < kU; ++u)
                    acc[u] = acc[u] + t * *reinterpret_cast<const VecGu*>(sk + u * kNV);
            }
            for (int u = 0; u < kU; ++u) *reinterpret_cast<VecGu*>(dst + x + u * kNV) = acc[u];
        }
#endif
        for (; x < W; ++x) {
            G a = G(0);
            for (int k = 0; k < kx; ++k) {
                if (wxt[k] == 0.0) continue;
                a = static_cast<G>(a + static_cast<G>(wxt[k]) * xpad[k + x]);
            }
            dst[x] = a;
        }
        cache_id[sl] = r;
        return dst;
    };
    constexpr int kMaxRows = 64;
    auto smoothed_row = [&](i64 yy) -> const G* {
        if (srow_id == yy) return srow;
        if (ky <= kMaxRows) {
            // Every row of the window is distinct modulo the 2*ky cache slots,
            // so all can be resident at once.
            const G* rowp[kMaxRows];
            G tv[kMaxRows];
            int nr = 0;
            for (int k = 0; k < ky; ++k) {
                if (wyt[k] == 0.0) continue;
                rowp[nr] = xpass_row(reflect101(yy + k - ry, H));
                tv[nr++] = static_cast<G>(wyt[k]);
            }
            i64 x = 0;
#if defined(__GNUC__)
            for (; x + CH <= W; x += CH) {
                VecG acc[kU] = {};
                for (int k = 0; k < nr; ++k) {
                    const G t = tv[k];
                    const G* xr = rowp[k] + x;
                    for (int u = 0; u < kU; ++u)
                        acc[u] = acc[u] + t * *reinterpret_cast<const VecGu*>(xr + u * kNV);
                }
                for (int u = 0; u < kU; ++u) *reinterpret_cast<VecGu*>(srow + x + u * kNV) = acc[u];
            }
#endif
            for (; x < W; ++x) {
                G a = G(0);
                for (int k = 0; k < nr; ++k) a = static_cast<G>(a + tv[k] * rowp[k][x]);
                srow[x] = a;
            }
        } else {
            for (i64 x = 0; x < W; ++x) srow[x] = G(0);
            for (int k = 0; k < ky; ++k) {
                if (wyt[k] == 0.0) continue;
                const G t = static_cast<G>(wyt[k]);
                const G* xr = xpass_row(reflect101(yy + k - ry, H));
                for (i64 x = 0; x < W; ++x) srow[x] = static_cast<G>(srow[x] + t * xr[x]);
            }
        }
        srow_id = yy;
        return srow;
    };

    const i64 ystart = r0 - 1 < 0 ? 0 : r0 - 1;
    i64 next_v = ystart - R;
    const G* rows[A];
    for (i64 y = r0 - 1; y <= r1; ++y) {
        M* mag = magr[slot(y, 3)];
        if (y < 0 || y >= H) {
            for (i64 x = 0; x < W + 2; ++x) mag[x] = mag_zero<M>();
        } else {
            for (; next_v <= y + R; ++next_v) {
                if (smoothing) {
                    load_row<G, G, R>(smoothed_row(clampi(next_v, 0, H - 1)), pad, W);
                } else {
                    load_row<In, G, R>(img + clampi(next_v, 0, H - 1) * W, pad, W);
                }
                const int s = slot(next_v, A);
                row_pass<G, A>(pad, hd[s], hs[s], W);
            }
            G* gx = gxr[slot(y, 3)];
            G* gy = gyr[slot(y, 3)];
            for (int k = 0; k < A; ++k) rows[k] = hd[slot(y - R + k, A)];
            col_pass<G, A, false>(rows, gx, W);
            for (int k = 0; k < A; ++k) rows[k] = hs[slot(y - R + k, A)];
            col_pass<G, A, true>(rows, gy, W);
            if constexpr (R16) {
                round16_row(reinterpret_cast<int*>(gx), W);
                round16_row(reinterpret_cast<int*>(gy), W);
            }
            if constexpr (kFloat) {
                if (wx != 1.0) scale_row(gx, wx, W);  // x * 1 == x: skipping is exact
                if (wy != 1.0) scale_row(gy, wy, W);
            }
            mag[0] = mag_zero<M>();
            mag[W + 1] = mag_zero<M>();
            magnitude2<G, M, L2>(gx, gy, mag + 1, W);
        }
        const i64 yc = y - 1;  // row whose suppression is now possible
        if (yc >= r0 && yc < r1) {
            nms_row<G, M, D>(gxr[slot(yc, 3)], gyr[slot(yc, 3)], magr[slot(yc - 1, 3)],
                             magr[slot(yc, 3)], magr[slot(yc + 1, 3)], job.map + yc * job.map_row, W,
                             low, high);
        }
    }
}

// Dispatch on aperture / norm for one pixel type.
// M1: the magnitude type for the L1 norm at apertures 3 and 5 (16-bit where
// |gx| + |gy| < 2^16: the int16-gradient paths).
template <class In, class G, class M, class D, bool AllowR16, class M1 = M>
void band2d_any(const medfuse::CannyJob& job, i64 r0, i64 r1, void* const* bufs) {
    const bool l2 = job.l2;
    switch (job.aperture) {
        case 3:
            return l2 ? band2d<In, G, M, D, 3, true, false>(job, r0, r1, bufs)
                      : band2d<In, G, M1, D, 3, false, false>(job, r0, r1, bufs);
        case 5:
            return l2 ? band2d<In, G, M, D, 5, true, false>(job, r0, r1, bufs)
                      : band2d<In, G, M1, D, 5, false, false>(job, r0, r1, bufs);
        default:
            if constexpr (AllowR16) {
                if (job.round16)
                    return l2 ? band2d<In, G, M, D, 7, true, true>(job, r0, r1, bufs)
                              : band2d<In, G, M, D, 7, false, true>(job, r0, r1, bufs);
            }
            return l2 ? band2d<In, G, M, D, 7, true, false>(job, r0, r1, bufs)
                      : band2d<In, G, M, D, 7, false, false>(job, r0, r1, bufs);
    }
}

// ---------------------------------------------------------------- 3D ------

// In-plane passes of one input slice: ps = Ys Xs f, pdx = Ys Xd f, pdy = Yd Xs f.
template <class In, int A>
void plane_pass(const In* src, i64 H, i64 W, double* pad, double* hd, double* hs, double* ps,
                double* pdx, double* pdy) {
    constexpr int R = A / 2;
    for (i64 y = 0; y < H; ++y) {
        load_row<In, double, R>(src + y * W, pad, W);
        row_pass<double, A>(pad, hd + y * W, hs + y * W, W);
    }
    const double* rows[A];
    for (i64 y = 0; y < H; ++y) {
        for (int k = 0; k < A; ++k) rows[k] = hd + clampi(y - R + k, 0, H - 1) * W;
        col_pass<double, A, false>(rows, pdx + y * W, W);
        for (int k = 0; k < A; ++k) rows[k] = hs + clampi(y - R + k, 0, H - 1) * W;
        col_pass<double, A, false>(rows, ps + y * W, W);
        col_pass<double, A, true>(rows, pdy + y * W, W);
    }
}

template <bool L2>
inline void magnitude3(const double* MEDFUSE_RESTRICT gx, const double* MEDFUSE_RESTRICT gy,
                       const double* MEDFUSE_RESTRICT gz, double* MEDFUSE_RESTRICT mag, i64 n) {
    for (i64 i = 0; i < n; ++i) {
        mag[i] = L2 ? (gx[i] * gx[i] + gy[i] * gy[i]) + gz[i] * gz[i]
                    : (vabs(gx[i]) + vabs(gy[i])) + vabs(gz[i]);
    }
}

// 3D suppression of slice z. mags: padded (H+2)x(W+2) slices z-1, z, z+1.
inline void nms_slice(const double* gx, const double* gy, const double* gz,
                      const double* const* mags, u8* out, i64 out_row, i64 H, i64 W, double low,
                      double high) {
    const i64 PW = W + 2;
    for (i64 y = 0; y < H; ++y) {
        for (i64 x = 0; x < W; ++x) {
            const i64 i = y * W + x;
            const i64 pc = (y + 1) * PW + (x + 1);
            const double m = mags[1][pc];
            u8 res = 0;
            if (m > low) {
                const double az = vabs(gz[i]), ay = vabs(gy[i]), ax = vabs(gx[i]);
                const double az15 = az * 32768.0, ay15 = ay * 32768.0;
                const bool zs = (az15 >= ay * 13573.0) & (az15 >= ax * 13573.0);
                const bool ys = (az15 <= ay * 79109.0) & (ay15 >= ax * 13573.0);
                const bool xs = (az15 <= ax * 79109.0) & (ay15 <= ax * 79109.0);
                int oz = zs, oy = ys, ox = xs;
                const int count = oz + oy + ox;
                bool keep;
                if (count == 1) {
                    const i64 o = oy * PW + ox;
                    const double* lo_s = oz ? mags[0] : mags[1];
                    const double* hi_s = oz ? mags[2] : mags[1];
                    keep = (m > lo_s[pc - o]) & (m >= hi_s[pc + o]);
                } else {
                    // First counted axis positive; others by sign agreement.
                    const bool nz = gz[i] < 0.0, ny = gy[i] < 0.0, nx = gx[i] < 0.0;
                    const bool first_neg = zs ? nz : ny;
                    if (oy && zs) oy = (ny != first_neg) ? -1 : 1;
                    if (ox) ox = (nx != first_neg) ? -1 : 1;
                    const i64 o = oy * PW + ox;
                    const double* lo_s = oz ? mags[0] : mags[1];
                    const double* hi_s = oz ? mags[2] : mags[1];
                    keep = (m > lo_s[pc - o]) & (m > hi_s[pc + o]);
                }
                if (keep) res = m > high ? u8(255) : u8(1);
            }
            out[y * out_row + x] = res;
        }
    }
}

// Slab of slices [z0, z1) of a 3D volume, float64 arithmetic throughout.
template <class In, int A, bool L2>
void slab3d(const medfuse::CannyJob& job, i64 z0, i64 z1, void* const* bufs) {
    constexpr int R = A / 2;
    const i64 Z = job.depth, H = job.height, W = job.width, HW = H * W;
    const In* img = static_cast<const In*>(job.img);
    int bi = 0;
    auto take = [&]() { return static_cast<double*>(bufs[bi++]); };
    double* pad = take();
    double* hd = take();
    double* hs = take();
    double* ps[A];
    double* pdx[A];
    double* pdy[A];
    for (int k = 0; k < A; ++k) {
        ps[k] = take();
        pdx[k] = take();
        pdy[k] = take();
    }
    double* gxr[3];
    double* gyr[3];
    double* gzr[3];
    double* magr[3];
    for (int k = 0; k < 3; ++k) {
        gxr[k] = take();
        gyr[k] = take();
        gzr[k] = take();
        magr[k] = take();
    }
    const double wz = job.weights[0], wy = job.weights[1], wx = job.weights[2];
    const i64 PW = W + 2, PHW = (H + 2) * PW;

    // Optional Gaussian pre-smoothing, one smoothed slice at a time: x and y
    // passes per input slice (cached by slice), then the z pass (reflect101).
    const int kz = job.smooth_len[0], ky = job.smooth_len[1], kx = job.smooth_len[2];
    const bool smoothing = kz > 1 || ky > 1 || kx > 1;
    const double* wzt = job.smooth_taps[0];
    const double* wyt = job.smooth_taps[1];
    const double* wxt = job.smooth_taps[2];
    const i64 rz = kz / 2, ry = ky / 2, rx = kx / 2;
    double* splane = take();
    double* xplane = take();
    double* xpad = take();
    i64* xidx = reinterpret_cast<i64*>(take());
    i64* cache_id = reinterpret_cast<i64*>(take());
    const int ncache = 2 * kz;
    double* xycache[2 * 256];  // kz <= 255 is checked by the caller
    for (int i = 0; i < ncache; ++i) {
        xycache[i] = smoothing ? take() : nullptr;
        cache_id[i] = -1;
    }
    if (smoothing)
        for (i64 i = 0; i < W + 2 * rx; ++i) xidx[i] = reflect101(i - rx, W);
    i64 splane_id = -1;
    auto xy_slice = [&](i64 zz) -> const double* {
        const int sl = static_cast<int>(zz % ncache);
        double* dst = xycache[sl];
        if (cache_id[sl] == zz) return dst;
        const In* src = img + zz * HW;
        for (i64 y = 0; y < H; ++y) {
            const In* row = src + y * W;
            double* xr = xplane + y * W;
            for (i64 i = 0; i < W + 2 * rx; ++i) xpad[i] = static_cast<double>(row[xidx[i]]);
            for (i64 x = 0; x < W; ++x) xr[x] = 0.0;
            for (int k = 0; k < kx; ++k) {
                const double t = wxt[k];
                if (t == 0.0) continue;
                const double* sk = xpad + k;
                for (i64 x = 0; x < W; ++x) xr[x] = xr[x] + t * sk[x];
            }
        }
        for (i64 y = 0; y < H; ++y) {
            double* out = dst + y * W;
            for (i64 x = 0; x < W; ++x) out[x] = 0.0;
            for (int k = 0; k < ky; ++k) {
                const double t = wyt[k];
                if (t == 0.0) continue;
                const double* src_row = xplane + reflect101(y + k - ry, H) * W;
                for (i64 x = 0; x < W; ++x) out[x] = out[x] + t * src_row[x];
            }
        }
        cache_id[sl] = zz;
        return dst;
    };
    auto smoothed_slice = [&](i64 zz) -> const double* {
        if (splane_id == zz) return splane;
        for (i64 i = 0; i < HW; ++i) splane[i] = 0.0;
        for (int k = 0; k < kz; ++k) {
            const double t = wzt[k];
            if (t == 0.0) continue;
            const double* src = xy_slice(reflect101(zz + k - rz, Z));
            for (i64 i = 0; i < HW; ++i) splane[i] = splane[i] + t * src[i];
        }
        splane_id = zz;
        return splane;
    };
    auto slot = [](i64 v, i64 n) { return static_cast<int>(((v % n) + n) % n); };
    const i64 zstart = z0 - 1 < 0 ? 0 : z0 - 1;
    i64 next_v = zstart - R;
    const double* rows[A];
    for (i64 z = z0 - 1; z <= z1; ++z) {
        double* mag = magr[slot(z, 3)];
        for (i64 i = 0; i < PHW; ++i) mag[i] = 0.0;
        if (z >= 0 && z < Z) {
            for (; next_v <= z + R; ++next_v) {
                const int s = slot(next_v, A);
                if (smoothing)
                    plane_pass<double, A>(smoothed_slice(clampi(next_v, 0, Z - 1)), H, W, pad,
                                          hd, hs, ps[s], pdx[s], pdy[s]);
                else
                    plane_pass<In, A>(img + clampi(next_v, 0, Z - 1) * HW, H, W, pad, hd, hs,
                                      ps[s], pdx[s], pdy[s]);
            }
            const int c = slot(z, 3);
            for (int k = 0; k < A; ++k) rows[k] = pdx[slot(z - R + k, A)];
            col_pass<double, A, false>(rows, gxr[c], HW);
            for (int k = 0; k < A; ++k) rows[k] = pdy[slot(z - R + k, A)];
            col_pass<double, A, false>(rows, gyr[c], HW);
            for (int k = 0; k < A; ++k) rows[k] = ps[slot(z - R + k, A)];
            col_pass<double, A, true>(rows, gzr[c], HW);
            scale_row(gxr[c], wx, HW);
            scale_row(gyr[c], wy, HW);
            scale_row(gzr[c], wz, HW);
            double* tmp = hd;  // reuse as a contiguous magnitude plane
            magnitude3<L2>(gxr[c], gyr[c], gzr[c], tmp, HW);
            for (i64 y = 0; y < H; ++y)
                for (i64 x = 0; x < W; ++x) mag[(y + 1) * PW + x + 1] = tmp[y * W + x];
        }
        const i64 zc = z - 1;
        if (zc >= z0 && zc < z1) {
            const double* m3[3] = {magr[slot(zc - 1, 3)], magr[slot(zc, 3)], magr[slot(zc + 1, 3)]};
            const int c = slot(zc, 3);
            nms_slice(gxr[c], gyr[c], gzr[c], m3, job.map + zc * job.map_slice, job.map_row, H, W, job.low_cmp,
                      job.high_cmp);
        }
    }
}

template <class In>
void slab3d_any(const medfuse::CannyJob& job, i64 z0, i64 z1, void* const* bufs) {
    switch (job.aperture) {
        case 3:
            return job.l2 ? slab3d<In, 3, true>(job, z0, z1, bufs)
                          : slab3d<In, 3, false>(job, z0, z1, bufs);
        case 5:
            return job.l2 ? slab3d<In, 5, true>(job, z0, z1, bufs)
                          : slab3d<In, 5, false>(job, z0, z1, bufs);
        default:
            return job.l2 ? slab3d<In, 7, true>(job, z0, z1, bufs)
                          : slab3d<In, 7, false>(job, z0, z1, bufs);
    }
}

}  // namespace kern

void canny2d_band(const CannyJob& job, std::int64_t r0, std::int64_t r1, void* const* bufs) {
    using namespace kern;
    if (job.exact_int) {
        switch (job.dtype) {
            case DType::u8:
                // int16 gradients fit apertures 3 and 5 (|g| <= 12240): twice the lanes.
                if (job.aperture == 7)
                    return band2d_any<unsigned char, int, int, int, true>(job, r0, r1, bufs);
                return band2d_any<unsigned char, short, int, int, false, short>(job, r0, r1, bufs);
            // 16-bit: int32 gradients; magnitudes and the direction test in
            // float64, exact here (|g| < 2^26, squares < 2^53) and much faster
            // than int64 on AVX2, which has no 64-bit multiply.
            // A narrow range (job.narrow16): int16 gradients, exact although
            // 16-bit sums of uint16 data may wrap (every step is a ring
            // operation and the true gradients fit), as the uint8 path.
            case DType::u16:
                if (job.narrow16) return band2d_any<unsigned short, short, int, int, false, short>(job, r0, r1, bufs);
                return band2d_any<unsigned short, int, double, double, false>(job, r0, r1, bufs);
            case DType::i16:
                if (job.narrow16) return band2d_any<short, short, int, int, false, short>(job, r0, r1, bufs);
                return band2d_any<short, int, double, double, false>(job, r0, r1, bufs);
            default:
                break;
        }
    }
    switch (job.dtype) {
        case DType::u8:
            return band2d_any<unsigned char, double, double, double, false>(job, r0, r1, bufs);
        case DType::u16:
            return band2d_any<unsigned short, double, double, double, false>(job, r0, r1, bufs);
        case DType::i16:
            return band2d_any<short, double, double, double, false>(job, r0, r1, bufs);
        case DType::f32:
            // float32 data: gradients in float32 (8 lanes), magnitudes and the
            // direction test in float64 (exact for integer-valued data).
            if (job.f32_in_f64)  // float32 sums could overflow: widen
                return band2d_any<float, double, double, double, false>(job, r0, r1, bufs);
            return band2d_any<float, float, double, double, false>(job, r0, r1, bufs);
        default:
            return band2d_any<double, double, double, double, false>(job, r0, r1, bufs);
    }
}

void canny3d_slab(const CannyJob& job, std::int64_t z0, std::int64_t z1, void* const* bufs) {
    using namespace kern;
    switch (job.dtype) {
        case DType::u8:
            return slab3d_any<unsigned char>(job, z0, z1, bufs);
        case DType::u16:
            return slab3d_any<unsigned short>(job, z0, z1, bufs);
        case DType::i16:
            return slab3d_any<short>(job, z0, z1, bufs);
        case DType::f32:
            return slab3d_any<float>(job, z0, z1, bufs);
        default:
            return slab3d_any<double>(job, z0, z1, bufs);
    }
}
