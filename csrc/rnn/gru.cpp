// GRU recurrence: one task per sequence, ISA dispatch. The loops live in
// gru_kernels.hpp (compiled once per ISA).
#include "rnn/gru.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/cpu.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "rnn/gru_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

template <class T>
struct Kernels {
    void (*fwd)(const GruJob<T>&, i64, T*);
    void (*bwd)(const GruJob<T>&, i64, T*);
};

template <class T>
Kernels<T> pick() {
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return {&avx512::gru_fwd_seq, &avx512::gru_bwd_seq};
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return {&avx2::gru_fwd_seq, &avx2::gru_bwd_seq};
#endif
        default:
            return {&baseline::gru_fwd_seq, &baseline::gru_bwd_seq};
    }
}

template <class T>
void forward_impl(GruJob<T>& job, int threads) {
    const Kernels<T> kern = pick<T>();
    const i64 H = job.hidden, G = 3 * H;
    std::vector<T> wt(static_cast<std::size_t>(G * H));
    for (i64 g = 0; g < G; ++g)
        for (i64 k = 0; k < H; ++k) wt[static_cast<std::size_t>(k * G + g)] = job.w_hh[g * H + k];
    job.w_hh_t = wt.data();
    const i64 per = 4 * H;
    std::vector<T> scratch(static_cast<std::size_t>(job.batch * per));
    const GruJob<T>& j = job;
    parallel_for(job.batch, threads, [&](i64 b) { kern.fwd(j, b, scratch.data() + b * per); });
    job.w_hh_t = nullptr;
}

template <class T>
void backward_impl(const GruJob<T>& job, int threads) {
    const Kernels<T> kern = pick<T>();
    const i64 per = 2 * job.hidden;
    std::vector<T> scratch(static_cast<std::size_t>(job.batch * per));
    parallel_for(job.batch, threads, [&](i64 b) { kern.bwd(job, b, scratch.data() + b * per); });
}

}  // namespace

void gru_forward(GruJob<float>& job, int threads) { forward_impl(job, threads); }
void gru_forward(GruJob<double>& job, int threads) { forward_impl(job, threads); }
void gru_backward(const GruJob<float>& job, int threads) { backward_impl(job, threads); }
void gru_backward(const GruJob<double>& job, int threads) { backward_impl(job, threads); }

}  // namespace medfuse
