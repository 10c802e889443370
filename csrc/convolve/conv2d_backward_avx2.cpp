// conv2d gradient loops for the avx2 path (built with its own -m flags), and
// the avx2 float32 channels-last grad weight (see conv2d_backward.hpp).
//
// gw[o, c, ky, kx] = sum over (n, ho, wo) of gy[n, o, ho, wo] xp[n, c, ho sh + ky dh, wo sw + kx dw],
// xp the padded channels-last copy of x (8-channel vectors, one aligned load
// per input pixel). A register tile of kGwOc2 output channels x 3 taps (kx) x
// 8 input channels: per output pixel 3 loads, kGwOc2 broadcasts of gy and 12
// FMAs, summed over every output pixel in order (n, ho, wo) and stored as is
// (no lane sums): each gw element is one accumulation chain in an order fixed
// by the shapes, whichever thread runs the task.
#include <algorithm>
#include <cstdint>
#include <immintrin.h>

#include "common/checked_simd.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_backward_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int OB2 = conv2d_bwd_detail::kGwOc2;

template <int NX>
void gw_cl_tile(const float* xcl, const float* gyg, i64 co_stride_n, i64 P, i64 N, i64 HO, i64 WO, i64 Hp, i64 Wp,
                i64 cpad, i64 sh, i64 sw, i64 rowoff, const i64* coff, int mr, float* out) {
    __m256 acc[OB2][NX];
#pragma GCC unroll 4
    for (int i = 0; i < OB2; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) acc[i][j] = _mm256_setzero_ps();
    const float* gyr[OB2];
    for (int i = 0; i < OB2; ++i) gyr[i] = gyg + (i < mr ? i : 0) * P;
    for (i64 n = 0; n < N; ++n) {
        const float* xn = xcl + n * Hp * Wp * cpad + rowoff;
        for (i64 ho = 0; ho < HO; ++ho) {
            const float* xr = xn + ho * sh * Wp * cpad;
            const i64 q0 = n * co_stride_n + ho * WO;
            for (i64 wo = 0; wo < WO; ++wo) {
                const float* xp = xr + wo * sw * cpad;
                __m256 xv[NX];
#pragma GCC unroll 3
                for (int j = 0; j < NX; ++j) xv[j] = _mm256_load_ps(xp + coff[j]);
                const i64 q = q0 + wo;
#pragma GCC unroll 4
                for (int i = 0; i < OB2; ++i) {
                    const __m256 gv = checked::broadcast_ss(gyr[i] + q);
#pragma GCC unroll 3
                    for (int j = 0; j < NX; ++j) acc[i][j] = _mm256_fmadd_ps(gv, xv[j], acc[i][j]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < OB2; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) _mm256_storeu_ps(out + (i * NX + j) * 8, acc[i][j]);
}

}  // namespace

void conv2d_grad_weight_cl(const Conv2dGradJob<float>& job, const float* xcl, i64 g, i64 o0, i64 o1, i64 cb) {
    const i64 cog = job.co / job.groups, cg = job.c / job.groups, cpad = (cg + 7) / 8 * 8;
    const i64 kh = job.kh, kw = job.kw, taps = kh * kw, K = cg * taps;
    const i64 Hp = job.h + 2 * job.ph, Wp = job.wd + 2 * job.pw, P = job.ho * job.wo;
    const int mr = static_cast<int>(o1 - o0);
    const float* gyg = job.gy + (g * cog + o0) * P;
    const i64 nc = std::min<i64>(8, cg - cb * 8);
    alignas(32) float out[OB2 * 3 * 8];
    for (i64 ky = 0; ky < kh; ++ky)
        for (i64 kx0 = 0; kx0 < kw; kx0 += 3) {
            const int nx = static_cast<int>(std::min<i64>(3, kw - kx0));
            i64 coff[3] = {0, 0, 0};
            for (int j = 0; j < nx; ++j) coff[j] = (kx0 + j) * job.dw * cpad;
            const i64 rowoff = ky * job.dh * Wp * cpad + cb * 8;
            if (nx == 3)
                gw_cl_tile<3>(xcl, gyg, job.co * P, P, job.n, job.ho, job.wo, Hp, Wp, cpad, job.sh, job.sw, rowoff,
                              coff, mr, out);
            else if (nx == 2)
                gw_cl_tile<2>(xcl, gyg, job.co * P, P, job.n, job.ho, job.wo, Hp, Wp, cpad, job.sh, job.sw, rowoff,
                              coff, mr, out);
            else
                gw_cl_tile<1>(xcl, gyg, job.co * P, P, job.n, job.ho, job.wo, Hp, Wp, cpad, job.sh, job.sw, rowoff,
                              coff, mr, out);
            for (int i = 0; i < mr; ++i)
                for (int j = 0; j < nx; ++j)
                    for (i64 l = 0; l < nc; ++l)
                        job.gw[(g * cog + o0 + i) * K + (cb * 8 + l) * taps + ky * kw + kx0 + j] =
                            out[(i * nx + j) * 8 + l];
        }
}

}  // namespace avx2
}  // namespace medfuse
