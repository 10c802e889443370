// conv2d gradients: task split, scratch, ISA choice (see conv2d_backward.hpp).
#include "convolve/conv2d_backward.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "common/cpu.hpp"
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

}  // namespace

void conv2d_backward_f32(const Conv2dGradJob<float>& job, int threads) { run_backward(job, threads); }
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
