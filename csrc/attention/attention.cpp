// Fused attention: task split, thread scheduling and ISA dispatch. The block
// arithmetic lives in attention_kernels.hpp (compiled once per ISA).
#include "attention/attention.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/cpu.hpp"
#include "common/checked_simd.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "attention/attention_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

template <class T>
struct Kernels {
    void (*fwd)(const AttnJob<T>&, i64, i64, T*);
    void (*bwd_kv)(const AttnJob<T>&, i64, i64, T*, T*);
    void (*bwd_q)(const AttnJob<T>&, i64, i64, T*);
};

template <class T>
Kernels<T> pick() {
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return {&avx512::attn_fwd_block, &avx512::attn_bwd_kv_block, &avx512::attn_bwd_q_block};
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return {&avx2::attn_fwd_block, &avx2::attn_bwd_kv_block, &avx2::attn_bwd_q_block};
#endif
        default:
            return {&baseline::attn_fwd_block, &baseline::attn_bwd_kv_block,
                    &baseline::attn_bwd_q_block};
    }
}

// 64-byte aligned scratch of n elements of T.
template <class T>
struct Scratch {
    std::unique_ptr<T[]> mem;
    T* ptr;
    explicit Scratch(i64 n) : mem(new T[static_cast<std::size_t>(n) + 64 / sizeof(T)]) {
        auto addr = reinterpret_cast<std::uintptr_t>(mem.get());
        ptr = mem.get() + ((64 - addr % 64) % 64) / sizeof(T);
    }
};

i64 blocks(i64 n, i64 b) { return (n + b - 1) / b; }

template <class T>
void forward_impl(const AttnJob<T>& job, int threads) {
    const Kernels<T> kern = pick<T>();
    const i64 nqb = blocks(job.lq, kAttnFwdBr);
    const i64 need = attn_fwd_scratch(job);
    // Tasks are (batch, query block); each thread takes runs of consecutive
    // tasks so that its scratch is allocated once per run.
    const i64 n_tasks = job.batch * nqb;
    const i64 chunk = 1;
    parallel_for(blocks(n_tasks, chunk), threads, [&](i64 c) {
        Scratch<T> s(need);
        const i64 end = (c + 1) * chunk < n_tasks ? (c + 1) * chunk : n_tasks;
        for (i64 t = c * chunk; t < end; ++t) kern.fwd(job, t / nqb, t % nqb, s.ptr);
    });
}

template <class T>
void backward_impl(const AttnJob<T>& job, int threads) {
    const Kernels<T> kern = pick<T>();
    const i64 lq = job.lq, dv = job.dv;
    // delta = rowsum(dout * o), fixed order.
    parallel_for(job.batch, threads, [&](i64 b) {
        for (i64 i = 0; i < lq; ++i) {
            const T* o = job.o + (b * lq + i) * dv;
            const T* g = job.dout + (b * lq + i) * dv;
            T s = T(0);
            for (i64 c = 0; c < dv; ++c) s += o[c] * g[c];
            job.delta[b * lq + i] = s;
        }
    });
    const i64 nqb = blocks(job.lq, kAttnBr), nkb = blocks(job.lk, kAttnBc);
    const i64 need = attn_bwd_scratch(job);
    const i64 dp = attn_pad<T>(job.d);
    // Both schedules do the same arithmetic in the same order (dk/dv of a key
    // block: query blocks ascending; dq of a query block: key blocks
    // ascending), so the choice below never changes a bit of the result.
    if (threads <= 1 || job.batch >= 2 * static_cast<i64>(threads)) {
        // One pass per batch element; dq accumulated in an lq x pad(d) buffer.
        parallel_for(job.batch, threads, [&](i64 b) {
            Scratch<T> s(need);
            Scratch<T> dq(lq * dp);
            std::memset(dq.ptr, 0, static_cast<std::size_t>(lq * dp) * sizeof(T));
            for (i64 kb = 0; kb < nkb; ++kb) kern.bwd_kv(job, b, kb, s.ptr, dq.ptr);
            T* out = job.dq + b * lq * job.d;
            for (i64 i = 0; i < lq; ++i)
                for (i64 c = 0; c < job.d; ++c) out[i * job.d + c] = dq.ptr[i * dp + c];
        });
    } else {
        parallel_for(job.batch * nkb, threads, [&](i64 t) {
            Scratch<T> s(need);
            kern.bwd_kv(job, t / nkb, t % nkb, s.ptr, nullptr);
        });
        parallel_for(job.batch * nqb, threads, [&](i64 t) {
            Scratch<T> s(need);
            kern.bwd_q(job, t / nqb, t % nqb, s.ptr);
        });
    }
}

}  // namespace

void attention_forward(const AttnJob<float>& job, int threads) { forward_impl(job, threads); }
void attention_forward(const AttnJob<double>& job, int threads) { forward_impl(job, threads); }
void attention_backward(const AttnJob<float>& job, int threads) { backward_impl(job, threads); }
void attention_backward(const AttnJob<double>& job, int threads) { backward_impl(job, threads); }

}  // namespace medfuse
