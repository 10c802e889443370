// Median filter driver: padding, algorithm choice, threads (see median.hpp).
#include "enhance/median.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/avx512_compat.hpp"
#include "common/border.hpp"
#include "common/cpu.hpp"
#include "common/large_buffer.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "enhance/median_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

// Narrowest 2D uint8 window that the column-histogram path takes (below it,
// Huang's per-pixel column updates are cheaper: 2048^2 X-ray, 1 thread, AVX-512,
// same run: k 7: 82 ms against 55-58; k 9: 74 against 88; k 15: 62 against 85;
// k 31: 50 against 161. With byte counts for windows up to 255 pixels the
// column-histogram path takes 52 ms at k 7 against Huang's 49, 46 at k 9 and
// 37 at k 15).
constexpr i64 kColhistMinWidth = 9;

// Source index of padded coordinate i (may be outside [0, n)).
i64 border_index(i64 i, i64 n, MedianBorder border) {
    return medfuse::border_index(i, n, border == MedianBorder::replicate ? Border::replicate : Border::reflect101);
}

template <class T>
void fill_padded(const T* img, const i64* n, const i64* r, MedianBorder border, T* pad, int threads) {
    const i64 pd = n[0] + 2 * r[0], ph = n[1] + 2 * r[1], pw = n[2] + 2 * r[2];
    std::vector<i64> xmap(static_cast<std::size_t>(pw));
    for (i64 x = 0; x < pw; ++x) xmap[static_cast<std::size_t>(x)] = border_index(x - r[2], n[2], border);
    const i64 rows = pd * ph;
    const i64 band = std::max<i64>(1, (1 << 16) / std::max<i64>(pw, 1));
    parallel_for((rows + band - 1) / band, threads, [&](i64 t) {
        for (i64 row = t * band; row < std::min(rows, (t + 1) * band); ++row) {
            const i64 z = border_index(row / ph - r[0], n[0], border);
            const i64 y = border_index(row % ph - r[1], n[1], border);
            const T* src = img + (z * n[1] + y) * n[2];
            T* dst = pad + row * pw;
            for (i64 x = 0; x < r[2]; ++x) dst[x] = src[xmap[static_cast<std::size_t>(x)]];
            std::memcpy(dst + r[2], src, static_cast<std::size_t>(n[2]) * sizeof(T));
            for (i64 x = r[2] + n[2]; x < pw; ++x) dst[x] = src[xmap[static_cast<std::size_t>(x)]];
        }
    });
}

// Order-preserving 16-bit key of a value (int16: flip the sign bit).
template <class T> inline std::uint32_t key_of(T v) {
    if constexpr (std::is_same<T, std::int16_t>::value)
        return static_cast<std::uint32_t>(static_cast<std::uint16_t>(v) ^ 0x8000u);
    else
        return static_cast<std::uint32_t>(v);
}
template <class T> inline T value_of(std::uint32_t k) {
    if constexpr (std::is_same<T, std::int16_t>::value)
        return static_cast<T>(static_cast<std::uint16_t>(k ^ 0x8000u));
    else
        return static_cast<T>(k);
}

// Sliding two-level histogram (Huang) along x for rows [r0, r1) of the
// (d * h) output rows. FB fine bits per coarse bin.
template <class T, int BITS, int FB>
void median_hist_rows(const T* pad, const i64* n, const i64* k, i64 r0, i64 r1, T* out) {
    const i64 ph = n[1] + k[1] - 1, pw = n[2] + k[2] - 1;
    const std::uint32_t rank = static_cast<std::uint32_t>(k[0] * k[1] * k[2] / 2);
    std::vector<std::uint32_t> fine(std::size_t(1) << BITS, 0);
    std::vector<std::uint32_t> coarse(std::size_t(1) << (BITS - FB), 0);
    const i64 ncol = k[0] * k[1];
    std::vector<i64> col_ofs(static_cast<std::size_t>(ncol));
    for (i64 dz = 0; dz < k[0]; ++dz)
        for (i64 dy = 0; dy < k[1]; ++dy) col_ofs[static_cast<std::size_t>(dz * k[1] + dy)] = (dz * ph + dy) * pw;
    const i64* ofs = col_ofs.data();
    std::uint32_t* fh = fine.data();
    std::uint32_t* ch = coarse.data();
    for (i64 row = r0; row < r1; ++row) {
        const i64 z = row / n[1], y = row % n[1];
        const T* base = pad + (z * ph + y) * pw;
        auto add_col = [&](i64 x) {
            for (i64 c = 0; c < ncol; ++c) {
                const std::uint32_t key = key_of<T>(base[ofs[c] + x]);
                ++fh[key];
                ++ch[key >> FB];
            }
        };
        auto remove_col = [&](i64 x) {
            for (i64 c = 0; c < ncol; ++c) {
                const std::uint32_t key = key_of<T>(base[ofs[c] + x]);
                --fh[key];
                --ch[key >> FB];
            }
        };
        for (i64 x = 0; x < k[2]; ++x) add_col(x);
        T* o = out + row * n[2];
        if constexpr (BITS == 8) {
            // 8-bit: track the median m and below = #values < m as the window
            // slides (Huang); m moves little between neighbours.
            std::uint32_t m = 0, below = 0;
            for (i64 x = 0; x < n[2]; ++x) {
                while (below > rank) below -= fh[--m];
                while (below + fh[m] <= rank) below += fh[m++];
                o[x] = value_of<T>(m);
                if (x + 1 < n[2]) {
                    for (i64 c = 0; c < ncol; ++c) {
                        const std::uint32_t kr = key_of<T>(base[ofs[c] + x]);
                        --fh[kr];
                        below -= kr < m;
                        const std::uint32_t ka = key_of<T>(base[ofs[c] + x + k[2]]);
                        ++fh[ka];
                        below += ka < m;
                    }
                }
            }
            for (i64 x = n[2] - 1; x < n[2] - 1 + k[2]; ++x)
                for (i64 c = 0; c < ncol; ++c) --fh[key_of<T>(base[ofs[c] + x])];
            continue;
        }
        for (i64 x = 0; x < n[2]; ++x) {
            std::uint32_t acc = 0, c = 0;
            while (acc + ch[c] <= rank) acc += ch[c++];
            std::uint32_t f = c << FB;
            while (acc + fh[f] <= rank) acc += fh[f++];
            o[x] = value_of<T>(f);
            if (x + 1 < n[2]) {
                remove_col(x);
                add_col(x + k[2]);
            }
        }
        for (i64 x = n[2] - 1; x < n[2] - 1 + k[2]; ++x) remove_col(x);
    }
}

// Gather the window and select the rank-n/2 element (float32, small 16-bit windows).
template <class T>
void median_select_rows(const T* pad, const i64* n, const i64* k, i64 r0, i64 r1, T* out) {
    const i64 ph = n[1] + k[1] - 1, pw = n[2] + k[2] - 1;
    const i64 cnt = k[0] * k[1] * k[2];
    std::vector<i64> ofs;
    ofs.reserve(static_cast<std::size_t>(cnt));
    for (i64 dz = 0; dz < k[0]; ++dz)
        for (i64 dy = 0; dy < k[1]; ++dy)
            for (i64 dx = 0; dx < k[2]; ++dx) ofs.push_back((dz * ph + dy) * pw + dx);
    std::vector<T> buf(static_cast<std::size_t>(cnt));
    const auto mid = buf.begin() + cnt / 2;
    for (i64 row = r0; row < r1; ++row) {
        const i64 z = row / n[1], y = row % n[1];
        const T* base = pad + (z * ph + y) * pw;
        T* o = out + row * n[2];
        for (i64 x = 0; x < n[2]; ++x) {
            const T* b = base + x;
            for (i64 i = 0; i < cnt; ++i) buf[static_cast<std::size_t>(i)] = b[ofs[static_cast<std::size_t>(i)]];
            std::nth_element(buf.begin(), mid, buf.end());
            o[x] = *mid;
        }
    }
}

#if defined(MEDFUSE_HAVE_AVX512)
#define MEDFUSE_ROW_DISPATCH(type, fn)                                                              \
    void median_row_isa(Isa isa, const type* const* rows, i64 w, int k, const i64* lmap,           \
                        const i64* rmap, type* out, type* scratch) {                                \
        if (isa == Isa::avx512) return avx512::fn(rows, w, k, lmap, rmap, out, scratch);            \
        if (isa == Isa::avx2) return avx2::fn(rows, w, k, lmap, rmap, out, scratch);                \
        baseline::fn(rows, w, k, lmap, rmap, out, scratch);                                         \
    }
#elif defined(MEDFUSE_HAVE_AVX2)
#define MEDFUSE_ROW_DISPATCH(type, fn)                                                              \
    void median_row_isa(Isa isa, const type* const* rows, i64 w, int k, const i64* lmap,           \
                        const i64* rmap, type* out, type* scratch) {                                \
        if (isa != Isa::baseline) return avx2::fn(rows, w, k, lmap, rmap, out, scratch);            \
        baseline::fn(rows, w, k, lmap, rmap, out, scratch);                                         \
    }
#else
#define MEDFUSE_ROW_DISPATCH(type, fn)                                                              \
    void median_row_isa(Isa, const type* const* rows, i64 w, int k, const i64* lmap,               \
                        const i64* rmap, type* out, type* scratch) {                                \
        baseline::fn(rows, w, k, lmap, rmap, out, scratch);                                         \
    }
#endif
MEDFUSE_ROW_DISPATCH(std::uint8_t, median_row_u8)
MEDFUSE_ROW_DISPATCH(std::uint16_t, median_row_u16)
MEDFUSE_ROW_DISPATCH(std::int16_t, median_row_i16)
MEDFUSE_ROW_DISPATCH(float, median_row_f32)
#undef MEDFUSE_ROW_DISPATCH

}  // namespace

template <class T>
void median_filter(const T* img, int ndim, const std::int64_t* shape, const std::int64_t* size,
                   MedianBorder border, T* out, int threads) {
    if (ndim != 2 && ndim != 3) throw std::invalid_argument("median: ndim must be 2 or 3");
    i64 n[3] = {1, 1, 1}, k[3] = {1, 1, 1}, r[3] = {0, 0, 0};
    for (int a = 0; a < ndim; ++a) {
        n[a + 3 - ndim] = shape[a];
        k[a + 3 - ndim] = size[a];
    }
    for (int a = 0; a < 3; ++a) {
        if (n[a] < 1) throw std::invalid_argument("median: empty image");
        if (k[a] < 1 || k[a] % 2 == 0) throw std::invalid_argument("median: size must be odd and >= 1");
        r[a] = k[a] / 2;
    }
    const i64 rows = n[0] * n[1];
    const i64 cnt = k[0] * k[1] * k[2];
    // Bands of rows sized by the problem (never by the thread count).
    const i64 band = std::max<i64>(1, (i64(1) << 15) / std::max<i64>(1, n[2] * std::min<i64>(cnt, 64) / 8));
    const i64 n_tasks = (rows + band - 1) / band;

    if (n[0] == 1 && k[0] == 1 && k[1] == k[2] && (k[1] == 3 || k[1] == 5)) {
        // Network path: row pointers into the image (no padded copy).
        const Isa isa = active_isa();
        const int kk = static_cast<int>(k[1]);
        const i64 rr = r[1];
        i64 lmap[2] = {0, 0}, rmap[2] = {0, 0};
        for (i64 t = 0; t < rr; ++t) {
            lmap[t] = border_index(t - rr, n[2], border);
            rmap[t] = border_index(n[2] + t, n[2], border);
        }
        // Bands of >= 2^16 pixels (a few rows of scratch per band): 512x512
        // splits in 4, 2048x2048 in 64.
        const i64 nband = std::max<i64>(band, (i64(1) << 16) / n[2]);
        parallel_for((rows + nband - 1) / nband, threads, [&](i64 t) {
            const i64 y0 = t * nband, y1 = std::min(rows, y0 + nband);
            std::vector<T> scratch(static_cast<std::size_t>(median_row_scratch(n[2])));
            const T* rp[5];
            for (i64 y = y0; y < y1; ++y) {
                for (int i = 0; i < kk; ++i) rp[i] = img + border_index(y + i - rr, n[1], border) * n[2];
                median_row_isa(isa, rp, n[2], kk, lmap, rmap, out + y * n[2], scratch.data());
            }
        });
        return;
    }
    const i64 pd = n[0] + 2 * r[0], ph = n[1] + 2 * r[1], pw = n[2] + 2 * r[2];
    std::vector<T> padbuf(static_cast<std::size_t>(pd * ph * pw));
    T* pad = padbuf.data();
    fill_padded(img, n, r, border, pad, threads);

    if constexpr (std::is_same<T, std::uint8_t>::value) {
        if (n[0] == 1 && k[0] == 1 && k[2] >= kColhistMinWidth && k[1] <= 255) {
            // Wide 2D windows: column histograms, in a fixed number of
            // contiguous row groups (each builds its column histograms once).
            const i64 groups = std::min<i64>(rows, 16);
            const Isa isa = active_isa();
            parallel_for(groups, threads, [&](i64 g) {
                const i64 y0 = split_begin(rows, groups, g), y1 = split_begin(rows, groups, g + 1);
                if (y0 >= y1) return;
                const LargeBuffer<std::uint8_t> colhist(static_cast<std::size_t>(pw) * 256);
#if defined(MEDFUSE_HAVE_AVX512)
                if (isa == Isa::avx512)
                    return avx512::median_colhist_u8(pad, n[2], k[1], k[2], y0, y1, out, colhist.get());
#endif
#if defined(MEDFUSE_HAVE_AVX2)
                if (isa != Isa::baseline)
                    return avx2::median_colhist_u8(pad, n[2], k[1], k[2], y0, y1, out, colhist.get());
#endif
                (void)isa;
                baseline::median_colhist_u8(pad, n[2], k[1], k[2], y0, y1, out, colhist.get());
            });
            return;
        }
        parallel_for(n_tasks, threads, [&](i64 t) {
            median_hist_rows<T, 8, 4>(pad, n, k, t * band, std::min(rows, (t + 1) * band), out);
        });
    } else if constexpr (std::is_same<T, float>::value) {
        parallel_for(n_tasks, threads, [&](i64 t) {
            median_select_rows<T>(pad, n, k, t * band, std::min(rows, (t + 1) * band), out);
        });
    } else {
        const bool hist = cnt > 49;
        parallel_for(n_tasks, threads, [&](i64 t) {
            const i64 r0 = t * band, r1 = std::min(rows, (t + 1) * band);
            if (hist)
                median_hist_rows<T, 16, 8>(pad, n, k, r0, r1, out);
            else
                median_select_rows<T>(pad, n, k, r0, r1, out);
        });
    }
}

template void median_filter<std::uint8_t>(const std::uint8_t*, int, const std::int64_t*, const std::int64_t*,
                                          MedianBorder, std::uint8_t*, int);
template void median_filter<std::uint16_t>(const std::uint16_t*, int, const std::int64_t*, const std::int64_t*,
                                           MedianBorder, std::uint16_t*, int);
template void median_filter<std::int16_t>(const std::int16_t*, int, const std::int64_t*, const std::int64_t*,
                                          MedianBorder, std::int16_t*, int);
template void median_filter<float>(const float*, int, const std::int64_t*, const std::int64_t*, MedianBorder,
                                   float*, int);

}  // namespace medfuse
