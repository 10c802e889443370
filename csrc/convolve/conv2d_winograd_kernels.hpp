// Winograd F(2x2, 3x3) band kernel of conv2d (see conv2d.hpp), compiled once
// per ISA: included inside namespace medfuse::<isa> by conv2d.cpp (baseline),
// conv2d_avx2.cpp and conv2d_avx512.cpp, after <cstdint>, <cstring>,
// <algorithm> (and <immintrin.h> for the SIMD builds).
//
// One call: image `img`, group `g`, tile rows [r0, r1) (a tile = 2x2 output
// pixels, read from a 4x4 input patch). Per input channel, the band's input
// rows are copied once into zero-padded even/odd column buffers, so tile tx
// reads d[i][j] = row_i[2 tx + j] as plain loads at index tx; then
//   V = B^T d B  (adds only)                      -> V[xi][c][tile], xi = 4 i + j,
//       each tile row padded to whole vectors (tiles past the row: zeros' transforms)
// and per block of up to WNV vectors of one tile row and panel of WP output channels:
//   M[xi] = U[xi] (WP x cg) * V[xi] (cg x block)  -> acc = 0, one FMA per input
//           channel c = 0..cg-1 in order (multiply then add on the portable path),
//           all 16 products of the block kept in L1 (Mloc)
//   Y = A^T M A  (adds only), + bias, ReLU          -> y, clipped at the border.
// Every operation's order is fixed by the shapes alone (tiles are independent;
// the band split changes nothing), so the results do not depend on the thread
// count, and the avx2 and avx512 builds (both FMA) give the same bits.

namespace {

using wi64 = std::int64_t;

#if defined(__AVX512F__)
constexpr int WL = 16;  // lanes
constexpr int WNV = 3;  // vectors of tiles per register tile
constexpr int WR = 8;   // output channels per register tile (a whole panel)
using wvec = __m512;
inline wvec wload(const float* p) { return _mm512_loadu_ps(p); }
inline void wstore(float* p, wvec v) { _mm512_storeu_ps(p, v); }
inline wvec wzero() { return _mm512_setzero_ps(); }
inline wvec wset1(float a) { return _mm512_set1_ps(a); }
inline wvec wadd(wvec a, wvec b) { return _mm512_add_ps(a, b); }
inline wvec wsub(wvec a, wvec b) { return _mm512_sub_ps(a, b); }
inline wvec wfma(wvec a, wvec b, wvec c) { return _mm512_fmadd_ps(a, b, c); }
// v <= 0 ? +0 : v (NaN kept, as torch.relu and the other paths)
inline wvec wrelu(wvec v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v); }
// ev[k] = src[2k], od[k] = src[2k + 1] for k < n.
inline void wsplit(const float* src, float* ev, float* od, wi64 n) {
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    wi64 k = 0;
    for (; k + 16 <= n; k += 16) {
        const __m512 a = _mm512_loadu_ps(src + 2 * k), b = _mm512_loadu_ps(src + 2 * k + 16);
        _mm512_storeu_ps(ev + k, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(od + k, _mm512_permutex2var_ps(a, io, b));
    }
    for (; k < n; ++k) {
        ev[k] = src[2 * k];
        od[k] = src[2 * k + 1];
    }
}
// dst[2l] = a[l], dst[2l + 1] = b[l] for 2l, 2l + 1 < count.
inline void wmerge(float* dst, wvec a, wvec b, wi64 count) {
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ih = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512 lo = _mm512_permutex2var_ps(a, il, b), hi = _mm512_permutex2var_ps(a, ih, b);
    if (count >= 32) {
        _mm512_storeu_ps(dst, lo);
        _mm512_storeu_ps(dst + 16, hi);
        return;
    }
    const __mmask16 m0 = static_cast<__mmask16>(count >= 16 ? 0xffff : (1u << count) - 1);
    const __mmask16 m1 = static_cast<__mmask16>(count <= 16 ? 0 : (1u << (count - 16)) - 1);
    checked::mask_storeu_ps(dst, m0, lo);
    checked::mask_storeu_ps(dst + 16, m1, hi);
}
#elif defined(__AVX2__)
constexpr int WL = 8;
constexpr int WNV = 3;
constexpr int WR = 4;  // half a panel: 12 accumulators in 16 ymm registers
using wvec = __m256;
inline wvec wload(const float* p) { return _mm256_loadu_ps(p); }
inline void wstore(float* p, wvec v) { _mm256_storeu_ps(p, v); }
inline wvec wzero() { return _mm256_setzero_ps(); }
inline wvec wset1(float a) { return _mm256_set1_ps(a); }
inline wvec wadd(wvec a, wvec b) { return _mm256_add_ps(a, b); }
inline wvec wsub(wvec a, wvec b) { return _mm256_sub_ps(a, b); }
inline wvec wfma(wvec a, wvec b, wvec c) { return _mm256_fmadd_ps(a, b, c); }
inline wvec wrelu(wvec v) { return _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ)); }
inline void wsplit(const float* src, float* ev, float* od, wi64 n) {
    wi64 k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 a = _mm256_loadu_ps(src + 2 * k), b = _mm256_loadu_ps(src + 2 * k + 8);
        // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6]
        const __m256d e = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88));
        const __m256d o = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD));
        _mm256_storeu_ps(ev + k, _mm256_castpd_ps(_mm256_permute4x64_pd(e, 0xD8)));
        _mm256_storeu_ps(od + k, _mm256_castpd_ps(_mm256_permute4x64_pd(o, 0xD8)));
    }
    for (; k < n; ++k) {
        ev[k] = src[2 * k];
        od[k] = src[2 * k + 1];
    }
}
inline void wmerge(float* dst, wvec a, wvec b, wi64 count) {
    const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    const __m256 r0 = _mm256_permute2f128_ps(lo, hi, 0x20), r1 = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (count >= 16) {
        _mm256_storeu_ps(dst, r0);
        _mm256_storeu_ps(dst + 8, r1);
        return;
    }
    float t[16];
    _mm256_storeu_ps(t, r0);
    _mm256_storeu_ps(t + 8, r1);
    for (wi64 l = 0; l < count; ++l) dst[l] = t[l];
}
#else
constexpr int WL = 4;
constexpr int WNV = 2;
constexpr int WR = 8;
struct wvec {
    float v[4];
};
inline wvec wload(const float* p) { wvec r; for (int l = 0; l < 4; ++l) r.v[l] = p[l]; return r; }
inline void wstore(float* p, wvec a) { for (int l = 0; l < 4; ++l) p[l] = a.v[l]; }
inline wvec wzero() { wvec r; for (int l = 0; l < 4; ++l) r.v[l] = 0.f; return r; }
inline wvec wset1(float a) { wvec r; for (int l = 0; l < 4; ++l) r.v[l] = a; return r; }
inline wvec wadd(wvec a, wvec b) { for (int l = 0; l < 4; ++l) a.v[l] = a.v[l] + b.v[l]; return a; }
inline wvec wsub(wvec a, wvec b) { for (int l = 0; l < 4; ++l) a.v[l] = a.v[l] - b.v[l]; return a; }
inline wvec wfma(wvec a, wvec b, wvec c) { for (int l = 0; l < 4; ++l) c.v[l] = c.v[l] + a.v[l] * b.v[l]; return c; }
inline wvec wrelu(wvec a) { for (int l = 0; l < 4; ++l) a.v[l] = a.v[l] <= 0.f ? 0.f : a.v[l]; return a; }
inline void wsplit(const float* src, float* ev, float* od, wi64 n) {
    for (wi64 k = 0; k < n; ++k) {
        ev[k] = src[2 * k];
        od[k] = src[2 * k + 1];
    }
}
inline void wmerge(float* dst, wvec a, wvec b, wi64 count) {  // at most 2 * 4 outputs, as the SIMD versions
    for (wi64 l = 0; l < 4 && 2 * l < count; ++l) {
        dst[2 * l] = a.v[l];
        if (2 * l + 1 < count) dst[2 * l + 1] = b.v[l];
    }
}
#endif
constexpr int WP = conv2d_detail::kWinoPanel;
static_assert(WP % WR == 0, "register tile rows must divide the weight panel");
static_assert(conv2d_detail::kWinoSlack >= WL, "scratch slack must hold one vector");
static_assert(conv2d_detail::kWinoTileAlign % WL == 0, "tile padding must hold whole vectors");
static_assert(WL * WNV <= conv2d_detail::kWinoBlock, "the scratch holds one block of products");

// Register tile: rows r0..r0+WR-1 of one panel x WNV vectors of tiles.
// u: panel (cg x WP, channel-major), v: V[xi] at the first tile, m: M[xi] row r0.
// Floats from one transformed plane xi to the next: rows x ntp, plus one
// cache line so the 16 planes do not fall on the same L1 sets (their
// size is often a multiple of 4 KiB).
inline wi64 wino_vps(wi64 rows, wi64 ntp) { return rows * ntp + conv2d_detail::kWinoSkew; }

template <int NV, int R>
inline void wino_tile(const float* u, int r0, const float* v, float* m, wi64 cg, wi64 ntp, wi64 mld) {
    wvec acc[R][NV];
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = wzero();
    for (wi64 c = 0; c < cg; ++c) {
        wvec b[NV];
        for (int j = 0; j < NV; ++j) b[j] = wload(v + c * ntp + j * WL);
        const float* uc = u + c * WP + r0;
        for (int i = 0; i < R; ++i) {
            const wvec a = wset1(uc[i]);
            for (int j = 0; j < NV; ++j) acc[i][j] = wfma(a, b[j], acc[i][j]);
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < NV; ++j) wstore(m + i * mld + j * WL, acc[i][j]);
}

// Rows per register tile for NV vectors: WR, but the whole panel where WR x NV
// would leave fewer than 8 accumulators (each gets one FMA per input channel:
// 4 chains of a 4-cycle FMA run at half the rate of two FMAs per cycle). On
// AVX2 (WR = 4) the one-vector tiles at a row's end, e.g. 8 of the 32 tiles of
// a 64-pixel row, take 8 rows. (Same bits: each output's FMA chain is unchanged.
// Zen 4 as AVX2, 4x16x64x64 -> 32, 3x3, 1 thread, five alternating processes
// each: 1.01-1.46 ms, median 1.30, before; 1.00-1.26, median 1.04, after.)
template <int NV>
constexpr int wino_rows() {
    return WR * NV >= 8 || WP < 8 ? WR : WP;
}

// Input transform of tile rows [r0, r1) into V. rb: the band's 2 (r1 - r0) + 2
// input rows of one channel, each as even and odd columns (rowlen floats each).
void wino_in(const Conv2dJob& job, wi64 img, wi64 g, wi64 r0, wi64 r1, float* V, float* rb, wi64 ntp, wi64 rowlen,
             wi64 twp) {
    const wi64 G = job.groups, cg = job.c / G, H = job.h, W = job.wd, nrow = r1 - r0;
    const wi64 pw = job.pw, vps = wino_vps(cg, ntp);
    // Columns 2k - pw (even buffer) and 2k + 1 - pw (odd) for k in [0, rowlen):
    // k in [klo, khi) reads inside the row with both.
    const wi64 klo = std::min(rowlen, (pw + 1) / 2);
    const wi64 last = W - 2 + pw;  // 2k + 1 - pw <= W - 1
    const wi64 khi = last < 0 ? klo : std::max(klo, std::min(rowlen, last / 2 + 1));
    for (wi64 c = 0; c < cg; ++c) {
        const float* plane = job.x + (img * job.c + g * cg + c) * H * W;
        float* Vc = V + c * ntp;
        for (wi64 i = 0; i < 2 * nrow + 2; ++i) {
            float* ev = rb + (2 * i) * rowlen;
            float* od = ev + rowlen;
            const wi64 hi = 2 * r0 - job.ph + i;
            if (hi < 0 || hi >= H) {
                std::fill(ev, ev + 2 * rowlen, 0.f);
                continue;
            }
            const float* src = plane + hi * W;
            for (wi64 k = 0; k < klo; ++k) {
                const wi64 xe = 2 * k - pw, xo = xe + 1;
                ev[k] = xe >= 0 && xe < W ? src[xe] : 0.f;
                od[k] = xo >= 0 && xo < W ? src[xo] : 0.f;
            }
            wsplit(src + 2 * klo - pw, ev + klo, od + klo, khi - klo);
            for (wi64 k = khi; k < rowlen; ++k) {
                const wi64 xe = 2 * k - pw, xo = xe + 1;
                ev[k] = xe >= 0 && xe < W ? src[xe] : 0.f;
                od[k] = xo >= 0 && xo < W ? src[xo] : 0.f;
            }
        }
        for (wi64 r = r0; r < r1; ++r) {
            const float* rr = rb + 2 * (2 * (r - r0)) * rowlen;  // input row 2 r - ph, even columns
            float* vt = Vc + (r - r0) * twp;  // tile tx at vt[tx]; tiles tw..twp-1 from the zero padding
            for (wi64 tx = 0; tx < twp; tx += WL) {
                wvec t[4][4];
                for (int j = 0; j < 4; ++j) {
                    const wi64 off = tx + (j >> 1);
                    const int eo = j & 1;
                    const wvec d0 = wload(rr + (0 + eo) * rowlen + off), d1 = wload(rr + (2 + eo) * rowlen + off);
                    const wvec d2 = wload(rr + (4 + eo) * rowlen + off), d3 = wload(rr + (6 + eo) * rowlen + off);
                    t[0][j] = wsub(d0, d2);
                    t[1][j] = wadd(d1, d2);
                    t[2][j] = wsub(d2, d1);
                    t[3][j] = wsub(d1, d3);
                }
                for (int i = 0; i < 4; ++i) {
                    wvec v[4];
                    v[0] = wsub(t[i][0], t[i][2]);
                    v[1] = wadd(t[i][1], t[i][2]);
                    v[2] = wsub(t[i][2], t[i][1]);
                    v[3] = wsub(t[i][1], t[i][3]);
                    for (int j = 0; j < 4; ++j) wstore(vt + tx + (4 * i + j) * vps, v[j]);
                }
            }
        }
    }
}

// Register tiles of all 16 products for tiles [tx0, tx0 + NV WL) of tile row
// r (band row rb) and output channels p WP .. p WP + WP - 1 into Mloc
// [16][WP][NV WL], then their output transform, + bias, ReLU, into y (the
// products stay in L1 instead of a band-sized M).
template <int NV>
void wino_block(const Conv2dJob& job, const float* U, const float* V, float* Mloc, wi64 img, wi64 g, wi64 r,
                wi64 rb, wi64 tx0, wi64 p, wi64 ntp, wi64 twp) {
    const wi64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const wi64 panels = (cog + WP - 1) / WP, vps = wino_vps(cg, ntp);
    constexpr wi64 mld = NV * WL, mps = WP * mld;
    for (int xi = 0; xi < 16; ++xi) {
        const float* u = U + (xi * panels + p) * cg * WP;
        const float* v = V + xi * vps + rb * twp + tx0;
        constexpr int R = wino_rows<NV>();
        for (int rr = 0; rr < WP; rr += R) wino_tile<NV, R>(u, rr, v, Mloc + xi * mps + rr * mld, cg, ntp, mld);
    }
    const float* bias = job.bias ? job.bias + g * cog : nullptr;
    const wi64 HO = job.ho, WO = job.wo;
    const int nout = 2 * r + 1 < HO ? 2 : 1;
    for (wi64 i0 = 0; i0 < WP && p * WP + i0 < cog; ++i0) {
        const wi64 o = p * WP + i0;
        const wvec bv = wset1(bias ? bias[o] : 0.f);
        float* yrow = job.y + ((img * job.co + g * cog + o) * HO + 2 * r) * WO;
        for (int jv = 0; jv < NV; ++jv) {
            const wi64 tx = tx0 + jv * WL;
            if (2 * tx >= WO) break;
            wvec u[2][4];
            for (int j = 0; j < 4; ++j) {
                const float* mj = Mloc + j * mps + i0 * mld + jv * WL;
                const wvec m0 = wload(mj), m1 = wload(mj + 4 * mps), m2 = wload(mj + 8 * mps), m3 = wload(mj + 12 * mps);
                u[0][j] = wadd(wadd(m0, m1), m2);
                u[1][j] = wsub(wsub(m1, m2), m3);
            }
            for (int i = 0; i < nout; ++i) {
                wvec y0 = wadd(wadd(wadd(u[i][0], u[i][1]), u[i][2]), bv);
                wvec y1 = wadd(wsub(wsub(u[i][1], u[i][2]), u[i][3]), bv);
                if (job.relu) {
                    y0 = wrelu(y0);
                    y1 = wrelu(y1);
                }
                wmerge(yrow + i * WO + 2 * tx, y0, y1, WO - 2 * tx);
            }
        }
    }
}

}  // namespace

// U: the group's transformed weights, [16][panels][cg][WP]. scratch: see
// conv2d_detail::wino_scratch.
void conv2d_winograd_band(const Conv2dJob& job, const float* U, wi64 img, wi64 g, wi64 r0, wi64 r1,
                          float* scratch) {
    const wi64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const wi64 panels = (cog + WP - 1) / WP;
    const wi64 tw = (job.wo + 1) / 2, nrow = r1 - r0;
    const wi64 twp = (tw + WL - 1) / WL * WL;  // tiles per row in V, <= conv2d_detail::wino_row_tiles(tw)
    const wi64 ntp = nrow * twp;
    const wi64 rowlen = tw + 1 + conv2d_detail::kWinoSlack;  // even/odd buffer length
    float* V = scratch;                          // [16][cg][ntp]
    float* Mloc = V + 16 * wino_vps(cg, ntp);    // [16][WP][WNV WL]
    float* rb = Mloc + 16 * WP * WNV * WL;       // 2 nrow + 2 input rows x (even, odd)
    wino_in(job, img, g, r0, r1, V, rb, ntp, rowlen, twp);
    for (wi64 r = r0; r < r1; ++r) {
        wi64 tx0 = 0;
        for (; tx0 + WNV * WL <= twp; tx0 += WNV * WL)
            for (wi64 p = 0; p < panels; ++p) wino_block<WNV>(job, U, V, Mloc, img, g, r, r - r0, tx0, p, ntp, twp);
        if (twp - tx0 == WL)
            for (wi64 p = 0; p < panels; ++p) wino_block<1>(job, U, V, Mloc, img, g, r, r - r0, tx0, p, ntp, twp);
        if (twp - tx0 == 2 * WL)
            for (wi64 p = 0; p < panels; ++p)
                wino_block<2 <= WNV ? 2 : 1>(job, U, V, Mloc, img, g, r, r - r0, tx0, p, ntp, twp);
    }
}
