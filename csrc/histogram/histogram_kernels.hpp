// Integer-key histogram inner loops, compiled once per instruction set.
//
// Included *inside* a namespace by histogram.cpp (baseline) and
// histogram_avx2.cpp (built with -mavx2), so each ISA gets its own copy.
// Keys of a tile are computed in a branch-free loop the auto-vectorizer
// turns into 16-bit (or 32-bit) lanes, then counted into interleaved
// sub-histograms so consecutive increments rarely hit the same counter
// (no store-to-load dependency chain through one counter).

#ifndef MEDFUSE_RESTRICT
#define MEDFUSE_RESTRICT __restrict__
#endif

namespace hk {

using i64 = std::int64_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;

constexpr i64 kTile = 512;

// 8/16-bit data, fewer than 65536 keys: 16-bit lanes.
template <class T>
inline void keys16(const T* MEDFUSE_RESTRICT x, const std::uint8_t* MEDFUSE_RESTRICT m, i64 len, u16 lo, u16 range,
                   int shift, u16 dummy, u16* MEDFUSE_RESTRICT keys) {
    if (m) {
        for (i64 j = 0; j < len; ++j) {
            const u16 d = static_cast<u16>(static_cast<u16>(x[j]) - lo);
            const u16 k = static_cast<u16>(d >> shift);
            keys[j] = (d <= range && m[j]) ? k : dummy;
        }
    } else {
        for (i64 j = 0; j < len; ++j) {
            const u16 d = static_cast<u16>(static_cast<u16>(x[j]) - lo);
            const u16 k = static_cast<u16>(d >> shift);
            keys[j] = d <= range ? k : dummy;
        }
    }
}

// Any integer data: 32-bit keys (64-bit differences for int32).
template <class T>
inline void keys32(const T* MEDFUSE_RESTRICT x, const std::uint8_t* MEDFUSE_RESTRICT m, i64 len, i64 lo, i64 range,
                   int shift, u32 dummy, u32* MEDFUSE_RESTRICT keys) {
    if constexpr (sizeof(T) <= 2) {
        const std::int32_t lo32 = static_cast<std::int32_t>(lo);
        const u32 r32 = static_cast<u32>(range);
        for (i64 j = 0; j < len; ++j) {
            const u32 d = static_cast<u32>(static_cast<std::int32_t>(x[j]) - lo32);
            const bool ok = d <= r32 && (!m || m[j]);
            keys[j] = ok ? (d >> shift) : dummy;
        }
    } else {
        const std::uint64_t r64 = static_cast<std::uint64_t>(range);
        for (i64 j = 0; j < len; ++j) {
            const std::uint64_t d = static_cast<std::uint64_t>(static_cast<i64>(x[j]) - lo);
            const bool ok = d <= r64 && (!m || m[j]);
            keys[j] = ok ? static_cast<u32>(d >> shift) : dummy;
        }
    }
}

template <int NSUB, class K, class C>
inline void scatter(const K* MEDFUSE_RESTRICT keys, i64 len, C* MEDFUSE_RESTRICT h, i64 stride) {
    i64 j = 0;
    if constexpr (NSUB == 8) {
        for (; j + 8 <= len; j += 8) {
            const K k0 = keys[j], k1 = keys[j + 1], k2 = keys[j + 2], k3 = keys[j + 3];
            const K k4 = keys[j + 4], k5 = keys[j + 5], k6 = keys[j + 6], k7 = keys[j + 7];
            ++h[k0];
            ++h[stride + k1];
            ++h[2 * stride + k2];
            ++h[3 * stride + k3];
            ++h[4 * stride + k4];
            ++h[5 * stride + k5];
            ++h[6 * stride + k6];
            ++h[7 * stride + k7];
        }
    } else if constexpr (NSUB == 4) {
        C* MEDFUSE_RESTRICT h0 = h;
        C* MEDFUSE_RESTRICT h1 = h + stride;
        C* MEDFUSE_RESTRICT h2 = h + 2 * stride;
        C* MEDFUSE_RESTRICT h3 = h + 3 * stride;
        for (; j + 8 <= len; j += 8) {
            const K k0 = keys[j], k1 = keys[j + 1], k2 = keys[j + 2], k3 = keys[j + 3];
            const K k4 = keys[j + 4], k5 = keys[j + 5], k6 = keys[j + 6], k7 = keys[j + 7];
            ++h0[k0];
            ++h1[k1];
            ++h2[k2];
            ++h3[k3];
            ++h0[k4];
            ++h1[k5];
            ++h2[k6];
            ++h3[k7];
        }
    } else if constexpr (NSUB == 2) {
        C* MEDFUSE_RESTRICT h1 = h + stride;
        for (; j + 2 <= len; j += 2) {
            const K k0 = keys[j], k1 = keys[j + 1];
            ++h[k0];
            ++h1[k1];
        }
    }
    for (; j < len; ++j) ++h[keys[j]];
}

// uint8 with every value a key: count straight from the data.
inline void scatter_u8(const std::uint8_t* MEDFUSE_RESTRICT x, i64 len, u32* MEDFUSE_RESTRICT h, i64 stride) {
    u32* MEDFUSE_RESTRICT h0 = h;
    u32* MEDFUSE_RESTRICT h1 = h + stride;
    u32* MEDFUSE_RESTRICT h2 = h + 2 * stride;
    u32* MEDFUSE_RESTRICT h3 = h + 3 * stride;
    i64 j = 0;
    for (; j + 8 <= len; j += 8) {
        std::uint64_t w;
        __builtin_memcpy(&w, x + j, 8);
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

template <class K, class C>
inline void scatter_n(const K* keys, i64 len, C* h, i64 stride, int nsub) {
    if (nsub == 8)
        scatter<8>(keys, len, h, stride);
    else if (nsub == 4)
        scatter<4>(keys, len, h, stride);
    else if (nsub == 2)
        scatter<2>(keys, len, h, stride);
    else
        scatter<1>(keys, len, h, stride);
}

// Adds the nsub sub-histograms to out[0, n_keys) and zeroes them.
template <class C>
inline void flush(C* h, i64 stride, int nsub, i64 n_keys, i64* out) {
    for (int sub = 0; sub < nsub; ++sub) {
        C* hs = h + sub * stride;
        for (i64 k = 0; k < n_keys; ++k) {
            out[k] += hs[k];
            hs[k] = 0;
        }
    }
}

// Counts keys of x[b, e) into out[0, n_keys) (added to what is there).
// Counters: nsub sub-histograms of `stride` >= n_keys + 1 slots (slot n_keys
// takes the values not counted). 8/16-bit data with fewer than 65535 keys count into 16-bit counters (half
// the cache footprint: 4 x 4096 keys of a 12-bit image fit a 32 KB L1),
// flushed before any can overflow: scatter<N> deals keys round robin (only
// a tile's last len % 8 go to sub 0), so in a window of nsub * 126 tiles no
// sub-histogram gets more than 126 * kTile + 7 = 64519 increments.
template <class T>
void keys_part(const T* x, const std::uint8_t* mask, i64 b, i64 e, i64 lo, i64 hi, int shift, i64 n_keys,
               i64* out, i64 stride, int nsub) {
    const i64 range = hi - lo;
    const bool direct_u8 = sizeof(T) == 1 && static_cast<T>(-1) > 0 && !mask && lo == 0 && range == 255 && shift == 0;
    const bool narrow = sizeof(T) <= 2 && n_keys < 65535;
    if (narrow && !direct_u8) {
        std::vector<u16> h16(static_cast<std::size_t>(nsub * stride), 0);
        alignas(64) u16 k16[kTile];
        const i64 window = nsub * 126 * kTile;
        for (i64 start = b; start < e; start += window) {
            const i64 stop = e - start < window ? e : start + window;
            for (i64 t = start; t < stop; t += kTile) {
                const i64 len = stop - t < kTile ? stop - t : kTile;
                keys16(x + t, mask ? mask + t : nullptr, len, static_cast<u16>(lo), static_cast<u16>(range), shift,
                       static_cast<u16>(n_keys), k16);
                scatter_n(k16, len, h16.data(), stride, nsub);
            }
            flush(h16.data(), stride, nsub, n_keys, out);
        }
        return;
    }
    std::vector<u32> counters(static_cast<std::size_t>(nsub * stride), 0);
    u32* h = counters.data();
    alignas(64) u32 k32[kTile];
    constexpr i64 kFlush = i64(1) << 30;  // before any 32-bit counter can overflow
    for (i64 start = b; start < e; start += kFlush) {
        const i64 stop = e - start < kFlush ? e : start + kFlush;
        for (i64 t = start; t < stop; t += kTile) {
            const i64 len = stop - t < kTile ? stop - t : kTile;
            if (direct_u8) {
                scatter_u8(reinterpret_cast<const std::uint8_t*>(x + t), len, h, stride);
            } else {
                keys32(x + t, mask ? mask + t : nullptr, len, lo, range, shift, static_cast<u32>(n_keys), k32);
                scatter_n(k32, len, h, stride, nsub);
            }
        }
        flush(h, stride, nsub, n_keys, out);
    }
}

// numpy.histogram's uniform-bin arithmetic (see UniformBin in histogram.cpp),
// branch-free over a tile so it vectorises: the bin from (x - lo) / denom * n,
// clamped to [0, n - 1], then moved by one where the edges disagree (the
// same comparisons as numpy). Values outside [lo_thr, hi_thr] (NaN too) or
// outside the mask get the dummy key n. Requires n < 2^31.
// One value's key (selected: inside the mask, or no mask). Also the scalar
// tail of the per-ISA specialisations of uniform_keys.
template <class T, class B, class D>
inline u32 uniform_key(T v, bool selected, T lo_thr, T hi_thr, B lo_b, D denom, const B* MEDFUSE_RESTRICT edges,
                       std::int32_t nbins) {
    const D dn = static_cast<D>(nbins);
    const D top = static_cast<D>(nbins - 1);
    const bool ok = (v >= lo_thr) & (v <= hi_thr) & selected;
    const B xb = ok ? static_cast<B>(v) : lo_b;
    const D f = static_cast<D>(static_cast<D>(static_cast<B>(xb - lo_b)) / denom) * dn;
    D fc = f < D(0) ? D(0) : f;
    fc = fc > top ? top : fc;
    std::int32_t idx = static_cast<std::int32_t>(fc);
    const B e0 = edges[idx];
    const B e1 = edges[idx + 1];
    const bool below = xb < e0;
    idx = idx - static_cast<std::int32_t>(below & (idx > 0)) +
          static_cast<std::int32_t>(!below & (idx != nbins - 1) & (xb >= e1));
    return ok ? static_cast<u32>(idx) : static_cast<u32>(nbins);
}

template <class T, class B, class D>
inline void uniform_keys(const T* MEDFUSE_RESTRICT x, const std::uint8_t* MEDFUSE_RESTRICT m, i64 len, T lo_thr,
                         T hi_thr, B lo_b, D denom, const B* MEDFUSE_RESTRICT edges, std::int32_t nbins,
                         u32* MEDFUSE_RESTRICT keys) {
    for (i64 j = 0; j < len; ++j)
        keys[j] = uniform_key<T, B, D>(x[j], !m || m[j] != 0, lo_thr, hi_thr, lo_b, denom, edges, nbins);
}

// Counts the uniform bins of x[b, e) into out[0, nbins) (added), like keys_part.
template <class T, class B, class D>
void uniform_part(const T* x, const std::uint8_t* mask, i64 b, i64 e, T lo_thr, T hi_thr, B lo_b, D denom,
                  const B* edges, i64 nbins, i64* out, u32* h, i64 stride, int nsub) {
    for (i64 s = 0; s < nsub * stride; ++s) h[s] = 0;
    alignas(64) u32 k32[kTile];
    constexpr i64 kFlush = i64(1) << 30;  // before any 32-bit counter can overflow
    const std::int32_t nb = static_cast<std::int32_t>(nbins);
    for (i64 start = b; start < e; start += kFlush) {
        const i64 stop = e - start < kFlush ? e : start + kFlush;
        for (i64 t = start; t < stop; t += kTile) {
            const i64 len = stop - t < kTile ? stop - t : kTile;
            uniform_keys<T, B, D>(x + t, mask ? mask + t : nullptr, len, lo_thr, hi_thr, lo_b, denom, edges, nb, k32);
            if (nsub == 4)
                scatter<4>(k32, len, h, stride);
            else if (nsub == 2)
                scatter<2>(k32, len, h, stride);
            else
                scatter<1>(k32, len, h, stride);
        }
        for (int sub = 0; sub < nsub; ++sub) {
            u32* hs = h + sub * stride;
            for (i64 k = 0; k < nbins; ++k) {
                out[k] += hs[k];
                hs[k] = 0;
            }
        }
    }
}

}  // namespace hk


// The entry points declared in histogram_internal.hpp, defined in the ISA
// namespace this file was included in: `MEDFUSE_HIST_KEY_TYPES(MEDFUSE_HIST_KEYS_PART)`
// and `MEDFUSE_HIST_UNIFORM_TYPES(MEDFUSE_HIST_UNIFORM_PART)` after any
// per-ISA specialization of the hk templates.
#ifndef MEDFUSE_HIST_KEYS_PART
#define MEDFUSE_HIST_KEYS_PART(T)                                                                               \
    void keys_part(const T* x, const std::uint8_t* m, hk::i64 b, hk::i64 e, hk::i64 lo, hk::i64 hi, int s,    \
                   hk::i64 nk, hk::i64* out, hk::i64 stride, int nsub) {                                      \
        hk::keys_part<T>(x, m, b, e, lo, hi, s, nk, out, stride, nsub);                                        \
    }
#define MEDFUSE_HIST_UNIFORM_PART(T, B, D)                                                                      \
    void uniform_part(const T* x, const std::uint8_t* m, hk::i64 b, hk::i64 e, T lo_thr, T hi_thr, B lo_b,    \
                      D denom, const B* edges, hk::i64 nbins, hk::i64* out, std::uint32_t* h, hk::i64 stride, \
                      int nsub) {                                                                              \
        hk::uniform_part<T, B, D>(x, m, b, e, lo_thr, hi_thr, lo_b, denom, edges, nbins, out, h, stride, nsub); \
    }
#endif
