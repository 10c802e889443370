// conv2d gradient loops for the avx512 path (built with its own -m flags),
// and the avx512 float32 grad weight without an im2col matrix (see
// conv2d_backward.hpp).
#include <algorithm>
#include <cstdint>
#include <immintrin.h>
#include <vector>

#include "common/checked_simd.hpp"
#include "common/simd_transpose.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx512 {
#include "convolve/conv2d_backward_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int OB = conv2d_bwd_detail::kGwOc;

// Input lanes of output vector v (pixels 16 v + l) for tap kx: first input
// column off[v * kw + kx] and mask[...] (zero outside the row, i.e. the
// padding, and past the output row, so 0 * 0 is added there; 32 lanes for
// stride 2, where output pixel l is lane 2 l).
struct GwCols {
    std::vector<i64> off;
    std::vector<std::uint32_t> mask;
};

// acc[i][j] (16 lanes each) for output channel o0 + i and tap kx0 + j of row
// ky of input channel c, continued over output rows [ho0, ho1) of image n
// (16-pixel vectors of each row in order): loaded from and stored to `buf`.
template <int NX, int SW>
void gw_rows(const Conv2dGradJob<float>& job, const GwCols& cols, const float* gyimg, const float* plane, int mr,
             i64 ky, i64 kx0, i64 ho0, i64 ho1, float* buf) {
    static_assert(SW == 1 || SW == 2, "stride 1 or 2");
    const i64 H = job.h, W = job.wd, WO = job.wo, P = job.ho * job.wo, kw = job.kw;
    const i64 nvec = (WO + 15) / 16;
    __m512 acc[OB][NX];
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) acc[i][j] = _mm512_loadu_ps(buf + (i * NX + j) * 16);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const float* gyr[OB];
    for (int i = 0; i < OB; ++i) gyr[i] = gyimg + (i < mr ? i : 0) * P;
    for (i64 ho = ho0; ho < ho1; ++ho) {
        const i64 hi = ho * job.sh - job.ph + ky * job.dh;
        const std::uint32_t rm = hi >= 0 && hi < H ? ~std::uint32_t(0) : 0u;
        const float* row = plane + (rm ? hi : 0) * W;
        for (i64 v = 0; v < nvec; ++v) {
            const i64 wo0 = 16 * v;
            const int npix = static_cast<int>(WO - wo0 < 16 ? WO - wo0 : 16);
            const __mmask16 pm = static_cast<__mmask16>((1u << npix) - 1u);
            __m512 xv[NX];
#pragma GCC unroll 3
            for (int j = 0; j < NX; ++j) {
                const std::uint32_t m = cols.mask[static_cast<std::size_t>(v * kw + kx0 + j)] & rm;
                const float* p = row + cols.off[static_cast<std::size_t>(v * kw + kx0 + j)];
                if (SW == 1) {
                    xv[j] = checked::maskz_loadu_ps(static_cast<__mmask16>(m), p);
                } else {
                    const __m512 a = checked::maskz_loadu_ps(static_cast<__mmask16>(m & 0xffffu), p);
                    const __m512 b = checked::maskz_loadu_ps(static_cast<__mmask16>(m >> 16), p + 16);
                    xv[j] = _mm512_permutex2var_ps(a, even, b);
                }
            }
            const i64 q = ho * WO + wo0;
#pragma GCC unroll 8
            for (int i = 0; i < OB; ++i) {
                const __m512 gv = checked::maskz_loadu_ps(pm, gyr[i] + q);
#pragma GCC unroll 3
                for (int j = 0; j < NX; ++j) acc[i][j] = _mm512_fmadd_ps(gv, xv[j], acc[i][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) _mm512_storeu_ps(buf + (i * NX + j) * 16, acc[i][j]);
}

template <int SW>
void gw_block(const Conv2dGradJob<float>& job, const GwCols& cols, const float* gyimg, const float* plane, int mr,
              i64 ky, i64 kx0, i64 nx, i64 ho0, i64 ho1, float* buf) {
    if (nx == 3)
        gw_rows<3, SW>(job, cols, gyimg, plane, mr, ky, kx0, ho0, ho1, buf);
    else if (nx == 2)
        gw_rows<2, SW>(job, cols, gyimg, plane, mr, ky, kx0, ho0, ho1, buf);
    else
        gw_rows<1, SW>(job, cols, gyimg, plane, mr, ky, kx0, ho0, ho1, buf);
}

// Fixed pairwise order: 16 -> 8 -> 4 -> 2 -> 1 lanes.
float lane_sum(const float* a) {
    float t[16];
    for (int i = 0; i < 16; ++i) t[i] = a[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
    return t[0];
}

}  // namespace

void conv2d_grad_weight_vec(const Conv2dGradJob<float>& job, i64 g, i64 o0, i64 o1) {
    const i64 cog = job.co / job.groups, cg = job.c / job.groups;
    const i64 kh = job.kh, kw = job.kw, taps = kh * kw, K = cg * taps;
    const i64 WO = job.wo, P = job.ho * WO, nvec = (WO + 15) / 16;
    const int mr = static_cast<int>(o1 - o0);
    const int sw = static_cast<int>(job.sw);
    GwCols cols;
    cols.off.resize(static_cast<std::size_t>(nvec * kw));
    cols.mask.resize(static_cast<std::size_t>(nvec * kw));
    for (i64 v = 0; v < nvec; ++v) {
        const i64 npix = std::min<i64>(16, WO - 16 * v);
        for (i64 kx = 0; kx < kw; ++kx) {
            const i64 base = 16 * v * sw - job.pw + kx * job.dw;
            const i64 lo = std::max<i64>(0, -base), hi = std::min<i64>(sw * npix, job.wd - base);
            const std::size_t e = static_cast<std::size_t>(v * kw + kx);
            cols.off[e] = base;
            cols.mask[e] = hi > lo ? static_cast<std::uint32_t>(((std::uint64_t(1) << (hi - lo)) - 1u) << lo) : 0u;
        }
    }
    // One block of 8 x 3 partial-sum vectors per (input channel, ky, kx chunk),
    // carried across images and bands of output rows (bands keep the gy rows
    // of the 8 channels in L1 while every input channel and tap uses them).
    const i64 kxc = (kw + 2) / 3;
    std::vector<float> buf(static_cast<std::size_t>(cg * kh * kxc * OB * 3 * 16), 0.f);
    const i64 band = std::max<i64>(1, 512 / std::max<i64>(WO, 1));
    for (i64 n = 0; n < job.n; ++n) {
        const float* gyimg = job.gy + (n * job.co + g * cog + o0) * P;
        for (i64 ho0 = 0; ho0 < job.ho; ho0 += band) {
            const i64 ho1 = std::min(job.ho, ho0 + band);
            for (i64 c = 0; c < cg; ++c) {
                const float* plane = job.x + (n * job.c + g * cg + c) * job.h * job.wd;
                for (i64 ky = 0; ky < kh; ++ky)
                    for (i64 q = 0; q < kxc; ++q) {
                        float* b = buf.data() + ((c * kh + ky) * kxc + q) * OB * 3 * 16;
                        const i64 nx = std::min<i64>(3, kw - 3 * q);
                        if (sw == 1)
                            gw_block<1>(job, cols, gyimg, plane, mr, ky, 3 * q, nx, ho0, ho1, b);
                        else
                            gw_block<2>(job, cols, gyimg, plane, mr, ky, 3 * q, nx, ho0, ho1, b);
                    }
            }
        }
    }
    float* gw = job.gw + (g * cog + o0) * K;
    for (i64 c = 0; c < cg; ++c)
        for (i64 ky = 0; ky < kh; ++ky)
            for (i64 q = 0; q < kxc; ++q) {
                const float* b = buf.data() + ((c * kh + ky) * kxc + q) * OB * 3 * 16;
                const i64 nx = std::min<i64>(3, kw - 3 * q);
                for (int i = 0; i < mr; ++i)
                    for (i64 j = 0; j < nx; ++j)
                        gw[i * K + c * taps + ky * kw + 3 * q + j] = lane_sum(b + (i * nx + j) * 16);
            }
}

}  // namespace avx512
}  // namespace medfuse
