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

#include "common/parallel.hpp"

namespace medfuse {
namespace {

constexpr i64 kMinPart = i64(1) << 18;  // elements per thread part, at least
constexpr i64 kBlock = 65536;           // numpy.histogram's BLOCK (weighted sums)
constexpr int kSlots = 8;               // weighted blocks summed in parallel per round

i64 n_parts(i64 n, int threads) {
    return std::max<i64>(1, std::min<i64>(threads, (n + kMinPart - 1) / kMinPart));
}

// ---- integer keys ---------------------------------------------------------------
// Keys of a tile of up to kTile elements: (x - lo) >> shift, or `dummy` when
// out of [lo, hi] or unselected. Written for the auto-vectorizer.
constexpr i64 kTile = 256;

template <class T>
inline void tile_keys(const T* __restrict__ x, const std::uint8_t* __restrict__ m, i64 len, i64 lo, i64 range,
                      int shift, std::uint32_t dummy, std::uint32_t* __restrict__ keys) {
    if constexpr (sizeof(T) <= 2) {
        const std::int32_t lo32 = static_cast<std::int32_t>(lo);
        const std::uint32_t r32 = static_cast<std::uint32_t>(range);
        if (m) {
            for (i64 j = 0; j < len; ++j) {
                const std::uint32_t d = static_cast<std::uint32_t>(static_cast<std::int32_t>(x[j]) - lo32);
                keys[j] = (d <= r32 && m[j]) ? (d >> shift) : dummy;
            }
        } else {
            for (i64 j = 0; j < len; ++j) {
                const std::uint32_t d = static_cast<std::uint32_t>(static_cast<std::int32_t>(x[j]) - lo32);
                keys[j] = d <= r32 ? (d >> shift) : dummy;
            }
        }
    } else {
        const std::uint64_t r64 = static_cast<std::uint64_t>(range);
        for (i64 j = 0; j < len; ++j) {
            const std::uint64_t d = static_cast<std::uint64_t>(static_cast<i64>(x[j]) - lo);
            const bool ok = d <= r64 && (!m || m[j]);
            keys[j] = ok ? static_cast<std::uint32_t>(d >> shift) : dummy;
        }
    }
}

// Counts keys into `nsub` interleaved sub-histograms (stride `stride`), so
// consecutive increments rarely hit the same counter (no store-to-load chain).
template <int NSUB>
inline void scatter(const std::uint32_t* __restrict__ keys, i64 len, std::uint32_t* __restrict__ h, i64 stride) {
    i64 j = 0;
    if constexpr (NSUB == 4) {
        std::uint32_t* h0 = h;
        std::uint32_t* h1 = h + stride;
        std::uint32_t* h2 = h + 2 * stride;
        std::uint32_t* h3 = h + 3 * stride;
        for (; j + 8 <= len; j += 8) {
            ++h0[keys[j]];
            ++h1[keys[j + 1]];
            ++h2[keys[j + 2]];
            ++h3[keys[j + 3]];
            ++h0[keys[j + 4]];
            ++h1[keys[j + 5]];
            ++h2[keys[j + 6]];
            ++h3[keys[j + 7]];
        }
    } else if constexpr (NSUB == 2) {
        std::uint32_t* h1 = h + stride;
        for (; j + 2 <= len; j += 2) {
            ++h[keys[j]];
            ++h1[keys[j + 1]];
        }
    }
    for (; j < len; ++j) ++h[keys[j]];
}

// uint8 with every value a key: count straight from the data.
inline void scatter_u8(const std::uint8_t* __restrict__ x, i64 len, std::uint32_t* __restrict__ h, i64 stride) {
    std::uint32_t* h0 = h;
    std::uint32_t* h1 = h + stride;
    std::uint32_t* h2 = h + 2 * stride;
    std::uint32_t* h3 = h + 3 * stride;
    i64 j = 0;
    for (; j + 8 <= len; j += 8) {
        std::uint64_t w;
        std::memcpy(&w, x + j, 8);
        ++h0[w & 0xff];
        ++h1[(w >> 8) & 0xff];
        ++h2[(w >> 16) & 0xff];
        ++h3[(w >> 24) & 0xff];
        ++h0[(w >> 32) & 0xff];
        ++h1[(w >> 40) & 0xff];
        ++h2[(w >> 48) & 0xff];
        ++h3[w >> 56];
    }
    for (; j < len; ++j) ++h0[x[j]];
}

template <class T>
void keys_part(const T* x, const std::uint8_t* mask, i64 b, i64 e, i64 lo, i64 hi, int shift, i64 n_keys,
               i64* out) {
    const i64 range = hi - lo;
    const i64 slots = n_keys + 1;                    // + dummy
    const i64 stride = (slots + 15) / 16 * 16;
    const int nsub = slots <= 8192 ? 4 : (slots <= 32768 ? 2 : 1);
    std::vector<std::uint32_t> h(static_cast<std::size_t>(stride * nsub), 0u);
    std::uint32_t keys[kTile];
    const bool direct_u8 = std::is_same<T, std::uint8_t>::value && !mask && lo == 0 && range == 255 && shift == 0;
    // Flush before any 32-bit counter can overflow.
    constexpr i64 kFlush = i64(1) << 30;
    auto flush = [&]() {
        for (int s = 0; s < nsub; ++s)
            for (i64 k = 0; k < n_keys; ++k) {
                out[k] += h[static_cast<std::size_t>(s * stride + k)];
            }
        std::fill(h.begin(), h.end(), 0u);
    };
    for (i64 start = b; start < e; start += kFlush) {
        const i64 stop = std::min(e, start + kFlush);
        for (i64 t = start; t < stop; t += kTile) {
            const i64 len = std::min(kTile, stop - t);
            if (direct_u8) {
                scatter_u8(reinterpret_cast<const std::uint8_t*>(x + t), len, h.data(), stride);
                continue;
            }
            tile_keys(x + t, mask ? mask + t : nullptr, len, lo, range, shift, static_cast<std::uint32_t>(n_keys), keys);
            if (nsub == 4)
                scatter<4>(keys, len, h.data(), stride);
            else if (nsub == 2)
                scatter<2>(keys, len, h.data(), stride);
            else
                scatter<1>(keys, len, h.data(), stride);
        }
        flush();
    }
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

}  // namespace

template <class T>
void hist_keys(const T* x, const std::uint8_t* mask, i64 n, i64 lo, i64 hi, int shift, i64* keys, int threads) {
    const i64 n_keys = ((hi - lo) >> shift) + 1;
    const i64 parts = n_parts(n, threads);
    std::vector<std::vector<i64>> partial(static_cast<std::size_t>(parts));
    parallel_for(parts, threads, [&](i64 p) {
        auto& h = partial[static_cast<std::size_t>(p)];
        h.assign(static_cast<std::size_t>(n_keys), 0);
        keys_part(x, mask, split_begin(n, parts, p), split_begin(n, parts, p + 1), lo, hi, shift, n_keys, h.data());
    });
    for (auto& h : partial)
        for (i64 k = 0; k < n_keys; ++k) keys[k] += h[static_cast<std::size_t>(k)];
}

template <class T, class B, class D>
void hist_uniform(const T* x, const std::uint8_t* mask, const double* weights, i64 n, T lo_thr, T hi_thr, B lo_b,
                  D denom, const B* edges, i64 nbins, i64* counts, double* wsum, int threads) {
    UniformBin<T, B, D> bin{lo_thr, hi_thr, lo_b, denom, static_cast<D>(nbins), edges, nbins};
    count_bins(x, mask, weights, n, bin, nbins, counts, wsum, threads);
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
