// Histogram kernels: integer keys (direct index with sub-histograms),
// numpy.histogram's uniform arithmetic, explicit edges, digitize, min/max,
// windowing. See histogram.hpp for the contracts.
#include "histogram/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/cpu.hpp"
#include "common/parallel.hpp"
#include "histogram/histogram_internal.hpp"

namespace medfuse {
namespace baseline {
#include "histogram/histogram_kernels.hpp"

MEDFUSE_HIST_KEY_TYPES(MEDFUSE_HIST_KEYS_PART)
MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_HIST_UNIFORM_PART)
}  // namespace baseline

namespace {

constexpr i64 kMinPart = i64(1) << 17;  // elements per thread part, at least (a 512^2 image: two parts)
constexpr i64 kBlock = 65536;           // numpy.histogram's BLOCK (weighted sums)
constexpr int kSlots = 8;               // weighted blocks summed in parallel per round

i64 n_parts(i64 n, int threads) {
    return std::max<i64>(1, std::min<i64>(threads, (n + kMinPart - 1) / kMinPart));
}

// ---- per-element bin of the uniform and edges paths ---------------------------------
template <class T, class B, class D>
struct UniformBin {
    T lo_thr, hi_thr;
    B lo_b;
    D denom;
    D dn;
    const B* edges;
    i64 nbins;
    // -1 when not counted.
    inline i64 operator()(T v) const {
        if (!(v >= lo_thr && v <= hi_thr)) return -1;
        const B xb = static_cast<B>(v);
        const B diff = static_cast<B>(xb - lo_b);
        const D f = static_cast<D>(static_cast<D>(diff) / denom) * dn;
        i64 idx;
        if (!(f < static_cast<D>(nbins)))
            idx = nbins - 1;  // f == nbins (the last edge) or beyond by rounding
        else if (!(f >= D(0)))
            idx = 0;
        else
            idx = static_cast<i64>(f);
        if (xb < edges[idx]) {
            idx = idx > 0 ? idx - 1 : 0;
        } else if (idx != nbins - 1 && xb >= edges[idx + 1]) {
            ++idx;
        }
        return idx;
    }
};

struct EdgesBin {
    const double* edges;  // nbins + 1, non-decreasing
    i64 nbins;
    template <class T>
    inline i64 operator()(T v) const {
        const double d = static_cast<double>(v);
        if (!(d >= edges[0] && d <= edges[nbins])) return -1;
        // largest i <= nbins - 1 with edges[i] <= d
        i64 lo = 0, hi = nbins - 1;
        while (lo < hi) {
            const i64 mid = (lo + hi + 1) / 2;
            if (edges[mid] <= d)
                lo = mid;
            else
                hi = mid - 1;
        }
        return lo;
    }
};

template <class T, class Bin>
void count_bins(const T* x, const std::uint8_t* mask, const double* weights, i64 n, const Bin& bin, i64 nbins,
                i64* counts, double* wsum, int threads) {
    if (!weights) {
        const i64 parts = n_parts(n, threads);
        std::vector<std::vector<i64>> partial(static_cast<std::size_t>(parts));
        parallel_for(parts, threads, [&](i64 p) {
            auto& h = partial[static_cast<std::size_t>(p)];
            h.assign(static_cast<std::size_t>(nbins + 1), 0);
            i64* hp = h.data();
            const i64 b = split_begin(n, parts, p), e = split_begin(n, parts, p + 1);
            for (i64 i = b; i < e; ++i) {
                if (mask && !mask[i]) continue;
                const i64 k = bin(x[i]);
                ++hp[k < 0 ? nbins : k];
            }
        });
        for (auto& h : partial)
            for (i64 k = 0; k < nbins; ++k) counts[k] += h[static_cast<std::size_t>(k)];
        return;
    }
    // Weighted: numpy sums each block of 65536 elements in element order
    // (bincount), then adds block sums in block order. Rounds of kSlots blocks
    // run in parallel; their sums are folded in block order.
    const i64 n_blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> slot(static_cast<std::size_t>(kSlots * nbins));
    for (i64 r = 0; r < n_blocks; r += kSlots) {
        const i64 nb = std::min<i64>(kSlots, n_blocks - r);
        parallel_for(nb, threads, [&](i64 s) {
            double* acc = slot.data() + s * nbins;
            std::fill(acc, acc + nbins, 0.0);
            const i64 b = (r + s) * kBlock, e = std::min(n, b + kBlock);
            for (i64 i = b; i < e; ++i) {
                if (mask && !mask[i]) continue;
                const i64 k = bin(x[i]);
                if (k >= 0) acc[k] += weights[i];
            }
        });
        for (i64 s = 0; s < nb; ++s) {
            const double* acc = slot.data() + s * nbins;
            for (i64 k = 0; k < nbins; ++k) wsum[k] += acc[k];
        }
    }
}

// Unweighted floats: keys of a tile in one branch-free (vectorised) loop,
// counted into sub-histograms; integer counts, so any split gives the same result.
template <class T, class B, class D>
void uniform_tiles(const T* x, const std::uint8_t* mask, i64 n, T lo_thr, T hi_thr, B lo_b, D denom, const B* edges,
                   i64 nbins, i64* counts, int threads) {
    const i64 parts = n_parts(n, threads);
    std::vector<std::vector<i64>> partial(static_cast<std::size_t>(parts));
    const i64 slots = nbins + 1;  // + one for values not counted
    const i64 stride = (slots + 15) / 16 * 16;
    const int nsub = slots <= 4160 ? 4 : (slots <= 16384 ? 2 : 1);
    const Isa isa = active_isa();
    parallel_for(parts, threads, [&](i64 p) {
        auto& h = partial[static_cast<std::size_t>(p)];
        h.assign(static_cast<std::size_t>(nbins), 0);
        std::vector<std::uint32_t> scratch(static_cast<std::size_t>(stride * nsub));
        const i64 b = split_begin(n, parts, p), e = split_begin(n, parts, p + 1);
        switch (isa) {
#ifdef MEDFUSE_HAVE_AVX512
            case Isa::avx512:
                avx512::uniform_part(x, mask, b, e, lo_thr, hi_thr, lo_b, denom, edges, nbins, h.data(),
                                     scratch.data(), stride, nsub);
                return;
#endif
#ifdef MEDFUSE_HAVE_AVX2
            case Isa::avx2:
                avx2::uniform_part(x, mask, b, e, lo_thr, hi_thr, lo_b, denom, edges, nbins, h.data(), scratch.data(),
                                   stride, nsub);
                return;
#endif
            default:
                baseline::uniform_part(x, mask, b, e, lo_thr, hi_thr, lo_b, denom, edges, nbins, h.data(),
                                       scratch.data(), stride, nsub);
        }
    });
    for (auto& h : partial)
        for (i64 k = 0; k < nbins; ++k) counts[k] += h[static_cast<std::size_t>(k)];
}

}  // namespace

template <class T>
void hist_keys(const T* x, const std::uint8_t* mask, i64 n, i64 lo, i64 hi, int shift, i64* keys, int threads) {
    const i64 n_keys = ((hi - lo) >> shift) + 1;
    const i64 parts = n_parts(n, threads);
    std::vector<std::vector<i64>> partial(static_cast<std::size_t>(parts));
    const i64 slots = n_keys + 1;  // + one for values outside [lo, hi] or unselected
    const i64 stride = (slots + 15) / 16 * 16;
    // Four sub-histograms break the store-to-load chains of runs of equal
    // keys (CT air, lung); with many keys they would leave L1/L2 instead.
    // Up to 4096 keys (12-bit data) four still pay: with 32-bit counters
    // (64 KB) a 2048^2 12-bit X-ray counted 9 % faster than with two (Zen 5);
    // eight (128 KB) were slower again. 8/16-bit data now count into 16-bit
    // counters (keys_part), 32 KB for four 4096-key sub-histograms.
    const int nsub = slots <= 4160 ? 4 : (slots <= 16384 ? 2 : 1);
    const bool use_avx2 = active_isa() != Isa::baseline;
    parallel_for(parts, threads, [&](i64 p) {
        auto& h = partial[static_cast<std::size_t>(p)];
        h.assign(static_cast<std::size_t>(n_keys), 0);
        const i64 b = split_begin(n, parts, p), e = split_begin(n, parts, p + 1);
#ifdef MEDFUSE_HAVE_AVX2
        if (use_avx2) {
            avx2::keys_part(x, mask, b, e, lo, hi, shift, n_keys, h.data(), stride, nsub);
            return;
        }
#endif
        (void)use_avx2;
        baseline::keys_part(x, mask, b, e, lo, hi, shift, n_keys, h.data(), stride, nsub);
    });
    for (auto& h : partial)
        for (i64 k = 0; k < n_keys; ++k) keys[k] += h[static_cast<std::size_t>(k)];
}

template <class T, class B, class D>
void hist_uniform(const T* x, const std::uint8_t* mask, const double* weights, i64 n, T lo_thr, T hi_thr, B lo_b,
                  D denom, const B* edges, i64 nbins, i64* counts, double* wsum, int threads) {
    UniformBin<T, B, D> bin{lo_thr, hi_thr, lo_b, denom, static_cast<D>(nbins), edges, nbins};
    if constexpr (!std::is_floating_point<T>::value) {
        count_bins(x, mask, weights, n, bin, nbins, counts, wsum, threads);
    } else if (weights || nbins >= (i64(1) << 30)) {
        count_bins(x, mask, weights, n, bin, nbins, counts, wsum, threads);
    } else {
        uniform_tiles(x, mask, n, lo_thr, hi_thr, lo_b, denom, edges, nbins, counts, threads);
    }
}

template <class T>
void hist_edges(const T* x, const std::uint8_t* mask, const double* weights, i64 n, const double* edges, i64 nbins,
                i64* counts, double* wsum, int threads) {
    EdgesBin bin{edges, nbins};
    count_bins(x, mask, weights, n, bin, nbins, counts, wsum, threads);
}

template <class T>
void digitize(const T* x, const std::uint8_t* mask, i64 n, const double* edges, i64 n_edges, std::int32_t* out,
              int threads) {
    const i64 parts = n_parts(n, threads);
    parallel_for(parts, threads, [&](i64 p) {
        for (i64 i = split_begin(n, parts, p); i < split_begin(n, parts, p + 1); ++i) {
            if (mask && !mask[i]) {
                out[i] = 0;
                continue;
            }
            const double d = static_cast<double>(x[i]);
            // number of edges <= d (searchsorted side='right'); NaN sorts last
            i64 k;
            if (d != d) {
                k = n_edges;
            } else {
                k = static_cast<i64>(std::upper_bound(edges, edges + n_edges, d) - edges);
            }
            out[i] = static_cast<std::int32_t>(k);
        }
    });
}

template <class T>
void min_max(const T* x, const std::uint8_t* mask, i64 n, T* mn, T* mx, i64* selected, i64* nan_count, int threads) {
    const i64 parts = n_parts(n, threads);
    struct R {
        T lo, hi;
        i64 sel = 0, nan = 0;
    };
    std::vector<R> res(static_cast<std::size_t>(parts));
    parallel_for(parts, threads, [&](i64 p) {
        T lo = std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
        T hi = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
        i64 sel = 0, nan = 0;
        const i64 b = split_begin(n, parts, p), e = split_begin(n, parts, p + 1);
        if (!mask) {
            for (i64 i = b; i < e; ++i) {
                const T v = x[i];
                if constexpr (std::is_floating_point<T>::value) nan += v != v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            sel = e - b;
        } else {
            for (i64 i = b; i < e; ++i) {
                if (!mask[i]) continue;
                const T v = x[i];
                ++sel;
                if constexpr (std::is_floating_point<T>::value) nan += v != v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
        res[static_cast<std::size_t>(p)] = R{lo, hi, sel, nan};
    });
    T lo = res[0].lo, hi = res[0].hi;
    i64 sel = 0, nan = 0;
    for (const auto& r : res) {
        lo = r.lo < lo ? r.lo : lo;
        hi = r.hi > hi ? r.hi : hi;
        sel += r.sel;
        nan += r.nan;
    }
    *mn = lo;
    *mx = hi;
    *selected = sel;
    *nan_count = nan;
}

template <class T, class O>
i64 window(const T* x, i64 n, double lo, double scale, double top, O* out, int threads) {
    const i64 parts = n_parts(n, threads);
    std::vector<i64> nans(static_cast<std::size_t>(parts), 0);
    parallel_for(parts, threads, [&](i64 p) {
        i64 bad = 0;
        for (i64 i = split_begin(n, parts, p); i < split_begin(n, parts, p + 1); ++i) {
            double y = (static_cast<double>(x[i]) - lo) * scale;
            if (y != y) {
                ++bad;
                y = 0.0;
            }
            y = y < 0.0 ? 0.0 : (y > top ? top : y);
            if constexpr (std::is_integral<O>::value)
                out[i] = static_cast<O>(std::nearbyint(y));
            else
                out[i] = static_cast<O>(y);
        }
        nans[static_cast<std::size_t>(p)] = bad;
    });
    i64 total = 0;
    for (i64 v : nans) total += v;
    return total;
}

// ---- instantiations -------------------------------------------------------------
#define MEDFUSE_HIST_INT(T)                                                                              \
    template void hist_keys<T>(const T*, const std::uint8_t*, i64, i64, i64, int, i64*, int);              \
    template void hist_uniform<T, double, double>(const T*, const std::uint8_t*, const double*, i64, T, T, \
                                                  double, double, const double*, i64, i64*, double*, int);
MEDFUSE_HIST_INT(std::uint8_t)
MEDFUSE_HIST_INT(std::uint16_t)
MEDFUSE_HIST_INT(std::int16_t)
MEDFUSE_HIST_INT(std::int32_t)
#undef MEDFUSE_HIST_INT

template void hist_uniform<double, double, double>(const double*, const std::uint8_t*, const double*, i64, double,
                                                   double, double, double, const double*, i64, i64*, double*, int);
template void hist_uniform<float, float, float>(const float*, const std::uint8_t*, const double*, i64, float, float,
                                                float, float, const float*, i64, i64*, double*, int);
template void hist_uniform<float, float, double>(const float*, const std::uint8_t*, const double*, i64, float, float,
                                                 float, double, const float*, i64, i64*, double*, int);
template void hist_uniform<float, double, double>(const float*, const std::uint8_t*, const double*, i64, float,
                                                  float, double, double, const double*, i64, i64*, double*, int);

#define MEDFUSE_HIST_ALL(T)                                                                                  \
    template void hist_edges<T>(const T*, const std::uint8_t*, const double*, i64, const double*, i64, i64*, \
                                double*, int);                                                                \
    template void digitize<T>(const T*, const std::uint8_t*, i64, const double*, i64, std::int32_t*, int);    \
    template void min_max<T>(const T*, const std::uint8_t*, i64, T*, T*, i64*, i64*, int);                   \
    template i64 window<T, std::uint8_t>(const T*, i64, double, double, double, std::uint8_t*, int);          \
    template i64 window<T, std::uint16_t>(const T*, i64, double, double, double, std::uint16_t*, int);        \
    template i64 window<T, float>(const T*, i64, double, double, double, float*, int);                        \
    template i64 window<T, double>(const T*, i64, double, double, double, double*, int);
MEDFUSE_HIST_ALL(std::uint8_t)
MEDFUSE_HIST_ALL(std::uint16_t)
MEDFUSE_HIST_ALL(std::int16_t)
MEDFUSE_HIST_ALL(std::int32_t)
MEDFUSE_HIST_ALL(float)
MEDFUSE_HIST_ALL(double)
#undef MEDFUSE_HIST_ALL

}  // namespace medfuse
