// conv2d for the avx2 path (built with its own -m flags): the packed-GEMM
// blocks of conv2d_kernels.hpp, and a direct convolution without im2col
// packing; see conv2d.hpp.
//
// Direct path: the input rows a band of output rows reads are copied once
// into zero-padded row buffers (stride 2: split into even and odd columns),
// so every tap of every tile is a plain 8-lane load at a fixed offset, with
// no masks and no shuffles in the inner loop (the copy is at most
// 1 / (kw * C_out) of the work; each input row copied once per band, not
// once per output row and ky). A register tile of 6 output channels x 16
// consecutive output pixels (two vectors), or 12 channels x 8 pixels for a
// row's last few pixels: 12 accumulators, the input vectors and one broadcast
// weight fit the 16 ymm registers. For k = 0..K-1 in im2col order (input
// channel, ky, kx) it does acc = fma(w, x, acc) per element, x = 0 in the
// padding: the chain the GEMM micro-kernel computes (acc = 0, one FMA per k in
// the same order, then + bias, ReLU), so both paths give the same bits, and
// the result never depends on the thread count or the tiling.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <memory>
#include <utility>
#include <vector>

#include "common/checked_simd.hpp"
#include "common/simd_transpose.hpp"
#include "convolve/conv2d.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_kernels.hpp"
#include "convolve/conv2d_winograd_kernels.hpp"

namespace {

using i64 = std::int64_t;
constexpr int DMR = conv2d_detail::kMR;  // output channels per weight panel (the GEMM's panels)

// Register tile: NM panels of 6 output channels x NV vectors of 8 output
// pixels of one output row. buf: the row buffer of input channel 0, ky = 0 at
// the tile's first pixel; (input channel ci, ky) at buf + ci * lci + ky * lky;
// tap kx at + koff[kx]. CH < 6 (NM = 1): only the first CH channels of the
// panel (a group's last, partial panel), over more pixels.
template <int NV, int NM, int CH = DMR>
void direct_tile(const float* a, i64 K, i64 cg, i64 kh, i64 kw, const float* buf, i64 lci, i64 lky,
                 const i64* koff, float* y, i64 P, int mr, int nv, const float* bias, bool relu) {
    static_assert(CH == DMR || NM == 1, "partial panels one at a time");
    constexpr int R = NM * CH;
    __m256 acc[R][NV];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 6
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
    const i64 pstride = K * DMR;  // floats between the NM weight panels
    for (i64 r = 0, ci = 0, ky = 0; r < cg * kh; ++r) {
        const float* row = buf + ci * lci + ky * lky;
        if (++ky == kh) ky = 0, ++ci;
        for (i64 kx = 0; kx < kw; ++kx, a += DMR) {
            const float* p = row + koff[kx];
            __m256 b[NV];
#pragma GCC unroll 6
            for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(p + 8 * v);
#pragma GCC unroll 2
            for (int pm = 0; pm < NM; ++pm)
#pragma GCC unroll 6
                for (int i = 0; i < CH; ++i) {
                    const __m256 av = checked::broadcast_ss(a + pm * pstride + i);
#pragma GCC unroll 6
                    for (int v = 0; v < NV; ++v)
                        acc[pm * CH + i][v] = _mm256_fmadd_ps(av, b[v], acc[pm * CH + i][v]);
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
#pragma GCC unroll 6
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

}  // namespace

void conv2d_direct_rows(const Conv2dJob& job, const float* apack, i64 img, i64 g, i64 ho0, i64 ho1) {
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const i64 W = job.wd, sw = job.sw, pw = job.pw;
    const float* ximg = job.x + (img * job.c + g * cg) * job.h * W;
    float* ybase = job.y + (img * job.co + g * cog) * P;
    const i64 mblocks = (cog + DMR - 1) / DMR;
    const float* bias = job.bias ? job.bias + g * cog : nullptr;
    // Row buffer of one input row: padded column j (input column j - pw) of
    // phase j % sw at (j % sw) * lp + j / sw; tiles read up to the output row
    // rounded up to 8 pixels. The band's input rows hs .. hs + nb - 1 of every
    // channel are copied once (rows outside the image: zeros), channel ci's
    // row hs + r at (ci * nb + r) * lr.
    const i64 span = (job.kw - 1) * job.dw;
    const i64 wov = (job.wo + 7) / 8 * 8;
    const i64 lp = wov + span / sw + 1, lr = sw * lp;
    const i64 hs = ho0 * job.sh - job.ph;
    const i64 nb = (ho1 - 1 - ho0) * job.sh + (job.kh - 1) * job.dh + 1;
    std::vector<float> buf(static_cast<std::size_t>(cg * nb * lr));
    i64 koff[conv2d_detail::kDirectMaxKw];
    for (i64 kx = 0; kx < job.kw; ++kx) koff[kx] = (kx * job.dw) % sw * lp + (kx * job.dw) / sw;
    for (i64 ci = 0; ci < cg; ++ci)
        for (i64 r = 0; r < nb; ++r) {
            float* d = buf.data() + (ci * nb + r) * lr;
            const i64 hi = hs + r;
            if (hi < 0 || hi >= job.h) {
                std::fill(d, d + lr, 0.f);
                continue;
            }
            const float* src = ximg + (ci * job.h + hi) * W;
            for (i64 ph = 0; ph < sw; ++ph) {
                float* dp = d + ph * lp;
                // t holds input column sw * t + ph - pw: inside the row for t in [t0, t1)
                const i64 t0 = std::min(lp, std::max<i64>(0, (pw - ph + sw - 1) / sw));
                const i64 t1 = std::max(t0, std::min(lp, (W + pw - ph + sw - 1) / sw));
                std::fill(dp, dp + t0, 0.f);
                const float* sp = src + sw * t0 + ph - pw;
                if (sw == 1)
                    std::memcpy(dp + t0, sp, static_cast<std::size_t>(t1 - t0) * sizeof(float));
                else
                    for (i64 t = 0; t < t1 - t0; ++t) dp[t0 + t] = sp[2 * t];
                std::fill(dp + t1, dp + lp, 0.f);
            }
        }
    const i64 lci = nb * lr, lky = job.dh * lr;
    // Panels 0 .. full-1 in the tiles below; a last panel of 2 or 4 channels
    // (tail) in tiles of its own (with 6-channel tiles it would waste 2/3 or
    // 1/3 of the multiply-adds: 32 channels are 5 panels + 2) when the rows a
    // wide tile reads stay within 16 KB of L1 (else the second pass over the
    // row buffers, from L2, cost more than the 6-channel tiles: 64 channels
    // x 3 rows of 56 pixels, measured).
    const int tail = static_cast<int>(cog % DMR);
    const i64 tail_reads = cg * job.kh * ((tail == 2 ? 48 : 24) + span / sw + 1);
    const i64 full = (tail == 2 || tail == 4) && tail_reads <= 4096 ? mblocks - 1 : mblocks;
    for (i64 ho = ho0; ho < ho1; ++ho) {
        const float* brow = buf.data() + (ho - ho0) * job.sh * lr;
        float* yrow = ybase + ho * job.wo;
        for (i64 wo0 = 0; wo0 < job.wo;) {
            // Tiles of 16 pixels (6 channels); a last 1..8 in one vector (12 channels).
            const i64 rest = job.wo - wo0;
            const int nv = static_cast<int>(rest > 16 ? 16 : rest);
            const float* bt = brow + wo0;
            for (i64 mb = 0; mb < full;) {
                const i64 nm = nv <= 8 ? std::min<i64>(2, full - mb) : 1;
                const int mr = static_cast<int>(std::min<i64>(cog - mb * DMR, nm * DMR));
                const float* a = apack + mb * K * DMR;
                float* y = yrow + wo0 + mb * DMR * P;
                const float* bm = bias ? bias + mb * DMR : nullptr;
                // (Unrolling the tap loop for 3 or 5 taps was 1.5x slower: measured.)
                if (nv > 8)
                    direct_tile<2, 1>(a, K, cg, job.kh, job.kw, bt, lci, lky, koff, y, P, mr, nv, bm, job.relu);
                else if (nm == 2)
                    direct_tile<1, 2>(a, K, cg, job.kh, job.kw, bt, lci, lky, koff, y, P, mr, nv, bm, job.relu);
                else
                    direct_tile<1, 1>(a, K, cg, job.kh, job.kw, bt, lci, lky, koff, y, P, mr, nv, bm, job.relu);
                mb += nm;
            }
            wo0 += nv;
        }
        // A last panel of 2 (4) channels: tiles of 48 (24) pixels, 12 accumulators.
        if (full < mblocks) {
            const float* a = apack + full * K * DMR;
            float* yt = yrow + full * DMR * P;
            const float* bm = bias ? bias + full * DMR : nullptr;
            const int step = tail == 2 ? 48 : 24;
            for (i64 wo0 = 0; wo0 < job.wo; wo0 += step) {
                const int nv = static_cast<int>(std::min<i64>(step, job.wo - wo0));
                const int nvec = (nv + 7) / 8;
                const float* bt = brow + wo0;
                float* y = yt + wo0;
#define MEDFUSE_TAIL_TILE(NVEC, CHN) \
    direct_tile<NVEC, 1, CHN>(a, K, cg, job.kh, job.kw, bt, lci, lky, koff, y, P, tail, nv, bm, job.relu)
                if (tail == 2) {
                    switch (nvec) {
                        case 1: MEDFUSE_TAIL_TILE(1, 2); break;
                        case 2: MEDFUSE_TAIL_TILE(2, 2); break;
                        case 3: MEDFUSE_TAIL_TILE(3, 2); break;
                        case 4: MEDFUSE_TAIL_TILE(4, 2); break;
                        case 5: MEDFUSE_TAIL_TILE(5, 2); break;
                        default: MEDFUSE_TAIL_TILE(6, 2); break;
                    }
                } else {
                    switch (nvec) {
                        case 1: MEDFUSE_TAIL_TILE(1, 4); break;
                        case 2: MEDFUSE_TAIL_TILE(2, 4); break;
                        default: MEDFUSE_TAIL_TILE(3, 4); break;
                    }
                }
#undef MEDFUSE_TAIL_TILE
            }
        }
    }
}

#include "convolve/conv2d_cvec_kernels.hpp"

}  // namespace avx2
}  // namespace medfuse
