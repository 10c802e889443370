// Filter orchestration: borders, padded rows, bands and threads, dtype
// conversion and SIMD dispatch. The inner FIR loop lives in
// filter_kernels.hpp (compiled once per ISA).
#include "convolve/filter.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "common/cpu.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "convolve/filter_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

template <class T>
using FirFn = void (*)(const T* const*, const T*, int, bool, T*, i64);

template <class T> FirFn<T> fir_fn();
template <>
FirFn<float> fir_fn<float>() {
#ifdef MEDFUSE_HAVE_AVX512
    if (active_isa() == Isa::avx512) return &avx512::fir_f32;
#endif
#ifdef MEDFUSE_HAVE_AVX2
    if (active_isa() != Isa::baseline) return &avx2::fir_f32;
#endif
    return &baseline::fir_f32;
}
template <>
FirFn<double> fir_fn<double>() {
#ifdef MEDFUSE_HAVE_AVX512
    if (active_isa() == Isa::avx512) return &avx512::fir_f64;
#endif
#ifdef MEDFUSE_HAVE_AVX2
    if (active_isa() != Isa::baseline) return &avx2::fir_f64;
#endif
    return &baseline::fir_f64;
}

// ---- unsharp combine: per-ISA span functions ----------------------------------------
template <class T, class B>
using UnsharpFn = void (*)(const T*, const B*, i64, double, double, T*);

#ifdef MEDFUSE_HAVE_AVX512
#define MEDFUSE_UNSHARP_AVX512(name) \
    if (active_isa() == Isa::avx512) return &avx512::name;
#else
#define MEDFUSE_UNSHARP_AVX512(name)
#endif
#ifdef MEDFUSE_HAVE_AVX2
#define MEDFUSE_UNSHARP_AVX2(name) \
    if (active_isa() != Isa::baseline) return &avx2::name;
#else
#define MEDFUSE_UNSHARP_AVX2(name)
#endif
#define MEDFUSE_UNSHARP_FN(T, B, name)              \
    template <>                                     \
    UnsharpFn<T, B> unsharp_fn<T, B>() {            \
        MEDFUSE_UNSHARP_AVX512(name)                \
        MEDFUSE_UNSHARP_AVX2(name)                  \
        return &baseline::name;                     \
    }
template <class T, class B> UnsharpFn<T, B> unsharp_fn();
MEDFUSE_UNSHARP_FN(std::uint8_t, float, unsharp_span_u8)
MEDFUSE_UNSHARP_FN(std::uint16_t, float, unsharp_span_u16)
MEDFUSE_UNSHARP_FN(std::int16_t, float, unsharp_span_i16)
MEDFUSE_UNSHARP_FN(float, float, unsharp_span_f32)
MEDFUSE_UNSHARP_FN(double, double, unsharp_span_f64)
#undef MEDFUSE_UNSHARP_FN
#undef MEDFUSE_UNSHARP_AVX2
#undef MEDFUSE_UNSHARP_AVX512

// One row of the fused unsharp mask: blurred values of compute type T against
// the input row (the job's input type) into the output row (the same type).
template <class T>
void unsharp_row(const FilterJob& job, i64 offset, const T* blurred, i64 n) {
    const auto go = [&](auto tag) {
        using P = decltype(tag);
        if constexpr (std::is_same<P, double>::value == std::is_same<T, double>::value) {
            unsharp_fn<P, T>()(static_cast<const P*>(job.in) + offset, blurred, n, job.amount, job.threshold,
                               static_cast<P*>(job.out) + offset);
        }
    };
    switch (job.in_type) {
        case PixelType::u8: go(std::uint8_t{}); break;
        case PixelType::u16: go(std::uint16_t{}); break;
        case PixelType::i16: go(std::int16_t{}); break;
        case PixelType::f32: go(float{}); break;
        case PixelType::f64: go(double{}); break;
    }
}

// ---- dtype conversion ---------------------------------------------------------
template <class In, class T>
void convert_span(const In* src, T* dst, i64 n) {
    for (i64 i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
}

template <class T>
void load_span(const void* base, PixelType t, i64 offset, T* dst, i64 n) {
    switch (t) {
        case PixelType::u8: convert_span(static_cast<const std::uint8_t*>(base) + offset, dst, n); break;
        case PixelType::u16: convert_span(static_cast<const std::uint16_t*>(base) + offset, dst, n); break;
        case PixelType::i16: convert_span(static_cast<const std::int16_t*>(base) + offset, dst, n); break;
        case PixelType::f32: convert_span(static_cast<const float*>(base) + offset, dst, n); break;
        case PixelType::f64: convert_span(static_cast<const double*>(base) + offset, dst, n); break;
    }
}

template <class T>
T load_one(const void* base, PixelType t, i64 i) {
    T v;
    load_span(base, t, i, &v, 1);
    return v;
}

// Round half to even and saturate (NaN -> 0), as cv2's saturate_cast.
template <class Int, class T>
void store_int(const T* src, Int* dst, i64 n) {
    const T lo = static_cast<T>(std::numeric_limits<Int>::min());
    const T hi = static_cast<T>(std::numeric_limits<Int>::max());
    for (i64 i = 0; i < n; ++i) {
        const T r = std::nearbyint(src[i]);
        const T c = r < lo ? lo : (r > hi ? hi : r);
        dst[i] = c == c ? static_cast<Int>(c) : Int(0);
    }
}

template <class T>
void store_span(const T* src, void* base, PixelType t, i64 offset, i64 n) {
    switch (t) {
        case PixelType::u8: store_int(src, static_cast<std::uint8_t*>(base) + offset, n); break;
        case PixelType::u16: store_int(src, static_cast<std::uint16_t*>(base) + offset, n); break;
        case PixelType::i16: store_int(src, static_cast<std::int16_t*>(base) + offset, n); break;
        case PixelType::f32: convert_span(src, static_cast<float*>(base) + offset, n); break;
        case PixelType::f64: convert_span(src, static_cast<double*>(base) + offset, n); break;
    }
}

template <class T> constexpr PixelType pixel_type_of();
template <> constexpr PixelType pixel_type_of<float>() { return PixelType::f32; }
template <> constexpr PixelType pixel_type_of<double>() { return PixelType::f64; }

// ---- borders -------------------------------------------------------------------
// idx[j] for j in [0, n + k - 1): source of padded sample j (j - anchor), -1 = constant.
std::vector<i64> axis_table(i64 n, i64 k, Border b) {
    const i64 a = k / 2;
    std::vector<i64> idx(static_cast<std::size_t>(n + k - 1));
    for (i64 j = 0; j < n + k - 1; ++j) idx[static_cast<std::size_t>(j)] = border_index(j - a, n, b);
    return idx;
}

// Padded row: dst[j] = row[idx[j]] (value where idx < 0), converted to T.
template <class T>
void load_padded(const void* base, PixelType t, i64 row_off, const std::vector<i64>& idx, i64 W, i64 k,
                 T value, T* dst) {
    const i64 a = k / 2;
    const i64 total = W + k - 1;
    const i64 mid0 = std::min(a, total), mid1 = std::min(a + W, total);
    for (i64 j = 0; j < mid0; ++j) {
        const i64 s = idx[static_cast<std::size_t>(j)];
        dst[j] = s < 0 ? value : load_one<T>(base, t, row_off + s);
    }
    load_span(base, t, row_off, dst + a, W);
    for (i64 j = mid1; j < total; ++j) {
        const i64 s = idx[static_cast<std::size_t>(j)];
        dst[j] = s < 0 ? value : load_one<T>(base, t, row_off + s);
    }
}

// Row stride (elements) for buffers holding several rows that are read
// together: a multiple of 64 bytes plus one cache line, so rows whose width
// is a multiple of 4 KiB do not all fall into the same L1 sets.
template <class T>
i64 padded_stride(i64 n) {
    const i64 line = 64 / static_cast<i64>(sizeof(T));
    return (n + line - 1) / line * line + line;
}

// Bands of rows: independent of the thread count only in cost, never in
// results (every output row is computed the same way in any band).
i64 band_count(i64 rows, i64 width, int threads) {
    const i64 by_size = std::max<i64>(1, rows * width / 16384);
    return std::max<i64>(1, std::min<i64>({static_cast<i64>(threads) * 2, rows, by_size}));
}

// ---- dense correlation ---------------------------------------------------------
struct Tap {
    i64 dz, dy, dx;
};

template <class T>
void correlate_t(const FilterJob& job, const double* kernel, const i64 ks[3]) {
    const i64 D = job.shape[0], H = job.shape[1], W = job.shape[2];
    const i64 KZ = ks[0], KY = ks[1], KX = ks[2];
    std::vector<Tap> taps;
    std::vector<T> coef;
    for (i64 z = 0; z < KZ; ++z)
        for (i64 y = 0; y < KY; ++y)
            for (i64 x = 0; x < KX; ++x) {
                const double c = kernel[(z * KY + y) * KX + x];
                if (c != 0.0) {
                    taps.push_back({z, y, x});
                    coef.push_back(static_cast<T>(c));
                }
            }
    const PixelType tt = pixel_type_of<T>();
    const T value = static_cast<T>(job.value);
    const std::vector<i64> zidx = axis_table(D, KZ, job.border);
    const std::vector<i64> yidx = axis_table(H, KY, job.border);
    const std::vector<i64> xidx = axis_table(W, KX, job.border);
    const i64 Wp = W + KX - 1;
    const i64 bands = band_count(D * H, W * std::max<i64>(1, static_cast<i64>(taps.size())) / 8, job.threads);
    const bool direct = job.out_type == tt;
    const bool same_type = job.in_type == tt;
    const FirFn<T> fir = fir_fn<T>();

    const i64 R = KY;  // ring of padded rows per kernel plane

    parallel_for(bands, job.threads, [&](i64 band) {
        const i64 r0 = split_begin(D * H, bands, band), r1 = split_begin(D * H, bands, band + 1);
        const std::size_t nslots = same_type ? 0 : static_cast<std::size_t>(KZ * R);
        const i64 Ws = padded_stride<T>(Wp);
        std::vector<T> rows(nslots * static_cast<std::size_t>(Ws));
        std::vector<i64> keys(nslots, -3);
        std::vector<T> acc(static_cast<std::size_t>(W));
        std::vector<const T*> ptrs(taps.size()), trow(taps.size());
        std::vector<T> const_row(static_cast<std::size_t>(W), value);
        // Input of the compute type: the interior of each output row reads the
        // image rows in place (no padded copy); the KX - 1 edge columns are
        // summed from the border table.
        auto direct_row = [&](i64 z, i64 y, T* out) {
            const T* img = static_cast<const T*>(job.in);
            for (std::size_t t = 0; t < taps.size(); ++t) {
                const i64 zs = zidx[static_cast<std::size_t>(z + taps[t].dz)];
                const i64 ys = yidx[static_cast<std::size_t>(y + taps[t].dy)];
                trow[t] = (zs < 0 || ys < 0) ? const_row.data() : img + (zs * H + ys) * W;
            }
            const i64 a = KX / 2, xb = W - (KX - 1 - a);
            if (xb > a) {
                for (std::size_t t = 0; t < taps.size(); ++t) ptrs[t] = trow[t] + taps[t].dx;
                fir(ptrs.data(), coef.data(), static_cast<int>(taps.size()), false, out + a, xb - a);
            }
            auto edge = [&](i64 x) {
                T s = T(0);
                for (std::size_t t = 0; t < taps.size(); ++t) {
                    const i64 src = xidx[static_cast<std::size_t>(x + taps[t].dx)];
                    const T v = (src < 0 || trow[t] == const_row.data()) ? value : trow[t][src];
                    s = coef[t] * v + s;
                }
                out[x] = s;
            };
            const i64 left = std::min(a, W), right = std::max(xb, left);
            for (i64 x = 0; x < left; ++x) edge(x);
            for (i64 x = right; x < W; ++x) edge(x);
        };
        // Padded input row for kernel plane dz and virtual row v = y + dy of slice z.
        auto row_for = [&](i64 z, i64 dz, i64 v) -> const T* {
            const std::size_t slot = static_cast<std::size_t>(dz * R + v % R);
            T* row = rows.data() + slot * static_cast<std::size_t>(Ws);
            const i64 zs = zidx[static_cast<std::size_t>(z + dz)];
            const i64 ys = yidx[static_cast<std::size_t>(v)];
            const i64 key = (zs < 0 || ys < 0) ? -2 : zs * H + ys;
            if (keys[slot] != key) {
                if (key == -2)
                    std::fill(row, row + Wp, value);
                else
                    load_padded<T>(job.in, job.in_type, key * W, xidx, W, KX, value, row);
                keys[slot] = key;
            }
            return row;
        };
        for (i64 r = r0; r < r1; ++r) {
            const i64 z = r / H, y = r % H;
            T* dst = direct ? static_cast<T*>(job.out) + r * W : acc.data();
            if (taps.empty()) {
                std::fill(dst, dst + W, T(0));
            } else if (same_type) {
                direct_row(z, y, dst);
            } else {
                for (std::size_t t = 0; t < taps.size(); ++t)
                    ptrs[t] = row_for(z, taps[t].dz, y + taps[t].dy) + taps[t].dx;
                fir(ptrs.data(), coef.data(), static_cast<int>(taps.size()), false, dst, W);
            }
            if (!direct) store_span(acc.data(), job.out, job.out_type, r * W, W);
        }
    });
}

// ---- separable ----------------------------------------------------------------
bool is_identity(const std::vector<double>& t) { return t.size() == 1 && t[0] == 1.0; }

// Non-zero taps of a 1D kernel (zero taps are skipped, as in the dense
// path, so 0 * inf never turns into NaN); `symm` if what is left is odd,
// centred and symmetric (mirrored pairs are then added first).
template <class T>
struct TapPlan {
    std::vector<i64> off;
    std::vector<T> c;
    bool symm = false;
    bool identity = false;
    explicit TapPlan(const std::vector<double>& t) {
        identity = is_identity(t);
        for (std::size_t j = 0; j < t.size(); ++j)
            if (t[j] != 0.0) {
                off.push_back(static_cast<i64>(j));
                c.push_back(static_cast<T>(t[j]));
            }
        const std::size_t n = off.size();
        symm = n % 2 == 1 && n >= 3;
        for (std::size_t j = 0; symm && j < n / 2; ++j)
            symm = t[static_cast<std::size_t>(off[j])] == t[static_cast<std::size_t>(off[n - 1 - j])] &&
                   off[j] + off[n - 1 - j] == static_cast<i64>(t.size()) - 1;
        if (symm) symm = off[n / 2] == static_cast<i64>(t.size() / 2);
    }
    int size() const { return static_cast<int>(off.size()); }
};

// out = sum of plan taps over ptrs (zeros if the kernel is all zeros).
template <class T>
void apply(FirFn<T> fir, const TapPlan<T>& p, const T* const* ptrs, T* out, i64 n) {
    if (p.off.empty())
        std::fill(out, out + n, T(0));
    else
        fir(ptrs, p.c.data(), p.size(), p.symm, out, n);
}

// Where row (z, y) of a (D, H, W) array starts: rows are grouped in chunks of
// `rpc` rows; a chunk holds the same rows of every slice, `cs` elements apart.
// rpc = H, cs = H * W is the plain C order.
struct Layout {
    i64 rpc, cs, D;
    i64 offset(i64 z, i64 y, i64 W) const { return (y / rpc) * (D * cs) + z * cs + (y % rpc) * W; }
};

// x then y pass over slices of `src` (type src_type) into `dst` (type dst_type).
template <class T>
void sep_xy(const FilterJob& job, const void* src, PixelType src_type, void* dst, PixelType dst_type,
            const Layout& lay, const std::vector<double>& ty, const std::vector<double>& tx) {
    const i64 D = job.shape[0], H = job.shape[1], W = job.shape[2];
    const i64 KY = static_cast<i64>(ty.size()), KX = static_cast<i64>(tx.size());
    const TapPlan<T> py_(ty), px(tx);
    const bool idx_ = px.identity, idy = py_.identity;
    const std::vector<i64> yidx = axis_table(H, KY, job.border);
    const std::vector<i64> xidx = axis_table(W, KX, job.border);
    const i64 Wp = W + KX - 1;
    const T value = static_cast<T>(job.value);
    const PixelType tt = pixel_type_of<T>();
    const bool direct = dst_type == tt;
    const FirFn<T> fir = fir_fn<T>();
    // Bands never cross slices: a band is (slice, row range).
    const i64 per_slice = D >= job.threads ? 1 : band_count(H, W, (job.threads + static_cast<int>(D) - 1) / static_cast<int>(D));
    const i64 tasks = D * per_slice;

    parallel_for(tasks, job.threads, [&](i64 task) {
        const i64 z = task / per_slice, b = task % per_slice;
        const i64 y0 = split_begin(H, per_slice, b), y1 = split_begin(H, per_slice, b + 1);
        std::vector<T> padded(static_cast<std::size_t>(Wp));
        const i64 Wr = padded_stride<T>(W);
        std::vector<T> ring(static_cast<std::size_t>(KY * Wr));
        std::vector<T> const_row(static_cast<std::size_t>(W));
        std::vector<T> acc(static_cast<std::size_t>(W));
        std::vector<const T*> ptrs(static_cast<std::size_t>(std::max(KX, KY)));
        bool have_const = false;
        // x-filter input row iy (virtual, may be outside) into ring slot.
        auto x_row = [&](i64 iy, T* out_row) {
            const i64 ys = yidx[static_cast<std::size_t>(iy + KY / 2)];
            if (ys < 0) {
                if (!have_const) {
                    std::fill(padded.begin(), padded.end(), value);
                    for (int j = 0; j < px.size(); ++j)
                        ptrs[static_cast<std::size_t>(j)] = padded.data() + px.off[static_cast<std::size_t>(j)];
                    apply(fir, px, ptrs.data(), const_row.data(), W);
                    have_const = true;
                }
                std::copy(const_row.begin(), const_row.end(), out_row);
                return;
            }
            const i64 off = (z * H + ys) * W;
            if (idx_) {
                load_span(src, src_type, off, out_row, W);
                return;
            }
            load_padded<T>(src, src_type, off, xidx, W, KX, value, padded.data());
            for (int j = 0; j < px.size(); ++j)
                ptrs[static_cast<std::size_t>(j)] = padded.data() + px.off[static_cast<std::size_t>(j)];
            apply(fir, px, ptrs.data(), out_row, W);
        };
        const i64 a = KY / 2;
        // virtual row v = iy + a lives in slot v % KY; output y needs v in [y, y + KY).
        for (i64 v = y0; v < y0 + KY - 1; ++v) x_row(v - a, ring.data() + (v % KY) * Wr);
        for (i64 y = y0; y < y1; ++y) {
            const i64 vn = y + KY - 1;
            x_row(vn - a, ring.data() + (vn % KY) * Wr);
            const i64 off = lay.offset(z, y, W);
            if (idy) {
                if (job.unsharp)
                    unsharp_row<T>(job, off, ring.data() + (y % KY) * Wr, W);
                else
                    store_span(ring.data() + (y % KY) * Wr, dst, dst_type, off, W);
                continue;
            }
            for (int j = 0; j < py_.size(); ++j)
                ptrs[static_cast<std::size_t>(j)] = ring.data() + ((y + py_.off[static_cast<std::size_t>(j)]) % KY) * Wr;
            T* out_row = direct && !job.unsharp ? static_cast<T*>(dst) + off : acc.data();
            apply(fir, py_, ptrs.data(), out_row, W);
            if (job.unsharp)
                unsharp_row<T>(job, off, acc.data(), W);
            else if (!direct)
                store_span(acc.data(), dst, dst_type, off, W);
        }
    });
}

// z pass over a T volume into dst; out-of-range slices hold `fill`.
template <class T>
void sep_z(const FilterJob& job, const T* src, const Layout& lay, void* dst, PixelType dst_type,
           const std::vector<double>& tz, T fill) {
    const i64 D = job.shape[0], H = job.shape[1], W = job.shape[2], P = H * W;
    const i64 KZ = static_cast<i64>(tz.size());
    const TapPlan<T> pz(tz);
    const std::vector<i64> zidx = axis_table(D, KZ, job.border);
    const i64 chunks = (H + lay.rpc - 1) / lay.rpc;
    const PixelType tt = pixel_type_of<T>();
    const bool direct = dst_type == tt;
    const FirFn<T> fir = fir_fn<T>();
    parallel_for(chunks, job.threads, [&](i64 c) {
        const i64 p0 = c * lay.rpc * W, n = std::min(lay.rpc * W, P - p0);
        const T* base = src + c * D * lay.cs;
        std::vector<T> const_chunk(static_cast<std::size_t>(n), fill);
        std::vector<T> acc(static_cast<std::size_t>(n));
        std::vector<const T*> ptrs(static_cast<std::size_t>(KZ));
        for (i64 z = 0; z < D; ++z) {
            for (int j = 0; j < pz.size(); ++j) {
                const i64 zs = zidx[static_cast<std::size_t>(z + pz.off[static_cast<std::size_t>(j)])];
                ptrs[static_cast<std::size_t>(j)] = zs < 0 ? const_chunk.data() : base + zs * lay.cs;
            }
            const i64 off = z * P + p0;
            T* out = direct ? static_cast<T*>(dst) + off : acc.data();
            apply(fir, pz, ptrs.data(), out, n);
            if (!direct) store_span(acc.data(), dst, dst_type, off, n);
        }
    });
}

// z pass in place on a T volume (C order): each task copies a column block
// (all slices of ~4 KiB of the plane) into a contiguous scratch, then filters
// it back into the volume. No full-size intermediate, so no extra page faults.
template <class T>
void sep_z_inplace(const FilterJob& job, T* vol, const std::vector<double>& tz, T fill) {
    const i64 D = job.shape[0], P = job.shape[1] * job.shape[2];
    const i64 KZ = static_cast<i64>(tz.size());
    const TapPlan<T> pz(tz);
    const std::vector<i64> zidx = axis_table(D, KZ, job.border);
    const i64 chunk = 1024;
    const i64 ns = chunk + 64 / static_cast<i64>(sizeof(T));  // padded: slices do not share L1 sets
    const i64 chunks = (P + chunk - 1) / chunk;
    const FirFn<T> fir = fir_fn<T>();
    parallel_for(chunks, job.threads, [&](i64 c) {
        const i64 p0 = c * chunk, n = std::min(chunk, P - p0);
        std::vector<T> scratch(static_cast<std::size_t>(D * ns));
        std::vector<T> const_chunk(static_cast<std::size_t>(n), fill);
        std::vector<const T*> ptrs(static_cast<std::size_t>(std::max<i64>(KZ, 1)));
        for (i64 z = 0; z < D; ++z) std::memcpy(scratch.data() + z * ns, vol + z * P + p0, static_cast<std::size_t>(n) * sizeof(T));
        for (i64 z = 0; z < D; ++z) {
            for (int j = 0; j < pz.size(); ++j) {
                const i64 zs = zidx[static_cast<std::size_t>(z + pz.off[static_cast<std::size_t>(j)])];
                ptrs[static_cast<std::size_t>(j)] = zs < 0 ? const_chunk.data() : scratch.data() + zs * ns;
            }
            apply(fir, pz, ptrs.data(), vol + z * P + p0, n);
        }
    });
}

template <class T>
void sep_filter_t(const FilterJob& job, const std::vector<double> taps[3]) {
    if (is_identity(taps[0])) {
        const Layout plain{job.shape[1], job.shape[1] * job.shape[2], job.shape[0]};
        sep_xy<T>(job, job.in, job.in_type, job.out, job.out_type, plain, taps[1], taps[2]);
        return;
    }
    double sy = 0.0, sx = 0.0;
    for (double t : taps[1]) sy += t;
    for (double t : taps[2]) sx += t;
    const T fill = static_cast<T>(job.value * sy * sx);
    if (job.out_type == pixel_type_of<T>()) {
        const Layout plain{job.shape[1], job.shape[1] * job.shape[2], job.shape[0]};
        sep_xy<T>(job, job.in, job.in_type, job.out, job.out_type, plain, taps[1], taps[2]);
        sep_z_inplace<T>(job, static_cast<T*>(job.out), taps[0], fill);
        return;
    }
    // Other output types: the x-y pass writes a chunk-major intermediate: chunks of rows (~8 KiB)
    // with the same rows of every slice stored next to each other, so the z
    // pass reads KZ nearby streams; the chunk stride is padded by one cache
    // line so that those streams do not share L1 sets.
    const i64 D = job.shape[0], H = job.shape[1], W = job.shape[2];
    const i64 rpc = std::max<i64>(1, std::min<i64>(H, 2048 / std::max<i64>(W, 1)));
    const i64 cs = rpc * W + 64 / static_cast<i64>(sizeof(T));
    const Layout lay{rpc, cs, D};
    const i64 chunks = (H + rpc - 1) / rpc;
    const PixelType tt = pixel_type_of<T>();
    std::unique_ptr<T[]> tmp(new T[static_cast<std::size_t>(chunks * D * cs)]);
    sep_xy<T>(job, job.in, job.in_type, tmp.get(), tt, lay, taps[1], taps[2]);
    sep_z<T>(job, tmp.get(), lay, job.out, job.out_type, taps[0], fill);
}

}  // namespace

void correlate(const FilterJob& job, const double* kernel, const i64 kshape[3]) {
    if (job.f64)
        correlate_t<double>(job, kernel, kshape);
    else
        correlate_t<float>(job, kernel, kshape);
}

void sep_filter(const FilterJob& job, const std::vector<double> taps[3]) {
    for (int a = 0; a < 3; ++a)
        if (taps[a].empty()) throw std::invalid_argument("kernels must not be empty");
    if (job.unsharp && (job.shape[0] != 1 || !is_identity(taps[0]) || job.out_type != job.in_type ||
                        job.f64 != (job.in_type == PixelType::f64)))
        throw std::invalid_argument("the fused unsharp mask takes a 2D image, output of its type");
    if (job.f64)
        sep_filter_t<double>(job, taps);
    else
        sep_filter_t<float>(job, taps);
}

// ---- unsharp-mask combine -----------------------------------------------------
template <class T, class B>
void unsharp_combine(const T* x, const B* blurred, std::int64_t n, double amount, double threshold, T* out,
                     int threads) {
    constexpr std::int64_t kChunk = std::int64_t(1) << 16;
    const std::int64_t parts = (n + kChunk - 1) / kChunk;
    const UnsharpFn<T, B> fn = unsharp_fn<T, B>();
    parallel_for(parts, threads, [&](std::int64_t p) {
        const std::int64_t b = p * kChunk, e = std::min(n, b + kChunk);
        fn(x + b, blurred + b, e - b, amount, threshold, out + b);
    });
}

#define MEDFUSE_UNSHARP(T, B) \
    template void unsharp_combine<T, B>(const T*, const B*, std::int64_t, double, double, T*, int);
MEDFUSE_UNSHARP(std::uint8_t, float)
MEDFUSE_UNSHARP(std::uint16_t, float)
MEDFUSE_UNSHARP(std::int16_t, float)
MEDFUSE_UNSHARP(float, float)
MEDFUSE_UNSHARP(double, double)
#undef MEDFUSE_UNSHARP

}  // namespace medfuse
