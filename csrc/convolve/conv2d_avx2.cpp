// conv2d for the avx2 path (built with its own -m flags): the packed-GEMM
// blocks of conv2d_kernels.hpp, and a direct convolution that reads the input
// rows in place (no im2col packing) with 256-bit masked loads; see conv2d.hpp.
//
// Direct path: a register tile of 6 output channels x 16 consecutive output
// pixels of one output row (two 8-lane vectors), or 12 channels x 8 pixels
// for a row's last few pixels: 12 accumulators, the input vectors and one
// broadcast weight fit the 16 ymm registers. For k = 0..K-1 in im2col order
// (input channel, ky, kx) it loads the 8-pixel input vectors (zeros where the
// tap falls into the padding: _mm256_maskload_ps never touches a masked-off
// lane, so a vector may start before the row or run past its end; a zero
// vector for a row outside the image) and does acc = fma(w, x, acc). That is
// the chain the GEMM micro-kernel computes (acc = 0, one FMA per k in the same
// order, then + bias, ReLU), so both paths give the same bits, and the result
// never depends on the thread count or the tiling. Stride 2: two loads
// (16 input columns) deinterleaved by a shuffle and a 64-bit permute.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <vector>

#include "common/checked_simd.hpp"
#include "convolve/conv2d.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int DMR = conv2d_detail::kMR;  // output channels per weight panel (the GEMM's panels)
constexpr int kMaxKw = conv2d_detail::kDirectMaxKw;

// Input columns of a tile: for tap kx and vector v (output pixels
// wo0 + 8 v + j, j < 8, the first nv valid), the first input column and one
// lane mask per 8 input columns (stride 2: output pixel j is input lane 2j of
// 16; odd lanes are loaded where they lie inside the row and dropped by the
// deinterleave).
struct ColTaps {
    i64 off[kMaxKw][2];
    alignas(32) std::int32_t mask[kMaxKw][2][16];
};

void col_taps(const Conv2dJob& job, i64 wo0, int nvec, int nv, ColTaps& c) {
    const int sw = static_cast<int>(job.sw);
    for (i64 kx = 0; kx < job.kw; ++kx)
        for (int v = 0; v < nvec; ++v) {
            const int npix = nv - 8 * v < 8 ? nv - 8 * v : 8;
            const i64 base = (wo0 + 8 * v) * job.sw - job.pw + kx * job.dw;
            for (int l = 0; l < 16; ++l)
                c.mask[kx][v][l] = (l < sw * npix && base + l >= 0 && base + l < job.wd) ? -1 : 0;
            c.off[kx][v] = base;
        }
}

template <int SW>
inline __m256 load_taps(const float* p, const std::int32_t* m) {
    const __m256 lo = checked::maskload_ps(p, _mm256_load_si256(reinterpret_cast<const __m256i*>(m)));
    if (SW == 1) return lo;
    const __m256 hi = checked::maskload_ps(p + 8, _mm256_load_si256(reinterpret_cast<const __m256i*>(m + 8)));
    // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6] -> [lo0 lo2 lo4 lo6 hi0 hi2 hi4 hi6]
    const __m256 t = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}

// Register tile: NM panels of 6 output channels x NV vectors of 8 output
// pixels of one output row. rows[r] / inside[r]: input row of
// r = (input channel, ky) (inside 0: the row lies in the padding; its taps
// still run, as FMAs with zero, as on the GEMM path: inf * 0 = NaN).
template <int NV, int NM, int SW>
void direct_tile(const float* a, i64 K, i64 nrows, i64 kw, const float* const* rows, const unsigned char* inside,
                 const ColTaps& c, float* y, i64 P, int mr, int nv, const float* bias, bool relu) {
    static_assert(SW == 1 || SW == 2, "direct path: stride 1 or 2");
    constexpr int R = NM * DMR;
    __m256 acc[R][NV];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
    const i64 pstride = K * DMR;  // floats between the NM weight panels
    for (i64 r = 0; r < nrows; ++r) {
        const float* row = rows[r];
        const bool in = inside[r] != 0;
        for (i64 kx = 0; kx < kw; ++kx, a += DMR) {
            __m256 b[NV];
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v)
                b[v] = in ? load_taps<SW>(row + c.off[kx][v], c.mask[kx][v]) : _mm256_setzero_ps();
#pragma GCC unroll 2
            for (int pm = 0; pm < NM; ++pm)
#pragma GCC unroll 6
                for (int i = 0; i < DMR; ++i) {
                    const __m256 av = checked::broadcast_ss(a + pm * pstride + i);
#pragma GCC unroll 2
                    for (int v = 0; v < NV; ++v)
                        acc[pm * DMR + i][v] = _mm256_fmadd_ps(av, b[v], acc[pm * DMR + i][v]);
                }
        }
    }
    // Constant indices only (fully unrolled), so acc stays in registers.
    const __m256 zero = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
        if (i >= mr) break;
        float* yr = y + i * P;
        const __m256 bv = _mm256_set1_ps(bias ? bias[i] : 0.f);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            __m256 o = _mm256_add_ps(acc[i][v], bv);  // + 0 without a bias, as the GEMM path
            if (relu) o = _mm256_and_ps(_mm256_cmp_ps(o, zero, _CMP_NLE_UQ), o);  // o <= 0 ? 0 : o, NaN kept
            const int npix = nv - 8 * v < 8 ? nv - 8 * v : 8;
            if (npix == 8)
                _mm256_storeu_ps(yr + 8 * v, o);
            else
                checked::maskstore_ps(yr + 8 * v, _mm256_cmpgt_epi32(_mm256_set1_epi32(npix), lane), o);
        }
    }
}

struct TileArgs {
    const Conv2dJob* job;
    const float* apack;
    i64 K, mblocks, cog, nrows, P;
    const float* const* rows;
    const unsigned char* inside;
    const float* bias;
};

template <int SW>
void direct_tiles(const TileArgs& t, const ColTaps& c, float* ybase, int nvec, int nv) {
    const i64 K = t.K, kw = t.job->kw;
    for (i64 mb = 0; mb < t.mblocks;) {
        // One 8-pixel vector: up to two channel panels per tile (12 chains).
        const i64 nm = nvec == 1 ? std::min<i64>(2, t.mblocks - mb) : 1;
        const int mr = static_cast<int>(std::min<i64>(t.cog - mb * DMR, nm * DMR));
        const float* a = t.apack + mb * K * DMR;
        float* y = ybase + mb * DMR * t.P;
        const float* bm = t.bias ? t.bias + mb * DMR : nullptr;
        const bool relu = t.job->relu;
        if (nvec == 2)
            direct_tile<2, 1, SW>(a, K, t.nrows, kw, t.rows, t.inside, c, y, t.P, mr, nv, bm, relu);
        else if (nm == 2)
            direct_tile<1, 2, SW>(a, K, t.nrows, kw, t.rows, t.inside, c, y, t.P, mr, nv, bm, relu);
        else
            direct_tile<1, 1, SW>(a, K, t.nrows, kw, t.rows, t.inside, c, y, t.P, mr, nv, bm, relu);
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
    std::vector<unsigned char> inside(static_cast<std::size_t>(nrows));
    const TileArgs t{&job, apack, K, (cog + DMR - 1) / DMR, cog, nrows, P, rows.data(), inside.data(),
                     job.bias ? job.bias + g * cog : nullptr};
    ColTaps c;
    for (i64 ho = ho0; ho < ho1; ++ho) {
        for (i64 ci = 0; ci < cg; ++ci)
            for (i64 ky = 0; ky < job.kh; ++ky) {
                const i64 hi = ho * job.sh - job.ph + ky * job.dh;
                const bool in = hi >= 0 && hi < job.h;
                rows[ci * job.kh + ky] = ximg + (ci * job.h + (in ? hi : 0)) * job.wd;
                inside[ci * job.kh + ky] = in ? 1 : 0;
            }
        for (i64 wo0 = 0; wo0 < job.wo;) {
            // Tiles of 16 pixels (6 channels); a last 1..8 in one vector (12 channels).
            const i64 rest = job.wo - wo0;
            const int nv = static_cast<int>(rest > 16 ? 16 : rest);
            const int nvec = (nv + 7) / 8;
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

}  // namespace avx2
}  // namespace medfuse
