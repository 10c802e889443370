// conv2d gradient loops for the avx2 path (built with its own -m flags),
// including the AVX2 channels-last grad weight (conv2d_backward_kernels.hpp)
// and the AVX2 float32 grad weight without an im2col matrix for fewer than 8
// input channels per group (see conv2d_backward.hpp).
#include <algorithm>
#include <cstdint>
#include <immintrin.h>
#include <vector>

#include "common/checked_simd.hpp"
#include "common/simd_transpose.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_backward_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int OB = conv2d_bwd_detail::kGwOc2;

// Input lanes of output vector v (pixels 8 v + l) for tap kx: first input
// column off[e] and the lanes to load, e = v * kw + kx: 8 (stride 1) or 16
// (stride 2, output pixel l is input lane 2 l) int32 masks per entry, -1 on,
// 0 off (outside the row, i.e. the padding, and past the output row, so 0 * 0
// is added there); full[e] when every lane is on.
struct GwCols {
    std::vector<i64> off;
    std::vector<std::int32_t> mask;
    std::vector<char> full;
};

// acc[i][j] (8 lanes each) for output channel o0 + i and tap kx0 + j of row
// ky of input channel c, continued over output rows [ho0, ho1) of image n
// (8-pixel vectors of each row in order): loaded from and stored to `buf`.
// A padding row adds 0 * gy (so a NaN in gy still reaches gw, as in the twin).
template <int NX, int SW>
void gw_rows(const Conv2dGradJob<float>& job, const GwCols& cols, const float* gyimg, const float* plane, int mr,
             i64 ky, i64 kx0, i64 ho0, i64 ho1, float* buf) {
    static_assert(SW == 1 || SW == 2, "stride 1 or 2");
    const i64 H = job.h, W = job.wd, WO = job.wo, P = job.ho * job.wo, kw = job.kw;
    const i64 nfull = WO / 8, nvec = (WO + 7) / 8;
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(WO - 8 * nfull)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc[OB][NX];
#pragma GCC unroll 4
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) acc[i][j] = _mm256_loadu_ps(buf + (i * NX + j) * 8);
    const float* gyr[OB];
    for (int i = 0; i < OB; ++i) gyr[i] = gyimg + (i < mr ? i : 0) * P;
    for (i64 ho = ho0; ho < ho1; ++ho) {
        const i64 hi = ho * job.sh - job.ph + ky * job.dh;
        const bool rin = hi >= 0 && hi < H;
        const float* row = plane + (rin ? hi : 0) * W;
        for (i64 v = 0; v < nvec; ++v) {
            __m256 xv[NX];
#pragma GCC unroll 3
            for (int j = 0; j < NX; ++j) {
                const std::size_t e = static_cast<std::size_t>(v * kw + kx0 + j);
                const float* p = row + cols.off[e];
                if (!rin) {
                    xv[j] = _mm256_setzero_ps();
                } else if (SW == 1) {
                    xv[j] = cols.full[e] ? _mm256_loadu_ps(p)
                                         : checked::maskload_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                                                       cols.mask.data() + e * 8)));
                } else {
                    __m256 a, b;
                    if (cols.full[e]) {
                        a = _mm256_loadu_ps(p);
                        b = _mm256_loadu_ps(p + 8);
                    } else {
                        const __m256i* m = reinterpret_cast<const __m256i*>(cols.mask.data() + e * 16);
                        a = checked::maskload_ps(p, _mm256_loadu_si256(m));
                        b = checked::maskload_ps(p + 8, _mm256_loadu_si256(m + 1));
                    }
                    // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6]
                    const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
                    xv[j] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
                }
            }
            const i64 q = ho * WO + 8 * v;
#pragma GCC unroll 4
            for (int i = 0; i < OB; ++i) {
                const __m256 gv = v < nfull ? _mm256_loadu_ps(gyr[i] + q) : checked::maskload_ps(gyr[i] + q, tail);
#pragma GCC unroll 3
                for (int j = 0; j < NX; ++j) acc[i][j] = _mm256_fmadd_ps(gv, xv[j], acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) _mm256_storeu_ps(buf + (i * NX + j) * 8, acc[i][j]);
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

// Fixed pairwise order: 8 -> 4 -> 2 -> 1 lanes.
float lane_sum(const float* a) {
    float t[8];
    for (int i = 0; i < 8; ++i) t[i] = a[i];
    for (int w = 4; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
    return t[0];
}

}  // namespace

void conv2d_grad_weight_vec(const Conv2dGradJob<float>& job, i64 g, i64 o0, i64 o1) {
    const i64 cog = job.co / job.groups, cg = job.c / job.groups;
    const i64 kh = job.kh, kw = job.kw, taps = kh * kw, K = cg * taps;
    const i64 WO = job.wo, P = job.ho * WO, nvec = (WO + 7) / 8;
    const int mr = static_cast<int>(o1 - o0);
    const int sw = static_cast<int>(job.sw);
    const i64 ml = 8 * sw;  // mask lanes per entry
    GwCols cols;
    cols.off.resize(static_cast<std::size_t>(nvec * kw));
    cols.mask.assign(static_cast<std::size_t>(nvec * kw * ml), 0);
    cols.full.assign(static_cast<std::size_t>(nvec * kw), 0);
    for (i64 v = 0; v < nvec; ++v) {
        const i64 npix = std::min<i64>(8, WO - 8 * v);
        for (i64 kx = 0; kx < kw; ++kx) {
            const i64 base = 8 * v * sw - job.pw + kx * job.dw;
            const i64 lo = std::max<i64>(0, -base), hi = std::min<i64>(sw * npix, job.wd - base);
            const std::size_t e = static_cast<std::size_t>(v * kw + kx);
            cols.off[e] = base;
            for (i64 l = lo; l < hi; ++l) cols.mask[e * static_cast<std::size_t>(ml) + static_cast<std::size_t>(l)] = -1;
            cols.full[e] = lo == 0 && hi == ml;
        }
    }
    // One block of 4 x 3 partial-sum vectors per (input channel, ky, kx chunk),
    // carried across images and bands of output rows (bands keep the gy rows
    // of the 4 channels in L1 while every input channel and tap uses them).
    const i64 kxc = (kw + 2) / 3;
    std::vector<float> buf(static_cast<std::size_t>(cg * kh * kxc * OB * 3 * 8), 0.f);
    const i64 band = std::max<i64>(1, 512 / std::max<i64>(WO, 1));
    for (i64 n = 0; n < job.n; ++n) {
        const float* gyimg = job.gy + (n * job.co + g * cog + o0) * P;
        for (i64 ho0 = 0; ho0 < job.ho; ho0 += band) {
            const i64 ho1 = std::min(job.ho, ho0 + band);
            for (i64 c = 0; c < cg; ++c) {
                const float* plane = job.x + (n * job.c + g * cg + c) * job.h * job.wd;
                for (i64 ky = 0; ky < kh; ++ky)
                    for (i64 q = 0; q < kxc; ++q) {
                        float* b = buf.data() + ((c * kh + ky) * kxc + q) * OB * 3 * 8;
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
                const float* b = buf.data() + ((c * kh + ky) * kxc + q) * OB * 3 * 8;
                const i64 nx = std::min<i64>(3, kw - 3 * q);
                for (int i = 0; i < mr; ++i)
                    for (i64 j = 0; j < nx; ++j)
                        gw[i * K + c * taps + ky * kw + 3 * q + j] = lane_sum(b + (i * nx + j) * 8);
            }
}

}  // namespace avx2
}  // namespace medfuse
