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

#include "convolve/conv2d.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int DMR = conv2d_detail::kDMR;

struct TapLoads {
    i64 off[conv2d_detail::kDirectMaxKw][3];            // first input column of each vector
    std::uint32_t mask[conv2d_detail::kDirectMaxKw][3];  // valid input lanes (32 for stride 2)
};

// Input vectors for output pixels wo0 + 16 v + j (j < 16, pixels < nv valid).
void tap_loads(const Conv2dJob& job, i64 wo0, int nvec, int nv, TapLoads& t) {
    const i64 W = job.wd;
    for (i64 kx = 0; kx < job.kw; ++kx)
        for (int v = 0; v < nvec; ++v) {
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            const i64 base = (wo0 + 16 * v) * job.sw - job.pw + kx * job.dw;
            const int lanes = static_cast<int>(job.sw) * 16;  // input elements the vector spans
            std::uint32_t m = 0;
            for (int l = 0; l < lanes; ++l) {
                // Stride 2: an output pixel is lane 2j; odd lanes are loaded (when inside
                // the row) but dropped by the permute.
                const bool used = l < static_cast<int>(job.sw) * npix;
                if (used && base + l >= 0 && base + l < W) m |= std::uint32_t(1) << l;
            }
            t.off[kx][v] = base;
            t.mask[kx][v] = m;
        }
}

template <int NV>
void direct_tile(const Conv2dJob& job, const float* ximg, const float* a, i64 K, i64 ho, const TapLoads& t,
                 float* y, i64 P, int mr, int nv, const float* bias) {
    __m512 acc[DMR][NV];
    for (int i = 0; i < DMR; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    const i64 H = job.h, W = job.wd;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const i64 cg = K / (job.kh * job.kw);
    const float* ak = a;
    for (i64 ci = 0; ci < cg; ++ci) {
        const float* plane = ximg + ci * H * W;
        for (i64 ky = 0; ky < job.kh; ++ky) {
            const i64 hi = ho * job.sh - job.ph + ky * job.dh;
            const bool inside = hi >= 0 && hi < H;
            const float* row = plane + (inside ? hi : 0) * W;
            for (i64 kx = 0; kx < job.kw; ++kx, ak += DMR) {
                __m512 b[NV];
                for (int v = 0; v < NV; ++v) {
                    const std::uint32_t m = inside ? t.mask[kx][v] : 0u;
                    const float* p = row + t.off[kx][v];
                    if (job.sw == 1) {
                        b[v] = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), p);
                    } else {
                        const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m & 0xffffu), p);
                        const __m512 hi2 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), p + 16);
                        b[v] = _mm512_permutex2var_ps(lo, even, hi2);
                    }
                }
                for (int i = 0; i < DMR; ++i) {
                    const __m512 av = _mm512_set1_ps(ak[i]);
                    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, b[v], acc[i][v]);
                }
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int i = 0; i < mr; ++i) {
        float* yr = y + i * P;
        const __m512 bv = _mm512_set1_ps(bias ? bias[i] : 0.f);
        for (int v = 0; v < NV; ++v) {
            __m512 r = _mm512_add_ps(acc[i][v], bv);  // + 0 without a bias, as the GEMM path
            if (job.relu) r = _mm512_max_ps(r, zero);  // r > 0 ? r : 0 (NaN -> 0, as the GEMM path's compare)
            const int npix = nv - 16 * v < 16 ? nv - 16 * v : 16;
            _mm512_mask_storeu_ps(yr + 16 * v, static_cast<__mmask16>((1u << npix) - 1u), r);
        }
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
    TapLoads t;
    for (i64 wo0 = 0; wo0 < job.wo;) {
        const i64 rest = job.wo - wo0;
        const int nv = static_cast<int>(rest < 48 ? rest : 48);
        const int nvec = (nv + 15) / 16;
        tap_loads(job, wo0, nvec, nv, t);
        for (i64 ho = ho0; ho < ho1; ++ho)
            for (i64 mb = 0; mb < mblocks; ++mb) {
                const int mr = static_cast<int>(cog - mb * DMR < DMR ? cog - mb * DMR : DMR);
                const float* a = apack + mb * K * DMR;
                float* y = ybase + mb * DMR * P + ho * job.wo + wo0;
                const float* bm = bias ? bias + mb * DMR : nullptr;
                if (nvec == 3)
                    direct_tile<3>(job, ximg, a, K, ho, t, y, P, mr, nv, bm);
                else if (nvec == 2)
                    direct_tile<2>(job, ximg, a, K, ho, t, y, P, mr, nv, bm);
                else
                    direct_tile<1>(job, ximg, a, K, ho, t, y, P, mr, nv, bm);
            }
        wo0 += nv;
    }
}

}  // namespace avx512
}  // namespace medfuse
