// conv2d register tiles with vectors over output channels ("cvec"), compiled
// for avx2 and avx512 (included inside the namespace medfuse::<isa> by
// conv2d_avx2.cpp / conv2d_avx512.cpp, after <immintrin.h>, <vector>,
// "common/checked_simd.hpp", "common/simd_transpose.hpp" and
// "convolve/conv2d.hpp").
//
// A tile is NC vectors of 8 output channels (ymm, on both ISAs: Zen 4 runs
// two 256-bit FMAs per cycle, the per-lane rate of one 512-bit FMA) x NP
// output pixels of one output row, any NP up to the register budget (avx512:
// 32 registers, 3 x 8, 2 x 12 or 1 x 16 accumulators; avx2: 16 registers,
// 3 x 4, 2 x 6 or 1 x 12); rows under 32 pixels that the widest tile does not
// divide run as one flat run of pixels across rows (tile_flat: a pointer per
// pixel). Per k = (input channel, ky, kx) in im2col order a tile loads the NC
// weight vectors (a weight panel of 8 channels per vector) and broadcasts each
// pixel's input value: acc = fma(w, x, acc). No lane is wasted on rows that
// are not a multiple of the vector width, and the input is read with scalar
// broadcasts, so stride 2 needs no even/odd split. The input comes from a
// zero-padded copy of the rows a band reads. The chain per output element
// (acc = 0, one FMA per k in order, + bias, ReLU) is the GEMM path's and the
// other direct paths': same bits, whatever the tiling or the thread count.
// The results (8 channels x up to 8 pixels per transpose) are stored as rows
// of pixels. On Zen 4 the tiles run at about 85% of the FMA peak (separate
// broadcasts; FMAs with an embedded {1to8} broadcast, one load per FMA, were
// 1.25x slower).
//
// The same tiles run the strided grad input (conv2d_backward.cpp): per
// phase a stride-1 correlation of a zero-padded copy of grad_out with the
// phase's taps, into row buffers that are then interleaved into gx.

namespace {
namespace cvec {

using i64 = std::int64_t;
constexpr int CW = 8;  // output channels per vector (a weight panel)
#if defined(__AVX512F__)
constexpr int kMaxNP[4] = {0, 16, 12, 8};
#else
constexpr int kMaxNP[4] = {0, 12, 6, 4};
#endif

struct Args {
    i64 pstride;  // floats between the weight panels of a tile (K * 8)
    i64 cin;      // input channels of the chain
    i64 kh, kw;   // taps
    i64 lci;      // floats between input channels in `in`
    i64 lky;      // floats between the taps' rows
    const i64* koff;  // tap kx's column at row + koff[kx]
    i64 ystride;  // floats between output channels in y
    bool relu;
};

// v's first n lanes (1..8) to p: plain 4-, 2- and 1-lane stores (a masked
// store, VMASKMOVPS, is slow on AMD cores; n is a constant in the tiles).
inline __attribute__((always_inline)) void store_n(float* p, __m256 v, int n) {
    if (n == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 q = _mm256_castps256_ps128(v);
    if (n & 4) {
        _mm_storeu_ps(p, q);
        p += 4;
        q = _mm256_extractf128_ps(v, 1);
    }
    if (n & 2) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_castps_si128(q));
        p += 2;
        q = _mm_movehl_ps(q, q);
    }
    if (n & 1) _mm_store_ss(p, q);
}

// + bias (+ 0 without one, as the GEMM path), ReLU, then 8 x 8 transposes
// (r[c] = channel c's pixels) and the first mr channels stored: channel c of
// the tile at y + c * ystride, pixels contiguous.
template <int NC, int NP>
inline __attribute__((always_inline)) void finish(__m256 (&acc)[NC][NP], const Args& t, float* y, int mr,
                                                  const float* bias) {
    const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 3
    for (int j = 0; j < NC; ++j) {
        const int nch = mr - CW * j < CW ? mr - CW * j : CW;
        if (nch <= 0) break;
        alignas(32) float bb[CW] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        if (bias)
            for (int l = 0; l < nch; ++l) bb[l] = bias[CW * j + l];
        const __m256 bv = _mm256_load_ps(bb);
#pragma GCC unroll 2
        for (int i0 = 0; i0 < NP; i0 += 8) {
            const int npx = NP - i0 < 8 ? NP - i0 : 8;
            __m256 r[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; ++q) {
                if (i0 + q < NP) {
                    __m256 o = _mm256_add_ps(acc[j][i0 + q < NP ? i0 + q : 0], bv);
                    if (t.relu) o = _mm256_and_ps(_mm256_cmp_ps(o, zero, _CMP_NLE_UQ), o);  // o <= 0 ? 0 : o, NaN kept
                    r[q] = o;
                } else {
                    r[q] = zero;
                }
            }
            simd_transpose::transpose8(r);
#pragma GCC unroll 8
            for (int c = 0; c < 8; ++c) {
                if (c >= nch) break;
                store_n(y + (CW * j + c) * t.ystride + i0, r[c], npx);
            }
        }
    }
}

// Tile: a -> the first weight panel at k = 0, in -> the input value of pixel
// 0 at tap row 0 of input channel 0 (pixel i at + i * SW, tap kx at + koff[kx]); y -> output
// channel 0, pixel 0 (channel c at + c * ystride); the first mr channels are
// stored; bias: the tile's first channel's bias, or null.
template <int NC, int NP, int SW>
void tile(const Args& t, const float* a, const float* in, float* y, int mr, const float* bias) {
    __m256 acc[NC][NP];
#pragma GCC unroll 3
    for (int j = 0; j < NC; ++j)
#pragma GCC unroll 16
        for (int i = 0; i < NP; ++i) acc[j][i] = _mm256_setzero_ps();
    const i64 ps = t.pstride, kw = t.kw;
    const i64* koff = t.koff;
    for (i64 ci = 0; ci < t.cin; ++ci) {
        const float* plane = in + ci * t.lci;
        for (i64 ky = 0; ky < t.kh; ++ky) {
            const float* row = plane + ky * t.lky;
            for (i64 kx = 0; kx < kw; ++kx, a += CW) {
                const float* p = row + koff[kx];
                __m256 w[NC];
#pragma GCC unroll 3
                for (int j = 0; j < NC; ++j) w[j] = _mm256_loadu_ps(a + j * ps);
#pragma GCC unroll 16
                for (int i = 0; i < NP; ++i) {
                    const __m256 b = _mm256_set1_ps(p[i * SW]);
#pragma GCC unroll 3
                    for (int j = 0; j < NC; ++j) acc[j][i] = _mm256_fmadd_ps(w[j], b, acc[j][i]);
                }
            }
        }
    }
    finish(acc, t, y, mr, bias);
}

// The same tile over NP pixels anywhere in the band (a run of pixels across
// output rows): pixel i's input at q[i] (tap row 0 of input channel 0); y ->
// output channel 0, pixel 0 of the run (the output rows are contiguous).
template <int NC, int NP>
void tile_flat(const Args& t, const float* a, const float* const* pix, float* y, int mr, const float* bias) {
    __m256 acc[NC][NP];
#pragma GCC unroll 3
    for (int j = 0; j < NC; ++j)
#pragma GCC unroll 16
        for (int i = 0; i < NP; ++i) acc[j][i] = _mm256_setzero_ps();
    const float* q[NP];
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) q[i] = pix[i];
    const i64 ps = t.pstride, kw = t.kw;
    const i64* koff = t.koff;
    for (i64 ci = 0; ci < t.cin; ++ci)
        for (i64 ky = 0; ky < t.kh; ++ky) {
            const i64 roff = ci * t.lci + ky * t.lky;
            for (i64 kx = 0; kx < kw; ++kx, a += CW) {
                const i64 off = roff + koff[kx];
                __m256 w[NC];
#pragma GCC unroll 3
                for (int j = 0; j < NC; ++j) w[j] = _mm256_loadu_ps(a + j * ps);
#pragma GCC unroll 16
                for (int i = 0; i < NP; ++i) {
                    const __m256 b = _mm256_set1_ps(q[i][off]);
#pragma GCC unroll 3
                    for (int j = 0; j < NC; ++j) acc[j][i] = _mm256_fmadd_ps(w[j], b, acc[j][i]);
                }
            }
        }
    finish(acc, t, y, mr, bias);
}

using TileFn = void (*)(const Args&, const float*, const float*, float*, int, const float*);

template <int NC, int SW, std::size_t... I>
constexpr std::array<TileFn, sizeof...(I)> table(std::index_sequence<I...>) {
    return {{&tile<NC, static_cast<int>(I) + 1, SW>...}};
}

// The tile for nc vectors x np pixels (1 <= np <= kMaxNP[nc]).
inline TileFn pick(int nc, int np, i64 sw) {
    static constexpr auto t3 = table<3, 1>(std::make_index_sequence<kMaxNP[3]>());
    static constexpr auto t2 = table<2, 1>(std::make_index_sequence<kMaxNP[2]>());
    static constexpr auto t1 = table<1, 1>(std::make_index_sequence<kMaxNP[1]>());
    static constexpr auto s3 = table<3, 2>(std::make_index_sequence<kMaxNP[3]>());
    static constexpr auto s2 = table<2, 2>(std::make_index_sequence<kMaxNP[2]>());
    static constexpr auto s1 = table<1, 2>(std::make_index_sequence<kMaxNP[1]>());
    const std::size_t i = static_cast<std::size_t>(np - 1);
    if (sw == 2) return nc == 3 ? s3[i] : nc == 2 ? s2[i] : s1[i];
    return nc == 3 ? t3[i] : nc == 2 ? t2[i] : t1[i];
}

// Per-thread scratch, grown and kept across calls (a fresh zeroed vector per
// band cost as much as a tenth of a small layer); slot 0: input copies, 1:
// output rows.
inline float* scratch(int slot, i64 n) {
    thread_local std::unique_ptr<float[]> buf[2];
    thread_local i64 have[2] = {0, 0};
    if (have[slot] < n) {
        buf[slot].reset(new float[static_cast<std::size_t>(n)]);
        have[slot] = n;
    }
    return buf[slot].get();
}

// A padded row d[0, n): zeros, src[0, j1 - j0) at [j0, j1), zeros. Whole
// vectors: the row zeroed (the last vector ending at n), then the copy (the
// last vector ending at j1); scalar loops only for rows under 8 floats. (Plain
// loops cost a tenth of a 5x5 stride-2 layer: rows of 31 floats.)
inline void pad_row(float* d, i64 n, i64 j0, i64 j1, const float* src) {
    const i64 m = j1 - j0;
    if (n < 8 || (m > 0 && m < 8)) {
        for (i64 j = 0; j < j0; ++j) d[j] = 0.f;
        for (i64 j = j0; j < j1; ++j) d[j] = src[j - j0];
        for (i64 j = j1; j < n; ++j) d[j] = 0.f;
        return;
    }
    const __m256 z = _mm256_setzero_ps();
    for (i64 j = 0; j + 8 < n; j += 8) _mm256_storeu_ps(d + j, z);
    _mm256_storeu_ps(d + n - 8, z);
    if (m <= 0) return;
    float* dm = d + j0;
    for (i64 j = 0; j + 8 < m; j += 8) _mm256_storeu_ps(dm + j, _mm256_loadu_ps(src + j));
    _mm256_storeu_ps(dm + m - 8, _mm256_loadu_ps(src + m - 8));
}

using FlatFn = void (*)(const Args&, const float*, const float* const*, float*, int, const float*);

template <int NC, std::size_t... I>
constexpr std::array<FlatFn, sizeof...(I)> flat_table(std::index_sequence<I...>) {
    return {{&tile_flat<NC, static_cast<int>(I) + 1>...}};
}

inline FlatFn pick_flat(int nc, int np) {
    static constexpr auto f3 = flat_table<3>(std::make_index_sequence<kMaxNP[3]>());
    static constexpr auto f2 = flat_table<2>(std::make_index_sequence<kMaxNP[2]>());
    static constexpr auto f1 = flat_table<1>(std::make_index_sequence<kMaxNP[1]>());
    const std::size_t i = static_cast<std::size_t>(np - 1);
    return nc == 3 ? f3[i] : nc == 2 ? f2[i] : f1[i];
}

// Vectors per channel tile when `left` panels remain: 3 where it can, but
// 4 -> 2 + 2 and 7 -> 3 + 2 + 2 (a 1-vector tile reuses each broadcast once).
inline int channel_tile(i64 left) {
    if (left >= 3 && left != 4) return 3;
    return left >= 2 ? 2 : 1;
}

// The channel-tile loop shared by row and run_flat: npix output pixels of
// channel panels 0 .. mblocks - 1 of a group's cog channels, in channel tiles
// (channel_tile) and, per channel tile, pixel tiles of near-equal width up to
// its budget. Per tile: tile_fn(nc, p0, p1, a, yc, mr, bc) for pixels
// [p0, p1) with a -> the tile's first weight panel, yc -> its output channel
// 0 at pixel p0 (y -> channel 0, pixel 0), mr channels stored, bc -> its
// first channel's bias or null. Only the pixel addressing differs between
// the callers.
template <class TileFn_>
inline __attribute__((always_inline)) void channel_tiles(const Args& t, const float* apack, i64 mblocks, i64 cog,
                                                         i64 npix, float* y, const float* bias, TileFn_&& tile_fn) {
    for (i64 mb = 0; mb < mblocks;) {
        const int nc = channel_tile(mblocks - mb);
        const int mr = static_cast<int>(std::min<i64>(cog - mb * CW, nc * CW));
        const i64 ntile = (npix + kMaxNP[nc] - 1) / kMaxNP[nc];
        const float* a = apack + mb * t.pstride;
        float* yc = y + mb * CW * t.ystride;
        const float* bc = bias ? bias + mb * CW : nullptr;
        for (i64 q = 0, p0 = 0; q < ntile; ++q) {
            const i64 p1 = npix * (q + 1) / ntile;
            tile_fn(nc, p0, p1, a, yc + p0, mr, bc);
            p0 = p1;
        }
        mb += nc;
    }
}

// One row of `npix` output pixels (channel panels 0 .. mblocks - 1 of a
// group's cog channels): pixel tiles of near-equal width up to the budget of
// each channel tile. in: pixel 0 at tap row 0 of input channel 0 (pixel i at
// in + i * sw, sw = 1 or 2); y: channel 0, pixel 0.
inline void row(const Args& t, const float* apack, i64 mblocks, i64 cog, const float* in, float* y, i64 npix,
                const float* bias, i64 sw) {
    channel_tiles(t, apack, mblocks, cog, npix, y, bias,
                  [&](int nc, i64 p0, i64 p1, const float* a, float* yc, int mr, const float* bc) {
                      pick(nc, static_cast<int>(p1 - p0), sw)(t, a, in + p0 * sw, yc, mr, bc);
                  });
}

// Output pixels [f0, f1) of a band (counted row after row, rows of wo
// pixels, the band's first row ho0) as one flat run: tiles of near-equal width
// up to the budget, a tile's pixels possibly on two or more rows. in: the band's
// input at tap row 0 of input channel 0 for output row ho0 (output row ho0 + r
// at + r * rstride, pixel col at + col * sw); y: the band's output channel 0 at
// pixel f0.
inline void run_flat(const Args& t, const float* apack, i64 mblocks, i64 cog, const float* in, i64 rstride, i64 sw,
                     i64 wo, i64 f0, i64 f1, float* y, const float* bias) {
    const float* pix[16];
    channel_tiles(t, apack, mblocks, cog, f1 - f0, y, bias,
                  [&](int nc, i64 p0, i64 p1, const float* a, float* yc, int mr, const float* bc) {
                      for (i64 i = p0; i < p1; ++i) {
                          const i64 f = f0 + i;
                          pix[i - p0] = in + (f / wo) * rstride + (f % wo) * sw;
                      }
                      pick_flat(nc, static_cast<int>(p1 - p0))(t, a, pix, yc, mr, bc);
                  });
}

}  // namespace cvec
}  // namespace

// Output rows [ho0, ho1) of image img, group g (apack: the group's weights in
// panels of K x 8): the band's input rows copied once, zero-padded, then one
// cvec::row per output row.
void conv2d_cvec_rows(const Conv2dJob& job, const float* apack, std::int64_t img, std::int64_t g, std::int64_t ho0,
                      std::int64_t ho1) {
    using i64 = std::int64_t;
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const i64 W = job.wd, pw = job.pw;
    const float* ximg = job.x + (img * job.c + g * cg) * job.h * W;
    float* ybase = job.y + (img * job.co + g * cog) * P;
    // Padded row: column j is input column j - pw (zeros outside the image).
    // (Split into even and odd columns at stride 2, as the other direct paths
    // do, the tiles ran no faster and the strided copy cost a tenth more.)
    const i64 lp = (job.wo - 1) * job.sw + (job.kw - 1) * job.dw + 1;
    const i64 hs = ho0 * job.sh - job.ph;
    const i64 nb = (ho1 - 1 - ho0) * job.sh + (job.kh - 1) * job.dh + 1;
    float* buf = cvec::scratch(0, cg * nb * lp);
    const i64 j0 = std::min(lp, pw), j1 = std::max(j0, std::min(lp, W + pw));  // columns inside the image
    for (i64 ci = 0; ci < cg; ++ci)
        for (i64 r = 0; r < nb; ++r) {
            const i64 hi = hs + r;
            const bool copy = hi >= 0 && hi < job.h && j1 > j0;
            cvec::pad_row(buf + (ci * nb + r) * lp, lp, copy ? j0 : lp, copy ? j1 : lp,
                          copy ? ximg + (ci * job.h + hi) * W + (j0 - pw) : ximg);
        }
    i64 koff[conv2d_detail::kDirectMaxKw];
    for (i64 kx = 0; kx < job.kw; ++kx) koff[kx] = kx * job.dw;
    const cvec::Args t{K * cvec::CW, cg, job.kh, job.kw, nb * lp, job.dh * lp, koff, P, job.relu};
    const i64 mblocks = (cog + cvec::CW - 1) / cvec::CW;
    const float* bias = job.bias ? job.bias + g * cog : nullptr;
    // Rows narrower than 32 pixels that the widest tile does not divide: one
    // flat run per band (a 14-pixel row: tiles of 8 pixels over two rows
    // instead of 7 + 7, avx2 4 instead of 4 + 4 + 3 + 3; Zen 4, 1 thread,
    // 4x96x28x28 k5 s2 g4: 0.91 -> 0.89 ms avx512, 0.92 -> 0.90 avx2; on rows
    // the tiles divide, or wider ones, the pixel pointers cost more than they save).
    if (job.wo % cvec::kMaxNP[3] != 0 && job.wo < 32) {
        cvec::run_flat(t, apack, mblocks, cog, buf, job.sh * lp, job.sw, job.wo, 0, (ho1 - ho0) * job.wo,
                       ybase + ho0 * job.wo, bias);
        return;
    }
    for (i64 ho = ho0; ho < ho1; ++ho)
        cvec::row(t, apack, mblocks, cog, buf + (ho - ho0) * job.sh * lp, ybase + ho * job.wo, job.wo, bias,
                  job.sw);
}

// Grad input, stride > 1 (see CvecGradPlan in conv2d_backward.hpp): input rows
// [hi0, hi1) of image img, group g. The grad_out rows the band reads are copied
// once, zero-padded (rows and columns outside grad_out); per input row and
// column phase rw, cvec::row computes the phase's pixels of every channel of
// the group into a row buffer (chain: acc = 0, one FMA per (grad_out channel,
// t, u) in order), then the phases are interleaved into gx.
void conv2d_cvec_grad_input(const Conv2dGradJob<float>& job, const CvecGradPlan& plan, std::int64_t img,
                            std::int64_t g, std::int64_t hi0, std::int64_t hi1) {
    using i64 = std::int64_t;
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 H = job.h, W = job.wd, HO = job.ho, WO = job.wo, sh = job.sh, sw = job.sw;
    float* gxg = job.gx + (img * job.c + g * cg) * H * W;
    i64 r_lo = 0, r_hi = -1;
    for (i64 hi = hi0; hi < hi1; ++hi)
        for (i64 rw = 0; rw < sw; ++rw) {
            const CvecGradPhase& ph = plan.phases[static_cast<std::size_t>((hi % sh) * sw + rw)];
            if (ph.nkh == 0 || ph.nkw == 0 || ph.ncols == 0) continue;
            const i64 lo = hi / sh + ph.eh, top = lo + (ph.nkh - 1) * ph.ddh;
            if (r_lo > r_hi) {
                r_lo = lo;
                r_hi = top;
            } else {
                r_lo = std::min(r_lo, lo);
                r_hi = std::max(r_hi, top);
            }
        }
    const i64 nbr = r_hi >= r_lo ? r_hi - r_lo + 1 : 0, wb = plan.c_hi - plan.c_lo + 1;
    float* buf = cvec::scratch(0, cog * nbr * (wb > 0 ? wb : 0));
    if (nbr > 0) {
        const i64 j0 = std::min(wb, std::max<i64>(0, -plan.c_lo));  // first column inside grad_out
        const i64 j1 = std::max(j0, std::min(wb, WO - plan.c_lo));  // past the last one
        const float* gyg = job.gy + (img * job.co + g * cog) * HO * WO;
        for (i64 o = 0; o < cog; ++o)
            for (i64 r = 0; r < nbr; ++r) {
                const i64 gr = r_lo + r;
                const bool inside = gr >= 0 && gr < HO;
                const bool copy = inside && j1 > j0;  // buffer column j is grad_out column j + c_lo
                cvec::pad_row(buf + (o * nbr + r) * wb, wb, copy ? j0 : wb, copy ? j1 : wb,
                              copy ? gyg + (o * HO + gr) * WO + (j0 + plan.c_lo) : gyg);
            }
    }
    const i64 wr = (W + sw - 1) / sw;  // widest phase
    float* rbuf = cvec::scratch(1, sw * cg * wr);
    const i64 mblocks = (cg + cvec::CW - 1) / cvec::CW;
    std::vector<i64> koff;
    for (i64 hi = hi0; hi < hi1; ++hi) {
        const i64 rh = hi % sh, a = hi / sh;
        bool any = false;
        for (i64 rw = 0; rw < sw; ++rw) {
            const CvecGradPhase& ph = plan.phases[static_cast<std::size_t>(rh * sw + rw)];
            if (ph.nkh == 0 || ph.nkw == 0 || ph.ncols == 0) continue;
            any = true;
            koff.resize(static_cast<std::size_t>(ph.nkw));
            for (i64 u = 0; u < ph.nkw; ++u) koff[static_cast<std::size_t>(u)] = u * ph.ddw;
            const cvec::Args t{cog * ph.nkh * ph.nkw * cvec::CW, cog, ph.nkh, ph.nkw, nbr * wb, ph.ddh * wb,
                               koff.data(), wr, false};
            const float* in = buf + (a + ph.eh - r_lo) * wb + (ph.ew - plan.c_lo);
            cvec::row(t, ph.apack + g * ph.group_stride, mblocks, cg, in, rbuf + rw * cg * wr, ph.ncols, nullptr, 1);
        }
        for (i64 c = 0; c < cg; ++c) {
            float* dst = gxg + (c * H + hi) * W;
            if (!any) {
                std::fill(dst, dst + W, 0.f);
                continue;
            }
            i64 done = 0;  // leading pixels already written (stride 2, both phases with taps)
            if (sw == 2 && plan.phases[static_cast<std::size_t>(rh * 2)].nkw != 0 &&
                plan.phases[static_cast<std::size_t>(rh * 2)].nkh != 0 &&
                plan.phases[static_cast<std::size_t>(rh * 2 + 1)].nkw != 0 &&
                plan.phases[static_cast<std::size_t>(rh * 2 + 1)].nkh != 0) {
                const float* s0 = rbuf + c * wr;
                const float* s1 = rbuf + (cg + c) * wr;
                const i64 n1 = plan.phases[static_cast<std::size_t>(rh * 2 + 1)].ncols;  // <= phase 0's
                for (; done + 8 <= n1; done += 8) {
                    const __m256 e = _mm256_loadu_ps(s0 + done), o = _mm256_loadu_ps(s1 + done);
                    const __m256 ul = _mm256_unpacklo_ps(e, o), uh = _mm256_unpackhi_ps(e, o);
                    _mm256_storeu_ps(dst + 2 * done, _mm256_permute2f128_ps(ul, uh, 0x20));
                    _mm256_storeu_ps(dst + 2 * done + 8, _mm256_permute2f128_ps(ul, uh, 0x31));
                }
            }
            for (i64 rw = 0; rw < sw; ++rw) {
                const CvecGradPhase& ph = plan.phases[static_cast<std::size_t>(rh * sw + rw)];
                const bool has = ph.nkh != 0 && ph.nkw != 0;
                const float* s = rbuf + (rw * cg + c) * wr;
                for (i64 b = done; b < ph.ncols; ++b) dst[rw + sw * b] = has ? s[b] : 0.f;
            }
        }
    }
}
