// conv2d for the avx512 path (built with its own -m flags): the packed-GEMM
// blocks of conv2d_kernels.hpp (narrow outputs), and a direct convolution
// that reads the input rows in place (no im2col packing) with 512-bit
// masked loads; see conv2d.hpp.
//
// Direct path: a register tile of kDMR output channels x NV*16 consecutive
// output pixels of one output row. For k = 0..K-1 in im2col order
// (input channel, ky, kx) it loads the 16-pixel input vectors (zeros where
// the tap falls into the padding: masked loads, or a zero vector for a row
// outside the image) and does acc = fma(w, x, acc) per element. That is the
// chain the GEMM micro-kernel computes (acc = 0, then one FMA per k in the
// same order, then + bias, ReLU), so both paths give the same bits and the
// result never depends on the thread count or the tiling.
// Rows whose width is not a multiple of 16 (conv2d_detail::direct_flat) are
// tiled flat instead: a vector may hold the end of one output row and the
// start of the next, loaded part by part (one masked load per row it
// touches); at stride 2 from a copy of the band's input rows split into even
// and odd columns. Same chain per element, same bits.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/checked_simd.hpp"
#include "common/simd_transpose.hpp"
#include "convolve/conv2d.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_kernels.hpp"
#include "convolve/conv2d_winograd_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int DMR = conv2d_detail::kDMR;

// Input columns of a tile: for tap kx and vector v (output pixels
// wo0 + 16 v + j, j < 16, the first nv valid), the first input column off
// and the lanes inside the row (32 lanes for stride 2: output pixel j is
// lane 2j; odd lanes are loaded where they lie inside the row and dropped by
// the permute). Masked-off lanes are never read, so a vector may start
// before the row (left padding) or run past its end.
struct ColTaps {
    i64 off[conv2d_detail::kDirectMaxKw][3];
    std::uint32_t mask[conv2d_detail::kDirectMaxKw][3];
};

void col_taps(const Conv2dJob& job, i64 wo0, int nvec, int nv, ColTaps& c) {
    const int sw = static_cast<int>(job.sw);
    for (i64 kx = 0; kx < job.kw; ++kx)
        for (int v = 0; v < nvec; ++v) {
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            const i64 base = (wo0 + 16 * v) * job.sw - job.pw + kx * job.dw;
            std::uint32_t m = 0;
            for (int l = 0; l < sw * npix; ++l)
                if (base + l >= 0 && base + l < job.wd) m |= std::uint32_t(1) << l;
            c.off[kx][v] = base;
            c.mask[kx][v] = m;
        }
}

// The pieces every register tile shares (direct_tile, flat_tile): NM panels
// of kDMR output channels x NV vectors of 16 pixels, acc[NM * kDMR][NV].
// Always inlined with constant indices, so acc stays in registers.
template <int R, int NV>
inline __attribute__((always_inline)) void tile_zero(__m512 (&acc)[R][NV]) {
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
}

// One k step: acc[channel][v] += a[channel] * b[v] (a: NM panels pstride apart).
template <int NM, int NV>
inline __attribute__((always_inline)) void tile_fma(__m512 (&acc)[NM * DMR][NV], const float* a, i64 pstride,
                                                    const __m512 (&b)[NV]) {
#pragma GCC unroll 3
    for (int pm = 0; pm < NM; ++pm)
#pragma GCC unroll 8
        for (int i = 0; i < DMR; ++i) {
            const __m512 av = _mm512_set1_ps(a[pm * pstride + i]);
#pragma GCC unroll 3
            for (int v = 0; v < NV; ++v) acc[pm * DMR + i][v] = _mm512_fmadd_ps(av, b[v], acc[pm * DMR + i][v]);
        }
}

// + bias (+ 0 without one, as the GEMM path), ReLU, then the first mr
// channels' first nv pixels stored (channel i at y + i * P).
template <int R, int NV>
inline __attribute__((always_inline)) void tile_store(const __m512 (&acc)[R][NV], float* y, i64 P, int mr, int nv,
                                                      const float* bias, bool relu) {
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i) {
        if (i >= mr) break;
        float* yr = y + i * P;
        const __m512 bv = _mm512_set1_ps(bias ? bias[i] : 0.f);
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) {
            __m512 o = _mm512_add_ps(acc[i][v], bv);
            if (relu) o = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(o, zero, _CMP_NLE_UQ), o);  // o <= 0 ? 0 : o, NaN kept (as torch.relu)
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            checked::mask_storeu_ps(yr + 16 * v, static_cast<__mmask16>((1u << npix) - 1u), o);
        }
    }
}

// The tiles over a group's mblocks channel panels: nvec (1-3) vectors per
// tile, and with one vector up to three panels (24 chains). Calls
// tile(NV, NM, mb, mr) with NV, NM as std::integral_constant.
template <class Tile>
inline void for_tiles(i64 mblocks, i64 cog, int nvec, Tile&& tile) {
    using C1 = std::integral_constant<int, 1>;
    using C2 = std::integral_constant<int, 2>;
    using C3 = std::integral_constant<int, 3>;
    for (i64 mb = 0; mb < mblocks;) {
        const i64 nm = nvec == 1 ? std::min<i64>(3, mblocks - mb) : 1;
        const int mr = static_cast<int>(std::min<i64>(cog - mb * DMR, nm * DMR));
        if (nvec == 3)
            tile(C3{}, C1{}, mb, mr);
        else if (nvec == 2)
            tile(C2{}, C1{}, mb, mr);
        else if (nm == 3)
            tile(C1{}, C3{}, mb, mr);
        else if (nm == 2)
            tile(C1{}, C2{}, mb, mr);
        else
            tile(C1{}, C1{}, mb, mr);
        mb += nm;
    }
}

// Register tile: NM panels of kDMR output channels x NV vectors of 16
// output pixels of one output row. rows[r] / rmask[r]: input row of
// r = (input channel, ky) (rmask 0: the row lies in the padding).
template <int NV, int NM, int SW>
void direct_tile(const float* a, i64 K, i64 nrows, i64 kw, const float* const* rows, const std::uint32_t* rmask,
                 const ColTaps& c, float* y, i64 P, int mr, int nv, const float* bias, bool relu) {
    static_assert(SW == 1 || SW == 2, "direct path: stride 1 or 2");
    __m512 acc[NM * DMR][NV];
    tile_zero(acc);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const i64 pstride = K * DMR;  // floats between the NM weight panels
    for (i64 r = 0; r < nrows; ++r) {
        const float* row = rows[r];
        const std::uint32_t rm = rmask[r];
        for (i64 kx = 0; kx < kw; ++kx, a += DMR) {
            __m512 b[NV];
#pragma GCC unroll 3
            for (int v = 0; v < NV; ++v) {
                const std::uint32_t m = c.mask[kx][v] & rm;
                const float* p = row + c.off[kx][v];
                if (SW == 1) {
                    b[v] = checked::maskz_loadu_ps(static_cast<__mmask16>(m), p);
                } else {
                    const __m512 lo = checked::maskz_loadu_ps(static_cast<__mmask16>(m & 0xffffu), p);
                    const __m512 hi = checked::maskz_loadu_ps(static_cast<__mmask16>(m >> 16), p + 16);
                    b[v] = _mm512_permutex2var_ps(lo, even, hi);
                }
            }
            tile_fma<NM>(acc, a, pstride, b);
        }
    }
    tile_store(acc, y, P, mr, nv, bias, relu);
}

struct TileArgs {
    const Conv2dJob* job;
    const float* apack;
    i64 K, mblocks, cog, nrows, P;
    const float* const* rows;
    const std::uint32_t* rmask;
    const float* bias;
};

template <int SW>
void direct_tiles(const TileArgs& t, const ColTaps& c, float* ybase, int nvec, int nv) {
    const i64 K = t.K, kw = t.job->kw;
    for_tiles(t.mblocks, t.cog, nvec, [&](auto NV, auto NM, i64 mb, int mr) {
        direct_tile<NV.value, NM.value, SW>(t.apack + mb * K * DMR, K, t.nrows, kw, t.rows, t.rmask, c,
                                            ybase + mb * DMR * t.P, t.P, mr, nv, t.bias ? t.bias + mb * DMR : nullptr,
                                            t.job->relu);
    });
}

// ---- flat tiles (conv2d_detail::direct_flat) --------------------------------
// A tile covers output pixels [f, f + nv) of the (image, group) plane counted
// row after row, NV vectors of 16; vector v splits into parts, one per output
// row it touches (at most kFlatParts with wo >= 8). Part q of vector v reads,
// for tap (ky, kx), the input plane of each channel at off (relative to the
// plane start) with the lanes of mask (row padding, column padding and the
// lanes of the other parts masked off; horizontal stride 1 only, see
// direct_flat). A part whose mask is empty reads nothing (off = 0).
constexpr int kFlatParts = 3;

struct FlatTap {
    i64 off;
    std::uint32_t mask;
};

struct FlatTable {
    std::vector<FlatTap> taps;  // [(ky * kw + kx) * NV + v][q]
    int nparts[3];
};

void flat_table(const Conv2dJob& job, i64 f, int nvec, int nv, FlatTable& t) {
    const i64 wo = job.wo, kh = job.kh, kw = job.kw;
    t.taps.assign(static_cast<std::size_t>(kh * kw * nvec * kFlatParts), FlatTap{0, 0});
    for (int v = 0; v < nvec; ++v) {
        const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
        int q = 0;
        for (int l = 0; l < npix; ++q) {
            const i64 p = f + 16 * v + l;
            const i64 ho = p / wo, col = p % wo;
            const int n = static_cast<int>(std::min<i64>(npix - l, wo - col));
            for (i64 ky = 0; ky < kh; ++ky) {
                const i64 hi = ho * job.sh - job.ph + ky * job.dh;
                if (hi < 0 || hi >= job.h) continue;  // the row lies in the padding: no lanes
                for (i64 kx = 0; kx < kw; ++kx) {
                    // lane L reads input column base + L
                    const i64 base = col - l - job.pw + kx * job.dw;
                    const i64 lo = std::max<i64>(l, -base);
                    const i64 hi_l = std::min<i64>(l + n, job.wd - base);
                    const std::uint32_t m = lo < hi_l ? static_cast<std::uint32_t>(
                                                            ((std::uint64_t(1) << hi_l) - 1u) &
                                                            ~((std::uint64_t(1) << lo) - 1u))
                                                      : 0u;
                    FlatTap& tp = t.taps[static_cast<std::size_t>(((ky * kw + kx) * nvec + v) * kFlatParts + q)];
                    tp.off = m ? hi * job.wd + base : 0;
                    tp.mask = m;
                }
            }
            l += n;
        }
        t.nparts[v] = q;
    }
}

inline __attribute__((always_inline)) __m512 flat_load(const float* plane, const FlatTap* tp, int nparts) {
    __m512 b = checked::maskz_loadu_ps(static_cast<__mmask16>(tp[0].mask), plane + tp[0].off);
    for (int q = 1; q < nparts; ++q) {
        const __mmask16 m = static_cast<__mmask16>(tp[q].mask);
        b = _mm512_mask_mov_ps(b, m, checked::maskz_loadu_ps(m, plane + tp[q].off));
    }
    return b;
}

// Register tile: NM panels of kDMR output channels x NV flat vectors; the
// chain per output element is direct_tile's (k in im2col order).
template <int NV, int NM>
void flat_tile(const float* a, i64 K, i64 cg, i64 plane_size, i64 kh, i64 kw, const float* ximg, const FlatTable& t,
               float* y, i64 P, int mr, int nv, const float* bias, bool relu) {
    __m512 acc[NM * DMR][NV];
    tile_zero(acc);
    const i64 pstride = K * DMR;
    const FlatTap* taps = t.taps.data();
    for (i64 ci = 0; ci < cg; ++ci) {
        const float* plane = ximg + ci * plane_size;
        const FlatTap* tp = taps;
        for (i64 kk = 0; kk < kh * kw; ++kk, a += DMR, tp += NV * kFlatParts) {
            __m512 b[NV];
#pragma GCC unroll 3
            for (int v = 0; v < NV; ++v) b[v] = flat_load(plane, tp + v * kFlatParts, t.nparts[v]);
            tile_fma<NM>(acc, a, pstride, b);
        }
    }
    tile_store(acc, y, P, mr, nv, bias, relu);
}

void flat_tiles(const Conv2dJob& job, const float* apack, i64 K, i64 mblocks, i64 cog, const float* ximg, i64 hw,
                const FlatTable& t, float* y, i64 P, int nvec, int nv, const float* bias) {
    const i64 cg = job.c / job.groups;
    for_tiles(mblocks, cog, nvec, [&](auto NV, auto NM, i64 mb, int mr) {
        flat_tile<NV.value, NM.value>(apack + mb * K * DMR, K, cg, hw, job.kh, job.kw, ximg, t, y + mb * DMR * P, P, mr,
                                      nv, bias ? bias + mb * DMR : nullptr, job.relu);
    });
}

// Horizontal stride 2: the band's input rows [hs, hs + nb) of every channel
// copied once into a zero-padded buffer (rows outside the image and columns
// in the padding are zeros), each row split into its even and odd padded
// columns (phase p of padded column j = input column j - pw at p * lp + j / 2,
// p = j % 2), so tap kx of output pixel col lies at koff[kx] + col: flat
// tiles then load contiguous lanes, one masked load per part (the parts'
// lane ranges only), with no permutes.
struct Stride2Buffer {
    std::vector<float> data;
    i64 hs = 0, nb = 0, lp = 0, lr = 0;
    i64 koff[conv2d_detail::kDirectMaxKw] = {};
};

void fill_stride2(const Conv2dJob& job, const float* ximg, i64 cg, i64 ho0, i64 ho1, Stride2Buffer& b) {
    const i64 span = (job.kw - 1) * job.dw;
    b.hs = ho0 * job.sh - job.ph;
    b.nb = (ho1 - 1 - ho0) * job.sh + (job.kh - 1) * job.dh + 1;
    b.lp = job.wo + span / 2 + 1;
    b.lr = 2 * b.lp;
    for (i64 kx = 0; kx < job.kw; ++kx) b.koff[kx] = (kx * job.dw) % 2 * b.lp + (kx * job.dw) / 2;
    b.data.assign(static_cast<std::size_t>(cg * b.nb * b.lr), 0.f);
    const i64 W = job.wd, pw = job.pw;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (i64 ci = 0; ci < cg; ++ci)
        for (i64 r = 0; r < b.nb; ++r) {
            const i64 hi = b.hs + r;
            if (hi < 0 || hi >= job.h) continue;
            const float* src = ximg + (ci * job.h + hi) * W;
            float* d = b.data.data() + (ci * b.nb + r) * b.lr;
            // Input column c goes to padded column j = c + pw, kept while
            // j / 2 < lp; 32 columns at a time: the even ones (c0 + 2 i, phase
            // pw % 2, j / 2 = c0 / 2 + pw / 2 + i) and the odd ones (c0 + 2 i + 1,
            // phase (pw + 1) % 2, j / 2 = c0 / 2 + (pw + 1) / 2 + i).
            const i64 c1 = std::min(W, 2 * b.lp - pw);
            float* de = d + (pw & 1) * b.lp + pw / 2;
            float* dodd = d + ((pw + 1) & 1) * b.lp + (pw + 1) / 2;
            for (i64 c0 = 0; c0 < c1; c0 += 32) {
                const i64 n = std::min<i64>(32, c1 - c0);
                const std::uint32_t m = n == 32 ? ~std::uint32_t(0) : (std::uint32_t(1) << n) - 1u;
                const __m512 lo = checked::maskz_loadu_ps(static_cast<__mmask16>(m & 0xffffu), src + c0);
                const __m512 up = checked::maskz_loadu_ps(static_cast<__mmask16>(m >> 16), src + c0 + 16);
                const int ne = static_cast<int>((n + 1) / 2), no = static_cast<int>(n / 2);
                checked::mask_storeu_ps(de + c0 / 2, static_cast<__mmask16>((1u << ne) - 1u),
                                        _mm512_permutex2var_ps(lo, even, up));
                checked::mask_storeu_ps(dodd + c0 / 2, static_cast<__mmask16>((1u << no) - 1u),
                                        _mm512_permutex2var_ps(lo, odd, up));
            }
        }
}

void flat_table_stride2(const Conv2dJob& job, const Stride2Buffer& b, i64 f, int nvec, int nv, FlatTable& t) {
    const i64 wo = job.wo, kh = job.kh, kw = job.kw;
    t.taps.assign(static_cast<std::size_t>(kh * kw * nvec * kFlatParts), FlatTap{0, 0});
    for (int v = 0; v < nvec; ++v) {
        const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
        int q = 0;
        for (int l = 0; l < npix; ++q) {
            const i64 p = f + 16 * v + l;
            const i64 ho = p / wo, col = p % wo;
            const int n = static_cast<int>(std::min<i64>(npix - l, wo - col));
            const std::uint32_t m = ((std::uint32_t(1) << (l + n)) - 1u) & ~((std::uint32_t(1) << l) - 1u);
            for (i64 ky = 0; ky < kh; ++ky)
                for (i64 kx = 0; kx < kw; ++kx) {
                    FlatTap& tp = t.taps[static_cast<std::size_t>(((ky * kw + kx) * nvec + v) * kFlatParts + q)];
                    tp.off = (ho * job.sh - job.ph + ky * job.dh - b.hs) * b.lr + b.koff[kx] + col - l;
                    tp.mask = m;
                }
            l += n;
        }
        t.nparts[v] = q;
    }
}

// Output rows [ho0, ho1) as one flat run of pixels: tiles of 48 pixels, the
// last 1..48 in one tile of 1..3 vectors. Rows narrower than 32 pixels: tiles
// of one vector and up to 3 channel panels (most vectors then cover two rows,
// and their two or three loads serve 24 channels instead of 8).
void conv2d_direct_flat(const Conv2dJob& job, const float* apack, i64 img, i64 g, i64 ho0, i64 ho1) {
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const float* ximg = job.x + (img * job.c + g * cg) * job.h * job.wd;
    float* ybase = job.y + (img * job.co + g * cog) * P;
    const float* bias = job.bias ? job.bias + g * cog : nullptr;
    const i64 mblocks = (cog + DMR - 1) / DMR;
    FlatTable t;
    Stride2Buffer b;
    const float* planes = ximg;
    i64 plane_size = job.h * job.wd;
    if (job.sw == 2) {
        fill_stride2(job, ximg, cg, ho0, ho1, b);
        planes = b.data.data();
        plane_size = b.nb * b.lr;
    }
    const i64 f1 = ho1 * job.wo;
    for (i64 f = ho0 * job.wo; f < f1;) {
        const int nv = static_cast<int>(std::min<i64>(job.wo < 32 ? 16 : 48, f1 - f));
        const int nvec = (nv + 15) / 16;
        if (job.sw == 2)
            flat_table_stride2(job, b, f, nvec, nv, t);
        else
            flat_table(job, f, nvec, nv, t);
        flat_tiles(job, apack, K, mblocks, cog, planes, plane_size, t, ybase + f, P, nvec, nv, bias);
        f += nv;
    }
}

}  // namespace

void conv2d_direct_rows(const Conv2dJob& job, const float* apack, i64 img, i64 g, i64 ho0, i64 ho1) {
    if (conv2d_detail::direct_flat(job.wo, job.sw)) {
        conv2d_direct_flat(job, apack, img, g, ho0, ho1);
        return;
    }
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const float* ximg = job.x + (img * job.c + g * cg) * job.h * job.wd;
    float* ybase = job.y + (img * job.co + g * cog) * P;
    const i64 nrows = cg * job.kh;
    std::vector<const float*> rows(static_cast<std::size_t>(nrows));
    std::vector<std::uint32_t> rmask(static_cast<std::size_t>(nrows));
    const TileArgs t{&job, apack, K, (cog + DMR - 1) / DMR, cog, nrows, P, rows.data(), rmask.data(),
                     job.bias ? job.bias + g * cog : nullptr};
    ColTaps c;
    for (i64 ho = ho0; ho < ho1; ++ho) {
        for (i64 ci = 0; ci < cg; ++ci)
            for (i64 ky = 0; ky < job.kh; ++ky) {
                const i64 hi = ho * job.sh - job.ph + ky * job.dh;
                const bool inside = hi >= 0 && hi < job.h;
                rows[ci * job.kh + ky] = ximg + (ci * job.h + (inside ? hi : 0)) * job.wd;
                rmask[ci * job.kh + ky] = inside ? ~std::uint32_t(0) : 0u;
            }
        for (i64 wo0 = 0; wo0 < job.wo;) {
            // Tiles of 48 pixels; the last 33..64 in two halves, 1..32 in one tile.
            const i64 rest = job.wo - wo0;
            const int nv = static_cast<int>(rest > 64 ? 48 : rest > 32 ? (rest + 1) / 2 : rest);
            const int nvec = (nv + 15) / 16;
            col_taps(job, wo0, nvec, nv, c);
            float* y = ybase + ho * job.wo + wo0;
            if (job.sw == 1)
                direct_tiles<1>(t, c, y, nvec, nv);
            else
                direct_tiles<2>(t, c, y, nvec, nv);
            wo0 += nv;
        }
    }
}

#include "convolve/conv2d_cvec_kernels.hpp"

}  // namespace avx512
}  // namespace medfuse
