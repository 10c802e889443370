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
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <vector>

#include "convolve/conv2d.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int DMR = conv2d_detail::kDMR;

// Where each k = (input channel, ky, kx) of a tile reads its input vectors:
// ptr[k * NV + v] and the valid lanes mask[k * NV + v] (32 lanes for stride
// 2; zero for a row in the padding, where ptr is any readable address).
struct Taps {
    std::vector<const float*> ptr;
    std::vector<std::uint32_t> mask;
};

// Taps of output row `ho`, pixels wo0 + 16 v + j (j < 16; pixels < nv valid).
void make_taps(const Conv2dJob& job, const float* ximg, i64 K, i64 ho, i64 wo0, int nvec, int nv, Taps& t) {
    const i64 H = job.h, W = job.wd;
    const int sw = static_cast<int>(job.sw);
    std::uint32_t colmask[conv2d_detail::kDirectMaxKw][3];
    i64 coloff[conv2d_detail::kDirectMaxKw][3];
    for (i64 kx = 0; kx < job.kw; ++kx)
        for (int v = 0; v < nvec; ++v) {
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            const i64 base = (wo0 + 16 * v) * job.sw - job.pw + kx * job.dw;
            std::uint32_t m = 0;
            // Stride 2: output pixel j is lane 2j; odd lanes are loaded where
            // they lie inside the row and dropped by the permute.
            for (int l = 0; l < sw * npix; ++l)
                if (base + l >= 0 && base + l < W) m |= std::uint32_t(1) << l;
            coloff[kx][v] = base;
            colmask[kx][v] = m;
        }
    t.ptr.resize(static_cast<std::size_t>(K) * nvec);
    t.mask.resize(static_cast<std::size_t>(K) * nvec);
    const i64 cg = K / (job.kh * job.kw);
    std::size_t e = 0;
    for (i64 ci = 0; ci < cg; ++ci)
        for (i64 ky = 0; ky < job.kh; ++ky) {
            const i64 hi = ho * job.sh - job.ph + ky * job.dh;
            const bool inside = hi >= 0 && hi < H;
            const float* row = ximg + (ci * H + (inside ? hi : 0)) * W;
            for (i64 kx = 0; kx < job.kw; ++kx)
                for (int v = 0; v < nvec; ++v, ++e) {
                    t.mask[e] = inside ? colmask[kx][v] : 0u;
                    // Masked-off lanes are never read, so a vector may start
                    // before the row (left padding) or run past its end.
                    t.ptr[e] = t.mask[e] ? row + coloff[kx][v] : ximg;
                }
        }
}

template <int NV, int SW>
void direct_tile(const float* a, i64 K, const Taps& t, float* y, i64 P, int mr, int nv, const float* bias,
                 bool relu) {
    static_assert(SW == 1 || SW == 2, "direct path: stride 1 or 2");
    __m512 acc[DMR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < DMR; ++i)
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const float* const* pp = t.ptr.data();
    const std::uint32_t* mm = t.mask.data();
    for (i64 k = 0; k < K; ++k, a += DMR, pp += NV, mm += NV) {
        __m512 b[NV];
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) {
            if (SW == 1) {
                b[v] = _mm512_maskz_loadu_ps(static_cast<__mmask16>(mm[v]), pp[v]);
            } else {
                const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(mm[v] & 0xffffu), pp[v]);
                const __m512 hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(mm[v] >> 16), pp[v] + 16);
                b[v] = _mm512_permutex2var_ps(lo, even, hi);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < DMR; ++i) {
            const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 3
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, b[v], acc[i][v]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    // Constant indices only (fully unrolled), so acc stays in registers.
#pragma GCC unroll 8
    for (int i = 0; i < DMR; ++i) {
        if (i >= mr) break;
        float* yr = y + i * P;
        const __m512 bv = _mm512_set1_ps(bias ? bias[i] : 0.f);
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) {
            __m512 r = _mm512_add_ps(acc[i][v], bv);  // + 0 without a bias, as the GEMM path
            if (relu) r = _mm512_max_ps(r, zero);     // r > 0 ? r : 0 (NaN -> 0), as the GEMM path
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            _mm512_mask_storeu_ps(yr + 16 * v, static_cast<__mmask16>((1u << npix) - 1u), r);
        }
    }
}

template <int SW>
void direct_tiles(const Conv2dJob& job, const float* apack, i64 K, i64 mblocks, i64 cog, const Taps& t,
                  float* ybase, i64 P, int nvec, int nv, const float* bias) {
    for (i64 mb = 0; mb < mblocks; ++mb) {
        const int mr = static_cast<int>(cog - mb * DMR < DMR ? cog - mb * DMR : DMR);
        const float* a = apack + mb * K * DMR;
        float* y = ybase + mb * DMR * P;
        const float* bm = bias ? bias + mb * DMR : nullptr;
        if (nvec == 3)
            direct_tile<3, SW>(a, K, t, y, P, mr, nv, bm, job.relu);
        else if (nvec == 2)
            direct_tile<2, SW>(a, K, t, y, P, mr, nv, bm, job.relu);
        else
            direct_tile<1, SW>(a, K, t, y, P, mr, nv, bm, job.relu);
    }
}

}  // namespace

void conv2d_direct_rows(const Conv2dJob& job, const float* apack, i64 img, i64 g, i64 ho0, i64 ho1) {
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const float* ximg = job.x + (img * job.c + g * cg) * job.h * job.wd;
    float* ybase = job.y + (img * job.co + g * cog) * P;
    const float* bias = job.bias ? job.bias + g * cog : nullptr;
    const i64 mblocks = (cog + DMR - 1) / DMR;
    Taps t;
    for (i64 ho = ho0; ho < ho1; ++ho)
        for (i64 wo0 = 0; wo0 < job.wo;) {
            // Tiles of up to 48 pixels; a row of 49..64 goes in two halves.
            const i64 rest = job.wo - wo0;
            const int nv = static_cast<int>(rest <= 48 ? rest : rest <= 64 ? (rest + 1) / 2 : 48);
            const int nvec = (nv + 15) / 16;
            make_taps(job, ximg, K, ho, wo0, nvec, nv, t);
            float* y = ybase + ho * job.wo + wo0;
            if (job.sw == 1)
                direct_tiles<1>(job, apack, K, mblocks, cog, t, y, P, nvec, nv, bias);
            else
                direct_tiles<2>(job, apack, K, mblocks, cog, t, y, P, nvec, nv, bias);
            wo0 += nv;
        }
}

}  // namespace avx512
}  // namespace medfuse
