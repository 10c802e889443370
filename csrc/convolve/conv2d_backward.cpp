// conv2d gradients: task split, scratch, ISA choice (see conv2d_backward.hpp).
#include "convolve/conv2d_backward.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "common/cpu.hpp"
#include "convolve/conv2d.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "convolve/conv2d_backward_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

template <class T>
struct Paths {
    void (*gin)(const Conv2dGradJob<T>&, i64, i64, T*);
    void (*gw)(const Conv2dGradJob<T>&, i64, i64, T*);
};

template <class T>
Paths<T> pick() {
    using GI = void (*)(const Conv2dGradJob<T>&, i64, i64, T*);
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return {static_cast<GI>(&avx512::conv2d_grad_input), static_cast<GI>(&avx512::conv2d_grad_weight)};
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return {static_cast<GI>(&avx2::conv2d_grad_input), static_cast<GI>(&avx2::conv2d_grad_weight)};
#endif
        default:
            return {static_cast<GI>(&baseline::conv2d_grad_input), static_cast<GI>(&baseline::conv2d_grad_weight)};
    }
}

template <class T>
void check(const Conv2dGradJob<T>& job) {
    if (job.groups < 1 || job.c % job.groups || job.co % job.groups)
        throw std::invalid_argument("conv2d_backward: groups must divide the channels");
}

template <class T>
void run_backward(const Conv2dGradJob<T>& job, int threads) {
    check(job);
    const Paths<T> k = pick<T>();
    const i64 G = job.groups, cog = job.co / G, taps = job.kh * job.kw;
    const i64 ob = conv2d_bwd_detail::kOcBlock;
    const i64 wblocks = (cog + ob - 1) / ob;  // per group
    const i64 n_w = (job.gw || job.gb) ? G * wblocks : 0;
    const i64 n_x = job.gx ? job.n * G : 0;
    i64 rows = conv2d_bwd_detail::kRowChunk / job.wo;
    if (rows < 1) rows = 1;
    const i64 K = (job.c / G) * taps;
    const i64 tmp_len = 4 * std::min(rows, job.ho) * job.wo + K * cog;
    // Tasks 0..n_w-1: grad weight/bias blocks; then grad input per (image, group).
    parallel_for(n_w + n_x, threads, [&](i64 t) {
        if (t < n_w) {
            const i64 g = t / wblocks, b = t % wblocks;
            const i64 o0 = g * cog + b * ob, o1 = std::min(g * cog + cog, o0 + ob);
            std::vector<T> acc(static_cast<std::size_t>(taps * job.ho * job.wo + (o1 - o0) * K));
            k.gw(job, o0, o1, acc.data());
        } else {
            const i64 u = t - n_w;
            std::vector<T> tmp(static_cast<std::size_t>(tmp_len));
            k.gin(job, u / G, u % G, tmp.data());
        }
    });
}

#if defined(MEDFUSE_HAVE_AVX2)
// Strided grad input on the channel-vector tiles (CvecGradPlan in
// conv2d_backward.hpp): weights packed per phase, then tasks (image, group,
// band of input rows); each gx element is one chain fixed by the shapes.
void cvec_grad_input(const Conv2dGradJob<float>& job, int threads, Isa isa) {
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 kh = job.kh, kw = job.kw, sh = job.sh, sw = job.sw, W = job.wd, H = job.h;
    constexpr i64 CW = 8;
    const i64 mblocks = (cg + CW - 1) / CW;
    CvecGradPlan plan;
    plan.phases.resize(static_cast<std::size_t>(sh * sw));
    std::vector<std::vector<float>> packs(static_cast<std::size_t>(sh * sw));
    bool first = true;
    for (i64 rh = 0; rh < sh; ++rh)
        for (i64 rw = 0; rw < sw; ++rw) {
            CvecGradPhase& ph = plan.phases[static_cast<std::size_t>(rh * sw + rw)];
            ph.ncols = W > rw ? (W - rw + sw - 1) / sw : 0;
            std::vector<i64> kys, kxs;  // taps of this phase, descending (grad_out offsets ascending)
            for (i64 y = kh - 1; y >= 0; --y)
                if (((rh + job.ph - y * job.dh) % sh + sh) % sh == 0) kys.push_back(y);
            for (i64 x = kw - 1; x >= 0; --x)
                if (((rw + job.pw - x * job.dw) % sw + sw) % sw == 0) kxs.push_back(x);
            ph.nkh = static_cast<i64>(kys.size());
            ph.nkw = static_cast<i64>(kxs.size());
            if (ph.nkh == 0 || ph.nkw == 0 || ph.ncols == 0) continue;
            ph.eh = (rh + job.ph - kys[0] * job.dh) / sh;
            ph.ew = (rw + job.pw - kxs[0] * job.dw) / sw;
            ph.ddh = ph.nkh > 1 ? (kys[0] - kys[1]) * job.dh / sh : 1;
            ph.ddw = ph.nkw > 1 ? (kxs[0] - kxs[1]) * job.dw / sw : 1;
            const i64 K = cog * ph.nkh * ph.nkw;
            ph.group_stride = mblocks * K * CW;
            auto& pk = packs[static_cast<std::size_t>(rh * sw + rw)];
            pk.assign(static_cast<std::size_t>(G * ph.group_stride), 0.f);
            for (i64 g = 0; g < G; ++g)
                for (i64 c = 0; c < cg; ++c) {
                    float* dst = pk.data() + g * ph.group_stride + (c / CW) * K * CW + c % CW;
                    for (i64 o = 0; o < cog; ++o)
                        for (i64 t = 0; t < ph.nkh; ++t)
                            for (i64 u = 0; u < ph.nkw; ++u)
                                dst[((o * ph.nkh + t) * ph.nkw + u) * CW] =
                                    job.w[(((g * cog + o) * cg + c) * kh + kys[static_cast<std::size_t>(t)]) * kw +
                                          kxs[static_cast<std::size_t>(u)]];
                }
            ph.apack = pk.data();
            const i64 lo = ph.ew, top = ph.ncols - 1 + ph.ew + (ph.nkw - 1) * ph.ddw;
            plan.c_lo = first ? lo : std::min(plan.c_lo, lo);
            plan.c_hi = first ? top : std::max(plan.c_hi, top);
            first = false;
        }
    // Bands of input rows (whole row-phase pairs), enough for the threads.
    const i64 per_image = job.n * G;
    const i64 want = 4 * static_cast<i64>(std::max(threads, 1));
    i64 rows = H;
    if (per_image < want) rows = std::max<i64>(2 * sh, (H * per_image + want - 1) / want);
    rows = std::min(rows, H);
    const i64 bands = (H + rows - 1) / rows;
    auto fn = &avx2::conv2d_cvec_grad_input;
#if defined(MEDFUSE_HAVE_AVX512)
    if (isa == Isa::avx512) fn = &avx512::conv2d_cvec_grad_input;
#endif
    (void)isa;
    parallel_for(per_image * bands, threads, [&](i64 t) {
        const i64 b = t % bands, rest = t / bands;
        fn(job, plan, rest / G, rest % G, b * rows, std::min(H, (b + 1) * rows));
    });
}
#endif

}  // namespace

// float32: both gradients as forward convolutions on the forward kernels
// (conv2d.hpp), far faster than the direct loops for wide layers.
//   grad x (stride 1, padding <= dilation * (k - 1)): the "full" correlation of
//     grad_out with the flipped, transposed weights (groups kept), on whichever
//     forward path conv2d_f32 picks: 3x3 dilation-1 layers of >= 16 channels
//     (both ways) with inputs of at least 28 x 28 run Winograd F(2x2, 3x3).
//   grad x (stride > 1, avx2 / avx512, >= 3 input channels per group): by
//     phases on the forward's channel-vector tiles (cvec_grad_input).
//   grad w: for each group, grad_out (C_out/g x pixels) times the transposed
//     im2col matrix of x (pixels x C_in/g*kh*kw), run as a 1x1 convolution;
//     images in chunks (at most 2**22 im2col values), partial sums added in order.
// Every output is still one accumulation chain in an order fixed by the
// shapes, so results are identical for any thread count.
void conv2d_backward_f32(const Conv2dGradJob<float>& job, int threads) {
    check(job);
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 kh = job.kh, kw = job.kw, H = job.h, W = job.wd, HO = job.ho, WO = job.wo, N = job.n;
    const i64 pth = job.dh * (kh - 1) - job.ph, ptw = job.dw * (kw - 1) - job.pw;
    const bool gemm_x = job.gx && job.sh == 1 && job.sw == 1 && pth >= 0 && ptw >= 0;
    Conv2dGradJob<float> rest = job;
    if (gemm_x) {
        rest.gx = nullptr;
        std::vector<float> wt(static_cast<std::size_t>(job.c * cog * kh * kw));
        for (i64 g = 0; g < G; ++g)
            for (i64 o = 0; o < cog; ++o)
                for (i64 c = 0; c < cg; ++c)
                    for (i64 y = 0; y < kh; ++y)
                        for (i64 x = 0; x < kw; ++x)
                            wt[static_cast<std::size_t>((((g * cg + c) * cog + o) * kh + (kh - 1 - y)) * kw + (kw - 1 - x))] =
                                job.w[(((g * cog + o) * cg + c) * kh + y) * kw + x];
        Conv2dJob f;
        f.x = job.gy; f.w = wt.data(); f.bias = nullptr; f.y = job.gx;
        f.n = N; f.c = job.co; f.h = HO; f.wd = WO;
        f.co = job.c; f.kh = kh; f.kw = kw;
        f.sh = 1; f.sw = 1; f.ph = pth; f.pw = ptw; f.dh = job.dh; f.dw = job.dw;
        f.groups = G; f.ho = H; f.wo = W; f.relu = false;
        conv2d_f32(f, threads);
    }
#if defined(MEDFUSE_HAVE_AVX2)
    const Isa isa = active_isa();
    // (Measured on Zen 5: the direct loops stay faster for fewer than 4 input
    // channels per group, the im2col grad weight for output rows under 12; as
    // an AVX2 CPU, for fewer than 8 input channels: 4 channels 0.061 vs 0.048 ms,
    // 8 even, 16 0.091 vs 0.133 ms.)
    // Strided grad input by phases on the channel-vector tiles (CvecGradPlan), from
    // 3 input channels per group (Zen 4, 1 thread, avx512 / avx2 ms, against the
    // earlier phases on the forward kernel scattered into gx, or the scatter-add
    // loops below 4 / 8 channels: 4x96x28x28 k5 s2 g4 1.25 -> 1.11 / 1.43 -> 1.08;
    // 1x16x32x32 -> 32 k3 s2 0.049 -> 0.037 / 0.064 -> 0.043; batch-32 16 -> 32
    // k3 s2 on 8x8 0.26 -> 0.12 / 0.35 -> 0.12; 8 -> 16 on 32x32 0.50 -> 0.33 /
    // 0.71 -> 0.38; 3 channels 32x3x32x32 -> 8 0.23 -> 0.18 / 0.27 -> 0.22; one
    // channel stays on the scatter-add loops, 32x1x64x64 -> 8 0.34 vs 0.58).
    if (job.gx && !gemm_x && (job.sh > 1 || job.sw > 1) && isa != Isa::baseline && cg >= 3) {
        rest.gx = nullptr;
        cvec_grad_input(job, threads, isa);
    }
    // (As an AVX2 CPU the channels-last grad weight beats the im2col GEMM 3x
    // from 8 input channels per group on: 4x8x32x32 -> 16, k3: 0.15 vs 0.46 ms;
    // on Zen 4's avx512 path it beats the 16-lane direct kernel from 8 on too:
    // 4x8x32x32 -> 16 k3 0.094 vs 0.123 ms, 8x8x64x64 -> 16 k3 s2 0.22 vs 0.36,
    // 2x96x28x28 -> 96 k5 s2 g8 0.41 vs 0.84; one block partly empty, from 5
    // (avx2: 4) channels on: 2x5x40x40 -> 12 k5 0.19 vs 0.21 (avx2 0.15 vs 0.23),
    // 4x4x32x32 -> 16 k3 0.094 vs 0.082 (avx2 0.093 vs 0.106), 3 channels
    // 4x3x64x64 -> 16 k3 0.36 vs 0.23 (avx2 0.36 vs 0.31).)
    if (job.gw && isa != Isa::baseline && cg >= (isa == Isa::avx512 ? 5 : 4)) {
        // Channels-last grad weight (conv2d_backward.hpp): pack x per (group, image) in
        // blocks of L input channels, then tasks (group, block of input channels, range of
        // output channels). avx512 takes L = 16 (zmm) unless 8-channel blocks waste fewer
        // lanes (cg = 24: 24 vs 32), then ymm tiles of the same 8 output channels.
        rest.gw = nullptr;
        const i64 L = isa == Isa::avx512 && (cg + 15) / 16 * 16 <= (cg + 7) / 8 * 8 ? 16 : 8;
        const i64 cblocks = (cg + L - 1) / L;
        const i64 per_img = cblocks * (H + 2 * job.ph) * (W + 2 * job.pw) * L;
        const i64 ob = isa == Isa::avx512 ? conv2d_bwd_detail::kGwOc : conv2d_bwd_detail::kGwOc2;
        // Output channels per task: up to 4 blocks of ob, evenly split, fewer when
        // that leaves fewer than 24 tasks (the split depends on the shapes only).
        const i64 oblocks = (cog + ob - 1) / ob;
        i64 per = 1, otasks = oblocks;
        for (i64 want = (oblocks + 3) / 4;; ++want) {
            per = (oblocks + want - 1) / want;
            otasks = (oblocks + per - 1) / per;
            if (per == 1 || G * cblocks * otasks >= 24) break;
        }
        float* xcl = static_cast<float*>(std::aligned_alloc(64, static_cast<std::size_t>(G * N * per_img) * 4 + 64));
        if (!xcl) throw std::bad_alloc();
        std::unique_ptr<float, void (*)(void*)> own(xcl, &std::free);
        auto pack = &avx2::conv2d_grad_weight_cl_pack;
        auto tile = &avx2::conv2d_grad_weight_cl;
#if defined(MEDFUSE_HAVE_AVX512)
        if (isa == Isa::avx512) {
            pack = &avx512::conv2d_grad_weight_cl_pack;
            tile = &avx512::conv2d_grad_weight_cl;
        }
#endif
        parallel_for(G * N, threads, [&](i64 t) { pack(job, t / N, t % N, L, xcl + (t / N) * N * per_img); });
        parallel_for(G * cblocks * otasks, threads, [&](i64 t) {
            const i64 u = t % otasks, cb = (t / otasks) % cblocks, g = t / (otasks * cblocks);
            tile(job, xcl + g * N * per_img, g, cb, u * per * ob, std::min(cog, (u + 1) * per * ob),
                 static_cast<int>(L));
        });
    }
    if (job.gw && rest.gw && isa == Isa::avx2 && (job.sw == 1 || job.sw == 2) && job.wo >= 8) {
        rest.gw = nullptr;
        const i64 ob = conv2d_bwd_detail::kGwOc2, oblocks = (cog + ob - 1) / ob;
        // Task (group, block of output channels): disjoint gw rows.
        parallel_for(G * oblocks, threads, [&](i64 t) {
            const i64 b = t % oblocks, g = t / oblocks;
            avx2::conv2d_grad_weight_vec(job, g, b * ob, std::min(cog, (b + 1) * ob));
        });
    }
#endif
#if defined(MEDFUSE_HAVE_AVX512)
    if (job.gw && rest.gw && active_isa() == Isa::avx512 && (job.sw == 1 || job.sw == 2) && job.wo >= 12) {
        rest.gw = nullptr;
        const i64 ob = conv2d_bwd_detail::kGwOc, oblocks = (cog + ob - 1) / ob;
        // Task (group, block of output channels): disjoint gw rows.
        parallel_for(G * oblocks, threads, [&](i64 t) {
            const i64 b = t % oblocks, g = t / oblocks;
            avx512::conv2d_grad_weight_vec(job, g, b * ob, std::min(cog, (b + 1) * ob));
        });
    }
#endif
    if (rest.gw) {
        rest.gw = nullptr;
        // Per group and chunk of images: gw_chunk (cog x Kx) = gy (cog x nc*P) * colT (nc*P x Kx), a 1x1
        // convolution whose input channels are the (image, pixel) pairs; chunks are summed in order.
        const i64 P = HO * WO, taps = kh * kw, Kx = cg * taps;
        const i64 per = std::max<i64>(1, (i64(1) << 22) / std::max<i64>(P * Kx, 1));
        std::vector<float> colT, gt, part(static_cast<std::size_t>(cog * Kx));
        for (i64 g = 0; g < G; ++g) {
            float* gw = job.gw + g * cog * Kx;
            for (i64 n0 = 0; n0 < N; n0 += per) {
                const i64 nc = std::min(per, N - n0);
                colT.assign(static_cast<std::size_t>(nc * P * Kx), 0.f);
                gt.resize(static_cast<std::size_t>(cog * nc * P));
                for (i64 n = 0; n < nc; ++n) {
                    for (i64 o = 0; o < cog; ++o)
                        std::copy(job.gy + ((n0 + n) * job.co + g * cog + o) * P,
                                  job.gy + ((n0 + n) * job.co + g * cog + o + 1) * P,
                                  gt.begin() + (o * nc + n) * P);
                    for (i64 c = 0; c < cg; ++c) {
                        const float* plane = job.x + ((n0 + n) * job.c + g * cg + c) * H * W;
                        for (i64 y = 0; y < kh; ++y)
                            for (i64 x = 0; x < kw; ++x) {
                                const i64 k = (c * kh + y) * kw + x;
                                for (i64 r = 0; r < HO; ++r) {
                                    const i64 hi = r * job.sh - job.ph + y * job.dh;
                                    if (hi < 0 || hi >= H) continue;
                                    for (i64 t = 0; t < WO; ++t) {
                                        const i64 wi = t * job.sw - job.pw + x * job.dw;
                                        if (wi < 0 || wi >= W) continue;
                                        colT[static_cast<std::size_t>(((n * P) + r * WO + t) * Kx + k)] = plane[hi * W + wi];
                                    }
                                }
                            }
                    }
                }
                Conv2dJob f;
                f.x = colT.data(); f.w = gt.data(); f.bias = nullptr; f.y = n0 == 0 ? gw : part.data();
                f.n = 1; f.c = nc * P; f.h = 1; f.wd = Kx;
                f.co = cog; f.kh = 1; f.kw = 1;
                f.groups = 1; f.ho = 1; f.wo = Kx; f.relu = false;
                conv2d_f32(f, threads);
                if (n0 > 0)
                    for (i64 i = 0; i < cog * Kx; ++i) gw[i] = gw[i] + part[static_cast<std::size_t>(i)];
            }
        }
    }
    if (rest.gx || rest.gb) run_backward(rest, threads);
}
void conv2d_backward_f64(const Conv2dGradJob<double>& job, int threads) { run_backward(job, threads); }

void conv2d_forward_f64(const Conv2dGradJob<double>& job, int threads) {
    check(job);
    using F = void (*)(const Conv2dGradJob<double>&, i64, i64);
    F f = &baseline::conv2d_forward_direct;
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512: f = &avx512::conv2d_forward_direct; break;
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2: f = &avx2::conv2d_forward_direct; break;
#endif
        default: break;
    }
    parallel_for(job.n * job.co, threads, [&](i64 t) { f(job, t / job.co, t % job.co); });
}

}  // namespace medfuse
