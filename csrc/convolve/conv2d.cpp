// conv2d driver: weight packing, work split, ISA choice (see conv2d.hpp).
#include "convolve/conv2d.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/cpu.hpp"
#include "common/checked_simd.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "convolve/conv2d_kernels.hpp"
#include "convolve/conv2d_winograd_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;
using conv2d_detail::kMR;
using conv2d_detail::kNR;

struct AlignedFree {
    void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

Buffer aligned_floats(i64 n) {
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    return Buffer(static_cast<float*>(p));
}

// MEDFUSE_CONV2D_PATH: "" / "auto" (the measured choice), "gemm", "direct"
// (the pixel-vector direct tiles), "cvec" (the channel-vector direct tiles) or
// "winograd" (where the shape allows it); read once per process.
enum class PathChoice { automatic, gemm, direct, winograd, cvec, invalid };
PathChoice path_choice() {
    static const PathChoice c = [] {
        const char* s = std::getenv("MEDFUSE_CONV2D_PATH");
        if (s == nullptr || *s == '\0' || std::strcmp(s, "auto") == 0) return PathChoice::automatic;
        if (std::strcmp(s, "gemm") == 0) return PathChoice::gemm;
        if (std::strcmp(s, "direct") == 0) return PathChoice::direct;
        if (std::strcmp(s, "winograd") == 0) return PathChoice::winograd;
        if (std::strcmp(s, "cvec") == 0) return PathChoice::cvec;
        return PathChoice::invalid;
    }();
    return c;
}

// Winograd F(2x2, 3x3) applies to 3x3 kernels, stride 1, dilation 1.
bool winograd_fits(const Conv2dJob& job) {
    return job.kh == 3 && job.kw == 3 && job.sh == 1 && job.sw == 1 && job.dh == 1 && job.dw == 1 && job.ho > 0 &&
           job.wo > 0;
}

// Where auto picks Winograd (measured, see conv2d.hpp): SIMD builds, enough
// channels, outputs of at least 28 x 28 (smaller ones pad short tile rows to
// whole vectors and lose to the direct path).
bool winograd_pays(const Conv2dJob& job) {
    if (active_isa() == Isa::baseline) return false;
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    return cg >= 16 && cog >= 16 && job.ho >= 28 && job.wo >= 28;
}

// Transformed weights U = G g G^T (in float64, rounded once), per group
// [16][panels][cg][kWinoPanel], zeros in a partial panel's missing channels.
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
void conv2d_winograd(const Conv2dJob& job, int threads, Isa isa) {
    constexpr int WP = conv2d_detail::kWinoPanel;
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 panels = (cog + WP - 1) / WP;
    const i64 per_group = 16 * panels * cg * WP;
    Buffer U = aligned_floats(G * per_group);
    std::fill(U.get(), U.get() + G * per_group, 0.f);
    for (i64 g = 0; g < G; ++g)
        for (i64 o = 0; o < cog; ++o)
            for (i64 c = 0; c < cg; ++c) {
                const float* k = job.w + ((g * cog + o) * cg + c) * 9;
                double t[4][3];  // G k
                for (int x = 0; x < 3; ++x) {
                    const double a = k[x], b = k[3 + x], d = k[6 + x];
                    t[0][x] = a;
                    t[1][x] = 0.5 * (a + b + d);
                    t[2][x] = 0.5 * (a - b + d);
                    t[3][x] = d;
                }
                for (int i = 0; i < 4; ++i) {
                    const double a = t[i][0], b = t[i][1], d = t[i][2];
                    const double u[4] = {a, 0.5 * (a + b + d), 0.5 * (a - b + d), d};
                    for (int j = 0; j < 4; ++j)
                        U[static_cast<std::size_t>(g * per_group + (((4 * i + j) * panels + o / WP) * cg + c) * WP +
                                                   o % WP)] = static_cast<float>(u[j]);
                }
            }
    // Tasks: bands of tile rows of one (image, group), about 2**16 floats of
    // transformed input per band (in L2), enough bands for the threads.
    // Tiles are independent, so the split never changes a result.
    const i64 th = (job.ho + 1) / 2, tw = (job.wo + 1) / 2;
    i64 rows = std::max<i64>(1, (i64(1) << 16) / (16 * cg * conv2d_detail::wino_row_tiles(tw)));
    const i64 want_tasks = 4 * static_cast<i64>(std::max(threads, 1));
    const i64 per_image = job.n * G;
    if (per_image * ((th + rows - 1) / rows) < want_tasks) rows = std::max<i64>(1, th * per_image / want_tasks);
    // ... but at least kWinoMinTiles tiles per band (each band splits its input rows
    // into even and odd columns once: input row 2 r + 2 is read by tile rows r and r + 1).
    rows = std::max(rows, (conv2d_detail::kWinoMinTiles + tw - 1) / tw);
    rows = std::min(rows, th);
    const i64 bands = (th + rows - 1) / rows;
    using Band = void (*)(const Conv2dJob&, const float*, i64, i64, i64, i64, float*);
    Band band = &baseline::conv2d_winograd_band;
#if defined(MEDFUSE_HAVE_AVX512)
    if (isa == Isa::avx512) band = &avx512::conv2d_winograd_band;
#endif
#if defined(MEDFUSE_HAVE_AVX2)
    if (isa == Isa::avx2) band = &avx2::conv2d_winograd_band;
#endif
    (void)isa;
    const i64 scratch = conv2d_detail::wino_scratch(cg, rows, tw);
    parallel_for(job.n * G * bands, threads, [&](i64 t) {
        const i64 b = t % bands, rest = t / bands;
        const i64 g = rest % G, img = rest / G;
        // Scratch kept per thread across tasks and calls (grown, never shrunk):
        // a fresh 0.3-1 MB block per band cost page faults on every band.
        thread_local Buffer s;
        thread_local i64 have = 0;
        if (have < scratch) {
            s = aligned_floats(scratch);
            have = scratch;
        }
        band(job, U.get() + g * per_group, img, g, b * rows, std::min(th, (b + 1) * rows), s.get());
    });
}

#if defined(MEDFUSE_HAVE_AVX2)
// The direct path (no packing) is the faster one on every stride-1/2 shape
// measured, narrow outputs included (a 4x4 output row still beats the
// packed GEMM's per-task packing and tiny panels).
// Very long reductions (the 1x1 "convolution" the grad-weight fallback runs,
// K = pixels) keep the GEMM, which blocks K and splits the pixels.
bool direct_fits(const Conv2dJob& job) {
    const i64 K = job.c / job.groups * job.kh * job.kw;
    return (job.sw == 1 || job.sw == 2) && job.kw <= conv2d_detail::kDirectMaxKw && K <= 8192;
}

// Where auto takes the channel-vector tiles (conv2d_cvec_kernels.hpp) over the
// pixel-vector ones: at least 8 output channels per group, and stride 2 or a
// reduction of at least 96 (Zen 4, 1 thread, alternating processes, avx512 /
// avx2 ms: 4x96x28x28 -> 96 k5 s2 g4 1.05 -> 0.89 / 1.24 -> 0.91; batch-32
// 16 -> 32 k3 s2 on 8x8 0.215 -> 0.072 / 0.204 -> 0.069, on 16x16 0.25 -> 0.21
// / 0.40 -> 0.23; 32x1x64x64 -> 8 k3 s2 0.19 -> 0.10 / 0.127 -> 0.120;
// 2x16x40x40 -> 32 k5 0.85 -> 0.75 / 0.92 -> 0.77. Kept on the pixel vectors:
// 4 output channels 0.022 vs 0.032 on avx2; short stride-1 reductions on
// rows that fill the vectors, 4x3x64x64 -> 16 k3 0.179 vs 0.183 / 0.157 vs
// 0.205, and a 1x1 64 -> 128 layer on 14x14, 0.148 vs 0.16 on avx512; on avx2
// one input channel at stride 2, 32x1x64x64 -> 8 k3 0.128 vs 0.150.)
bool cvec_pays(const Conv2dJob& job, Isa isa) {
    const i64 K = job.c / job.groups * job.kh * job.kw;
    return job.co / job.groups >= 8 && ((job.sw == 2 && (isa == Isa::avx512 || K >= 16)) || K >= 96);
}

using DirectRows = void (*)(const Conv2dJob&, const float*, i64, i64, i64, i64);

template <int M>
void conv2d_direct(const Conv2dJob& job, int threads, DirectRows rows_fn, bool flat, bool cvec = false) {
    const i64 G = job.groups, cog = job.co / G;
    const i64 K = job.c / G * job.kh * job.kw;
    const i64 mblocks = (cog + M - 1) / M;
    Buffer apack = aligned_floats(G * mblocks * K * M);
    for (i64 g = 0; g < G; ++g)
        for (i64 mb = 0; mb < mblocks; ++mb) {
            float* dst = apack.get() + (g * mblocks + mb) * K * M;
            for (i64 k = 0; k < K; ++k)
                for (i64 i = 0; i < M; ++i) {
                    const i64 o = mb * M + i;
                    dst[k * M + i] = o < cog ? job.w[(g * cog + o) * K + k] : 0.f;
                }
        }
    // Tasks: bands of output rows of one (image, group), about 64k multiply-adds
    // per output row and channel block at least, and enough bands to keep the
    // threads busy. A band's result does not depend on who computes it.
    const i64 per_row = std::max<i64>(1, K * job.wo * mblocks * M);
    i64 rows = std::max<i64>(1, (i64(1) << 20) / per_row);
    if (flat) rows = std::max(rows, (conv2d_detail::kFlatMinPixels + job.wo - 1) / job.wo);
    if (cvec) {
        // Channel-vector tiles copy the band's input rows (zero-padded): bands
        // of up to 2**15 copied floats where the threads allow (fewer rows
        // copied twice; 4x96x28x28 k5 s2 g4: 3 bands of 5 rows copied 13 input
        // rows each, 1 band copies 31).
        const i64 lp = (job.wo - 1) * job.sw + (job.kw - 1) * job.dw + 1;
        const i64 nb_max = std::max<i64>(1, (i64(1) << 15) / std::max<i64>(1, job.c / G * lp));
        rows = std::max(rows, std::max<i64>(1, (nb_max - (job.kh - 1) * job.dh - 1) / job.sh + 1));
    }
    const i64 want_tasks = 4 * static_cast<i64>(std::max(threads, 1));
    const i64 per_image = job.n * G;
    if (per_image * ((job.ho + rows - 1) / rows) < want_tasks)
        rows = std::max<i64>(1, job.ho * per_image / want_tasks);
    rows = std::min(rows, job.ho);
    const i64 bands = (job.ho + rows - 1) / rows;
    parallel_for(job.n * G * bands, threads, [&](i64 t) {
        const i64 b = t % bands, rest = t / bands;
        const i64 g = rest % G, img = rest / G;
        const i64 h0 = b * rows, h1 = std::min(job.ho, h0 + rows);
        rows_fn(job, apack.get() + g * mblocks * K * M, img, g, h0, h1);
    });
}
#endif

}  // namespace

void conv2d_f32(const Conv2dJob& job, int threads) {
    if (job.groups < 1 || job.c % job.groups || job.co % job.groups)
        throw std::invalid_argument("conv2d: groups must divide the channels");
    const i64 G = job.groups, cg = job.c / G, cog = job.co / G;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const i64 mblocks = (cog + kMR - 1) / kMR;

    const PathChoice pc = path_choice();
    if (pc == PathChoice::invalid)
        throw std::invalid_argument("conv2d: MEDFUSE_CONV2D_PATH must be auto, gemm, direct, cvec or winograd");
    if (winograd_fits(job) && (pc == PathChoice::winograd || (pc == PathChoice::automatic && winograd_pays(job)))) {
        conv2d_winograd(job, threads, active_isa());
        return;
    }
#if defined(MEDFUSE_HAVE_AVX2)
    if (pc != PathChoice::gemm && direct_fits(job)) {
        if (active_isa() != Isa::baseline &&
            (pc == PathChoice::cvec || (pc == PathChoice::automatic && cvec_pays(job, active_isa())))) {
#if defined(MEDFUSE_HAVE_AVX512)
            if (active_isa() == Isa::avx512) {
                conv2d_direct<conv2d_detail::kDMR>(job, threads, &avx512::conv2d_cvec_rows, false, true);
                return;
            }
#endif
            conv2d_direct<conv2d_detail::kDMR>(job, threads, &avx2::conv2d_cvec_rows, false, true);
            return;
        }
#if defined(MEDFUSE_HAVE_AVX512)
        if (active_isa() == Isa::avx512) {
            conv2d_direct<conv2d_detail::kDMR>(job, threads, &avx512::conv2d_direct_rows,
                                               conv2d_detail::direct_flat(job.wo, job.sw));
            return;
        }
#endif
        if (active_isa() == Isa::avx2) {
            conv2d_direct<kMR>(job, threads, &avx2::conv2d_direct_rows, false);
            return;
        }
    }
#endif
    // A: per group, mblocks panels of K x MR (row-major weights -> k-major panels).
    Buffer apack = aligned_floats(G * mblocks * K * kMR);
    for (i64 g = 0; g < G; ++g)
        for (i64 mb = 0; mb < mblocks; ++mb) {
            float* dst = apack.get() + (g * mblocks + mb) * K * kMR;
            for (i64 k = 0; k < K; ++k)
                for (int i = 0; i < kMR; ++i) {
                    const i64 o = mb * kMR + i;
                    dst[k * kMR + i] = o < cog ? job.w[(g * cog + o) * K + k] : 0.f;
                }
        }

    // Pixel blocks sized so the packed B tile (min(K, KC) x nc floats) stays in L2.
    const i64 kc = conv2d_detail::block_k(K);
    i64 nc = std::max<i64>(kNR, (32768 / std::max<i64>(kc, 1)) / kNR * kNR);
    nc = std::min<i64>(nc, (P + kNR - 1) / kNR * kNR);
    const i64 pblocks = (P + nc - 1) / nc;
    // A task runs up to 8 consecutive pixel blocks of one (image, group),
    // reusing one packed-B buffer (no allocation per block).
    const i64 per_task = 8;
    const i64 chunks = (pblocks + per_task - 1) / per_task;
    const i64 n_tasks = job.n * G * chunks;

    bool avx = false;
#if defined(MEDFUSE_HAVE_AVX2)
    avx = active_isa() != Isa::baseline;
#endif
    // Each task packs its own B tiles; which thread runs a task never changes
    // its result.
    parallel_for(n_tasks, threads, [&](i64 t) {
        const i64 ch = t % chunks, rest = t / chunks;
        const i64 g = rest % G, img = rest / G;
        Buffer bpack = aligned_floats(kc * nc);
        const float* a = apack.get() + g * mblocks * K * kMR;
        for (i64 pb = ch * per_task; pb < std::min(pblocks, (ch + 1) * per_task); ++pb) {
            const i64 p0 = pb * nc, p1 = std::min(P, p0 + nc);
#if defined(MEDFUSE_HAVE_AVX2)
            if (avx) {
                avx2::conv2d_block(job, a, img, g, p0, p1, bpack.get());
                continue;
            }
#endif
            (void)avx;
            baseline::conv2d_block(job, a, img, g, p0, p1, bpack.get());
        }
    });
}

}  // namespace medfuse
