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
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <vector>

#include "common/checked_simd.hpp"
#include "convolve/conv2d.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_kernels.hpp"

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

// Register tile: NM panels of kDMR output channels x NV vectors of 16
// output pixels of one output row. rows[r] / rmask[r]: input row of
// r = (input channel, ky) (rmask 0: the row lies in the padding).
template <int NV, int NM, int SW>
void direct_tile(const float* a, i64 K, i64 nrows, i64 kw, const float* const* rows, const std::uint32_t* rmask,
                 const ColTaps& c, float* y, i64 P, int mr, int nv, const float* bias, bool relu) {
    static_assert(SW == 1 || SW == 2, "direct path: stride 1 or 2");
    constexpr int R = NM * DMR;
    __m512 acc[R][NV];
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
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
#pragma GCC unroll 3
            for (int pm = 0; pm < NM; ++pm)
#pragma GCC unroll 8
                for (int i = 0; i < DMR; ++i) {
                    const __m512 av = _mm512_set1_ps(a[pm * pstride + i]);
#pragma GCC unroll 3
                    for (int v = 0; v < NV; ++v)
                        acc[pm * DMR + i][v] = _mm512_fmadd_ps(av, b[v], acc[pm * DMR + i][v]);
                }
        }
    }
    // Constant indices only (fully unrolled), so acc stays in registers.
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 24
    for (int i = 0; i < R; ++i) {
        if (i >= mr) break;
        float* yr = y + i * P;
        const __m512 bv = _mm512_set1_ps(bias ? bias[i] : 0.f);
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) {
            __m512 o = _mm512_add_ps(acc[i][v], bv);  // + 0 without a bias, as the GEMM path
            if (relu) o = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(o, zero, _CMP_NLE_UQ), o);  // o <= 0 ? 0 : o, NaN kept (as torch.relu)
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            checked::mask_storeu_ps(yr + 16 * v, static_cast<__mmask16>((1u << npix) - 1u), o);
        }
    }
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
    for (i64 mb = 0; mb < t.mblocks;) {
        // One 16-pixel vector: up to three channel panels per tile (24 chains).
        const i64 nm = nvec == 1 ? std::min<i64>(3, t.mblocks - mb) : 1;
        const int mr = static_cast<int>(std::min<i64>(t.cog - mb * DMR, nm * DMR));
        const float* a = t.apack + mb * K * DMR;
        float* y = ybase + mb * DMR * t.P;
        const float* bm = t.bias ? t.bias + mb * DMR : nullptr;
        const bool relu = t.job->relu;
        if (nvec == 3)
            direct_tile<3, 1, SW>(a, K, t.nrows, kw, t.rows, t.rmask, c, y, t.P, mr, nv, bm, relu);
        else if (nvec == 2)
            direct_tile<2, 1, SW>(a, K, t.nrows, kw, t.rows, t.rmask, c, y, t.P, mr, nv, bm, relu);
        else if (nm == 3)
            direct_tile<1, 3, SW>(a, K, t.nrows, kw, t.rows, t.rmask, c, y, t.P, mr, nv, bm, relu);
        else if (nm == 2)
            direct_tile<1, 2, SW>(a, K, t.nrows, kw, t.rows, t.rmask, c, y, t.P, mr, nv, bm, relu);
        else
            direct_tile<1, 1, SW>(a, K, t.nrows, kw, t.rows, t.rmask, c, y, t.P, mr, nv, bm, relu);
        mb += nm;
    }
}

}  // namespace

void conv2d_direct_rows(const Conv2dJob& job, const float* apack, i64 img, i64 g, i64 ho0, i64 ho1) {
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

}  // namespace avx512
}  // namespace medfuse
