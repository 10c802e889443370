// Short-time spectra: FFT plans, task split, thread scheduling and ISA
// dispatch. The per-frame arithmetic lives in spectral_kernels.hpp (compiled
// once per ISA).
#include "audio/spectral.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>  // -march=native builds: the baseline path may use the transposes too
#endif

#include "common/avx512_compat.hpp"
#include "common/cpu.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "audio/spectral_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;
constexpr double kPi = 3.141592653589793238462643383279502884;

bool is_pow2(i64 n) { return n > 0 && (n & (n - 1)) == 0; }

template <class T, class C>
struct Kernels {
    double (*spec)(const SpecJob<T, C>&, i64, i64, C*);
    bool (*dct)(const SpecJob<T, C>&, i64, i64, double, C*);
};

template <class T, class C>
Kernels<T, C> pick() {
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return {&avx512::spec_block, &avx512::dct_block};
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return {&avx2::spec_block, &avx2::dct_block};
#endif
        default:
            return {&baseline::spec_block, &baseline::dct_block};
    }
}

// Stockham radix-4 twiddles for the passes over big, big/4, ... (>= 4):
// w^p, w^2p, w^3p with w = exp(-2 pi i / len), angles reduced exactly.
template <class C>
void pow2_tables(FftPlan<C>& p) {
    p.tw4.clear();
    for (i64 len = p.big; len >= 4; len /= 4) {
        for (i64 q = 0; q < len / 4; ++q) {
            for (i64 r = 1; r <= 3; ++r) {
                const i64 k = (q * r) % len;
                const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(len);
                p.tw4.push_back(static_cast<C>(std::cos(a)));
                p.tw4.push_back(static_cast<C>(std::sin(a)));
            }
        }
    }
}

// Reference power-of-two FFT in double (plan set-up only: the Bluestein kernel).
void fft_double(std::vector<double>& re, std::vector<double>& im) {
    const std::size_t n = re.size();
    for (std::size_t i = 1, j = 0; i < n; ++i) {
        std::size_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            std::swap(re[i], re[j]);
            std::swap(im[i], im[j]);
        }
    }
    for (std::size_t len = 2; len <= n; len <<= 1) {
        for (std::size_t s = 0; s < n; s += len) {
            for (std::size_t k = 0; k < len / 2; ++k) {
                const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(len);
                const double wr = std::cos(a), wi = std::sin(a);
                const std::size_t p = s + k, q = s + k + len / 2;
                const double tr = re[q] * wr - im[q] * wi, ti = re[q] * wi + im[q] * wr;
                re[q] = re[p] - tr;
                im[q] = im[p] - ti;
                re[p] += tr;
                im[p] += ti;
            }
        }
    }
}

// 64-byte aligned scratch of n elements of C.
template <class C>
struct Scratch {
    std::unique_ptr<C[]> mem;
    C* ptr;
    explicit Scratch(i64 n) : mem(new C[static_cast<std::size_t>(n) + 64 / sizeof(C)]) {
        auto addr = reinterpret_cast<std::uintptr_t>(mem.get());
        ptr = mem.get() + ((64 - addr % 64) % 64) / sizeof(C);
    }
};

}  // namespace

template <class C>
FftPlan<C> make_fft_plan(i64 n) {
    if (n < 1) throw std::invalid_argument("n_fft must be >= 1");
    FftPlan<C> p;
    p.n = n;
    p.half = n % 2 == 0;
    p.m = p.half ? n / 2 : n;
    p.bluestein = !is_pow2(p.m);
    if (!p.bluestein) {
        p.big = p.m;
    } else {
        p.big = 1;
        while (p.big < 2 * p.m - 1) p.big <<= 1;
    }
    pow2_tables(p);
    if (p.bluestein) {
        const i64 m = p.m, M = p.big;
        std::vector<double> cr(static_cast<std::size_t>(m)), ci(static_cast<std::size_t>(m));
        for (i64 k = 0; k < m; ++k) {
            // k^2 mod 2m keeps the angle small (exact in integers).
            const i64 kk = static_cast<i64>((static_cast<unsigned long long>(k) * static_cast<unsigned long long>(k)) %
                                            static_cast<unsigned long long>(2 * m));
            const double a = -kPi * static_cast<double>(kk) / static_cast<double>(m);
            cr[static_cast<std::size_t>(k)] = std::cos(a);
            ci[static_cast<std::size_t>(k)] = std::sin(a);
        }
        std::vector<double> br(static_cast<std::size_t>(M), 0.0), bi(static_cast<std::size_t>(M), 0.0);
        for (i64 k = 0; k < m; ++k) {
            br[static_cast<std::size_t>(k)] = cr[static_cast<std::size_t>(k)];
            bi[static_cast<std::size_t>(k)] = -ci[static_cast<std::size_t>(k)];
            if (k > 0) {
                br[static_cast<std::size_t>(M - k)] = cr[static_cast<std::size_t>(k)];
                bi[static_cast<std::size_t>(M - k)] = -ci[static_cast<std::size_t>(k)];
            }
        }
        fft_double(br, bi);
        p.ch_re.resize(static_cast<std::size_t>(m));
        p.ch_im.resize(static_cast<std::size_t>(m));
        for (i64 k = 0; k < m; ++k) {
            p.ch_re[static_cast<std::size_t>(k)] = static_cast<C>(cr[static_cast<std::size_t>(k)]);
            p.ch_im[static_cast<std::size_t>(k)] = static_cast<C>(ci[static_cast<std::size_t>(k)]);
        }
        p.bk_re.resize(static_cast<std::size_t>(M));
        p.bk_im.resize(static_cast<std::size_t>(M));
        for (i64 k = 0; k < M; ++k) {
            p.bk_re[static_cast<std::size_t>(k)] = static_cast<C>(br[static_cast<std::size_t>(k)] / static_cast<double>(M));
            p.bk_im[static_cast<std::size_t>(k)] = static_cast<C>(bi[static_cast<std::size_t>(k)] / static_cast<double>(M));
        }
    }
    const i64 nf = n / 2 + 1;
    p.post_re.resize(static_cast<std::size_t>(nf));
    p.post_im.resize(static_cast<std::size_t>(nf));
    for (i64 k = 0; k < nf; ++k) {
        const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n);
        p.post_re[static_cast<std::size_t>(k)] = static_cast<C>(std::cos(a));
        p.post_im[static_cast<std::size_t>(k)] = static_cast<C>(std::sin(a));
    }
    return p;
}

template <class C>
std::int64_t fft_plan_bytes(const FftPlan<C>& p) {
    const std::size_t values = p.tw4.capacity() + p.ch_re.capacity() + p.ch_im.capacity() + p.bk_re.capacity() +
                               p.bk_im.capacity() + p.post_re.capacity() + p.post_im.capacity();
    return static_cast<std::int64_t>(values * sizeof(C));
}

namespace {

// A few recent plans: a plan is tables of O(n) values, rebuilt in
// O(n log n). At most kPlanCacheEntries plans and kPlanCacheBytes bytes are
// kept per type (least recently used evicted); a plan over kPlanMaxCachedBytes
// (an odd n_fft near 2^22 needs a Bluestein length of 2^23: 352 MB in double) is built
// for its call and freed with it, never kept for the process lifetime.
constexpr std::size_t kPlanCacheEntries = 8;
constexpr std::int64_t kPlanCacheBytes = std::int64_t(64) << 20;
constexpr std::int64_t kPlanMaxCachedBytes = std::int64_t(16) << 20;

template <class C>
struct PlanCache {
    struct Entry {
        std::uint64_t used = 0;
        std::int64_t bytes = 0;
        std::shared_ptr<const FftPlan<C>> plan;
    };
    std::mutex mu;
    std::map<i64, Entry> plans;
    std::int64_t bytes = 0;
    std::uint64_t clock = 0;
};

template <class C>
PlanCache<C>& plan_cache() {
    static PlanCache<C> cache;
    return cache;
}

}  // namespace

template <class C>
std::shared_ptr<const FftPlan<C>> cached_fft_plan(i64 n) {
    PlanCache<C>& c = plan_cache<C>();
    {
        std::lock_guard<std::mutex> lock(c.mu);
        auto it = c.plans.find(n);
        if (it != c.plans.end()) {
            it->second.used = ++c.clock;
            return it->second.plan;
        }
    }
    auto plan = std::make_shared<const FftPlan<C>>(make_fft_plan<C>(n));
    const std::int64_t bytes = fft_plan_bytes(*plan);
    if (bytes > kPlanMaxCachedBytes) return plan;
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.plans.count(n)) return plan;  // another thread cached it meanwhile (same tables)
    while (!c.plans.empty() && (c.plans.size() >= kPlanCacheEntries || c.bytes + bytes > kPlanCacheBytes)) {
        auto oldest = c.plans.begin();
        for (auto it = c.plans.begin(); it != c.plans.end(); ++it)
            if (it->second.used < oldest->second.used) oldest = it;
        c.bytes -= oldest->second.bytes;
        c.plans.erase(oldest);
    }
    c.plans[n] = {++c.clock, bytes, plan};
    c.bytes += bytes;
    return plan;
}

template <class C>
FftPlanCacheStats fft_plan_cache_stats() {
    PlanCache<C>& c = plan_cache<C>();
    std::lock_guard<std::mutex> lock(c.mu);
    FftPlanCacheStats st;
    st.entries = static_cast<std::int64_t>(c.plans.size());
    st.bytes = c.bytes;
    for (const auto& kv : c.plans) st.sizes.push_back(kv.first);
    return st;
}

namespace {

// True if every sample is finite: x - x is 0 for finite x and NaN otherwise;
// sixteen independent lane sums (exact zeros) vectorise without reassociation.
template <class T>
bool all_finite(const T* x, i64 n) {
    T acc[kSpecLanes] = {};
    i64 i = 0;
    for (; i + kSpecLanes <= n; i += kSpecLanes)
        for (int l = 0; l < kSpecLanes; ++l) acc[l] = acc[l] + (x[i + l] - x[i + l]);
    for (; i < n; ++i) acc[0] = acc[0] + (x[i] - x[i]);
    for (int l = 0; l < kSpecLanes; ++l)
        if (!(acc[l] == T(0))) return false;
    return true;
}

}  // namespace

template <class T, class C>
SpecStatus spectral(SpecJob<T, C> job, const FftPlan<C>& plan, int threads) {
    // Refuse non-finite samples before any work (one pass).
    if (!all_finite(job.x, job.batch * job.len)) return SpecStatus::bad_input;
    FftTab<C>& f = job.fft;
    f.n = plan.n;
    f.m = plan.m;
    f.big = plan.big;
    f.half = plan.half;
    f.bluestein = plan.bluestein;
    f.tw4 = plan.tw4.data();
    f.ch_re = plan.ch_re.data();
    f.ch_im = plan.ch_im.data();
    f.bk_re = plan.bk_re.data();
    f.bk_im = plan.bk_im.data();
    f.post_re = plan.post_re.data();
    f.post_im = plan.post_im.data();

    const Kernels<T, C> kern = pick<T, C>();
    const i64 nblk = (job.n_frames + kSpecLanes - 1) / kSpecLanes;
    const i64 n_tasks = job.batch * nblk;
    // Runs of frame blocks per task (scratch is allocated once per run): about
    // eight runs per thread, at least 4 blocks each. Blocks are independent,
    // so the split never changes a result.
    const i64 nt = threads > 1 ? threads : 1;
    i64 chunk = n_tasks / (8 * nt);
    chunk = chunk < 4 ? 4 : chunk;
    const i64 n_chunks = (n_tasks + chunk - 1) / chunk;
    const i64 need = spec_scratch(plan, job.n_freq);
    std::vector<double> best(static_cast<std::size_t>(n_chunks), -HUGE_VAL);
    const SpecJob<T, C>& cj = job;
    parallel_for(n_chunks, threads, [&](i64 c) {
        Scratch<C> s(need);
        const i64 end = (c + 1) * chunk < n_tasks ? (c + 1) * chunk : n_tasks;
        double mx = -HUGE_VAL;
        for (i64 t = c * chunk; t < end; ++t) {
            const double v = kern.spec(cj, t / nblk, (t % nblk) * kSpecLanes, s.ptr);
            if (v != v) {  // an output value is not finite: the call fails, stop here
                mx = v;
                break;
            }
            if (v > mx) mx = v;
        }
        best[static_cast<std::size_t>(c)] = mx;
    });
    for (double v : best)
        if (v != v) return SpecStatus::overflow;
    if (job.mode != SpecMode::mfcc) return SpecStatus::ok;
    double floor = -HUGE_VAL;
    if (job.top_db >= 0.0) {
        double mx = -HUGE_VAL;
        for (double v : best) mx = v > mx ? v : mx;  // max is exact: order does not matter
        floor = mx - job.top_db;
    }
    std::vector<char> fine(static_cast<std::size_t>(n_chunks), 1);
    const i64 need_dct = static_cast<i64>(kSpecLanes) * job.n_mels;
    parallel_for(n_chunks, threads, [&](i64 c) {
        Scratch<C> s(need_dct);
        const i64 end = (c + 1) * chunk < n_tasks ? (c + 1) * chunk : n_tasks;
        bool ok = true;
        for (i64 t = c * chunk; t < end; ++t) ok = kern.dct(cj, t / nblk, (t % nblk) * kSpecLanes, floor, s.ptr) && ok;
        fine[static_cast<std::size_t>(c)] = ok ? 1 : 0;
    });
    for (char v : fine)
        if (!v) return SpecStatus::overflow;
    return SpecStatus::ok;
}

template FftPlan<float> make_fft_plan<float>(i64);
template FftPlan<double> make_fft_plan<double>(i64);
template std::shared_ptr<const FftPlan<float>> cached_fft_plan<float>(i64);
template std::shared_ptr<const FftPlan<double>> cached_fft_plan<double>(i64);
template std::int64_t fft_plan_bytes<float>(const FftPlan<float>&);
template std::int64_t fft_plan_bytes<double>(const FftPlan<double>&);
template FftPlanCacheStats fft_plan_cache_stats<float>();
template FftPlanCacheStats fft_plan_cache_stats<double>();
template SpecStatus spectral<float, float>(SpecJob<float, float>, const FftPlan<float>&, int);
template SpecStatus spectral<float, double>(SpecJob<float, double>, const FftPlan<double>&, int);
template SpecStatus spectral<double, double>(SpecJob<double, double>, const FftPlan<double>&, int);

}  // namespace medfuse
