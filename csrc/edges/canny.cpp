// Canny orchestration: SIMD dispatch, bands and threads, optional Gaussian
// pre-smoothing, hysteresis; and the Sobel operator. Inner loops live in
// canny_kernels.hpp (compiled once per ISA).
#include "edges/canny.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/border.hpp"
#include "common/cpu.hpp"
#include "common/large_buffer.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "edges/canny_kernels.hpp"
#include "edges/sobel_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

// ---- scratch ---------------------------------------------------------------
class Scratch {
   public:
    Scratch(int count, i64 elems) : ptrs_(static_cast<std::size_t>(count)) {
        const i64 stride = ((elems * 8 + 63) / 64) * 64;  // bytes, 64-byte multiple
        mem_.reset(new unsigned char[static_cast<std::size_t>(stride * count + 64)]);
        auto base = reinterpret_cast<std::uintptr_t>(mem_.get());
        base = (base + 63) & ~static_cast<std::uintptr_t>(63);
        for (int i = 0; i < count; ++i)
            ptrs_[static_cast<std::size_t>(i)] = reinterpret_cast<void*>(base + static_cast<std::uintptr_t>(stride * i));
    }
    void* const* data() const { return ptrs_.data(); }

   private:
    std::unique_ptr<unsigned char[]> mem_;
    std::vector<void*> ptrs_;
};

using BandFn = void (*)(const CannyJob&, i64, i64, void* const*);

BandFn band2d_fn() {
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return &avx512::canny2d_band;
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return &avx2::canny2d_band;
#endif
        default:
            return &baseline::canny2d_band;
    }
}

BandFn slab3d_fn() {
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return &avx512::canny3d_slab;
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return &avx2::canny3d_slab;
#endif
        default:
            return &baseline::canny3d_slab;
    }
}

// ---- non-finite check -------------------------------------------------------
template <class T>
i64 count_nonfinite(const T* x, i64 n, int threads) {
    const i64 parts = std::max<i64>(1, std::min<i64>(threads, n / (1 << 20)));
    std::vector<i64> counts(static_cast<std::size_t>(parts), 0);
    parallel_for(parts, threads, [&](i64 p) {
        const i64 b = split_begin(n, parts, p), e = split_begin(n, parts, p + 1);
        i64 c = 0;
        for (i64 i = b; i < e; ++i) c += static_cast<i64>((x[i] - x[i]) != T(0));  // NaN for NaN/inf
        counts[static_cast<std::size_t>(p)] = c;
    });
    i64 total = 0;
    for (i64 c : counts) total += c;
    return total;
}

// One pass over a float image: whether any NaN or inf occurs and, when none
// does, the largest |x|. The AVX2 / AVX-512 paths take the largest |x| bit
// pattern (sobel_kernels.hpp: an integer max at the path's width, NaN and inf
// above every finite value). Otherwise SSE2 (every x86-64) keeps running
// maxima and sums of (x - x), which is NaN exactly for NaN and inf input, in
// kScanAcc independent pairs of vectors (16 floats or 8 doubles a step; one
// pair was a single dependency chain, ~50 us per MB on Zen 4). Parts are
// merged in a fixed order; max and "any" do not depend on the order.
struct FloatScan {
    double max_abs = 0.0;    // the largest |x| (when nonfinite is false)
    bool nonfinite = false;  // a NaN or an inf was seen
};

#if defined(__SSE2__)
constexpr int kScanAcc = 4;

inline void scan_lanes(const float* x, i64& i, i64 e, double& mm, bool& bad) {
    const __m128 sign = _mm_set1_ps(-0.0f);
    __m128 m[kScanAcc], d[kScanAcc];
    for (int k = 0; k < kScanAcc; ++k) m[k] = d[k] = _mm_setzero_ps();
    for (; i + 4 * kScanAcc <= e; i += 4 * kScanAcc)
        for (int k = 0; k < kScanAcc; ++k) {
            const __m128 v = _mm_loadu_ps(x + i + 4 * k);
            m[k] = _mm_max_ps(_mm_andnot_ps(sign, v), m[k]);  // returns m[k] when |v| is NaN
            d[k] = _mm_add_ps(d[k], _mm_sub_ps(v, v));
        }
    for (; i + 4 <= e; i += 4) {
        const __m128 v = _mm_loadu_ps(x + i);
        m[0] = _mm_max_ps(_mm_andnot_ps(sign, v), m[0]);
        d[0] = _mm_add_ps(d[0], _mm_sub_ps(v, v));
    }
    for (int k = 1; k < kScanAcc; ++k) {
        m[0] = _mm_max_ps(m[k], m[0]);
        d[0] = _mm_add_ps(d[0], d[k]);
    }
    alignas(16) float mv[4], dv[4];
    _mm_store_ps(mv, m[0]);
    _mm_store_ps(dv, d[0]);
    for (int j = 0; j < 4; ++j) {
        mm = std::max(mm, static_cast<double>(mv[j]));
        bad = bad || dv[j] != 0.0f;
    }
}
inline void scan_lanes(const double* x, i64& i, i64 e, double& mm, bool& bad) {
    const __m128d sign = _mm_set1_pd(-0.0);
    __m128d m[kScanAcc], d[kScanAcc];
    for (int k = 0; k < kScanAcc; ++k) m[k] = d[k] = _mm_setzero_pd();
    for (; i + 2 * kScanAcc <= e; i += 2 * kScanAcc)
        for (int k = 0; k < kScanAcc; ++k) {
            const __m128d v = _mm_loadu_pd(x + i + 2 * k);
            m[k] = _mm_max_pd(_mm_andnot_pd(sign, v), m[k]);
            d[k] = _mm_add_pd(d[k], _mm_sub_pd(v, v));
        }
    for (; i + 2 <= e; i += 2) {
        const __m128d v = _mm_loadu_pd(x + i);
        m[0] = _mm_max_pd(_mm_andnot_pd(sign, v), m[0]);
        d[0] = _mm_add_pd(d[0], _mm_sub_pd(v, v));
    }
    for (int k = 1; k < kScanAcc; ++k) {
        m[0] = _mm_max_pd(m[k], m[0]);
        d[0] = _mm_add_pd(d[0], d[k]);
    }
    alignas(16) double mv[2], dv[2];
    _mm_store_pd(mv, m[0]);
    _mm_store_pd(dv, d[0]);
    for (int j = 0; j < 2; ++j) {
        mm = std::max(mm, mv[j]);
        bad = bad || dv[j] != 0.0;
    }
}
#endif

template <class T>
FloatScan scan_float(const T* x, i64 n, int threads) {
    using Bits = std::uint64_t (*)(const T*, i64, i64);
    Bits bits_fn = nullptr;
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            bits_fn = &avx512::float_abs_bits_max;
            break;
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            bits_fn = &avx2::float_abs_bits_max;
            break;
#endif
        default:
            break;
    }
    const i64 parts = std::max<i64>(1, std::min<i64>(threads, n / (1 << 20)));
    std::vector<FloatScan> res(static_cast<std::size_t>(parts));
    parallel_for(parts, threads, [&](i64 p) {
        i64 i = split_begin(n, parts, p);
        const i64 e = split_begin(n, parts, p + 1);
        if (bits_fn != nullptr) {
            using U = typename std::conditional<sizeof(T) == 8, std::uint64_t, std::uint32_t>::type;
            const U top = static_cast<U>(bits_fn(x, i, e));
            constexpr U inf_bits = static_cast<U>(sizeof(T) == 8 ? 0x7ff0000000000000u : 0x7f800000u);
            T a;
            std::memcpy(&a, &top, sizeof(T));
            res[static_cast<std::size_t>(p)] =
                top >= inf_bits ? FloatScan{HUGE_VAL, true} : FloatScan{static_cast<double>(a), false};
            return;
        }
        double mm = 0.0;
        bool bad = false;  // a NaN or an inf was seen
#if defined(__SSE2__)
        scan_lanes(x, i, e, mm, bad);
#endif
        for (; i < e; ++i) {
            const double a = std::fabs(static_cast<double>(x[i]));
            mm = a > mm ? a : mm;
            bad = bad || x[i] - x[i] != T(0);
        }
        res[static_cast<std::size_t>(p)] = FloatScan{mm, bad};
    });
    FloatScan out;
    for (const auto& r : res) {
        out.max_abs = std::max(out.max_abs, r.max_abs);
        out.nonfinite = out.nonfinite || r.nonfinite;
    }
    return out;
}

// max - min of 16-bit integer data (parallel over fixed parts; min/max do not
// depend on the order). Each 2D Canny band calls it on the rows it reads,
// with one thread: a separate pass over the whole image before the bands
// cost a pool round trip and a second read of the image from memory.
// 32 independent lanes per part (four SSE2 vectors): one min/max chain ran at
// one vector per cycle.
template <class T>
i64 int_range(const T* x, i64 n, int threads) {
    const i64 parts = std::max<i64>(1, std::min<i64>(threads, n / (1 << 17)));
    std::vector<i64> lo(static_cast<std::size_t>(parts)), hi(static_cast<std::size_t>(parts));
    parallel_for(parts, threads, [&](i64 p) {
        const i64 b = split_begin(n, parts, p), e = split_begin(n, parts, p + 1);
        constexpr int L = 32;
        T mn[L], mx[L];
        for (int j = 0; j < L; ++j) mn[j] = mx[j] = x[b];
        i64 i = b;
        for (; i + L <= e; i += L)
            for (int j = 0; j < L; ++j) {
                mn[j] = x[i + j] < mn[j] ? x[i + j] : mn[j];
                mx[j] = x[i + j] > mx[j] ? x[i + j] : mx[j];
            }
        for (; i < e; ++i) {
            mn[0] = x[i] < mn[0] ? x[i] : mn[0];
            mx[0] = x[i] > mx[0] ? x[i] : mx[0];
        }
        lo[static_cast<std::size_t>(p)] = *std::min_element(mn, mn + L);
        hi[static_cast<std::size_t>(p)] = *std::max_element(mx, mx + L);
    });
    return *std::max_element(hi.begin(), hi.end()) - *std::min_element(lo.begin(), lo.end());
}

// Counts NaN/inf in float input; `scan` (if given) receives the largest |x|.
Status check_finite(const CannyJob& job, int threads, FloatScan* scan = nullptr) {
    Status st;
    const i64 n = job.depth * job.height * job.width;
    FloatScan fs;
    if (job.dtype == DType::f32) {
        fs = scan_float(static_cast<const float*>(job.img), n, threads);
        if (fs.nonfinite) st.nonfinite = count_nonfinite(static_cast<const float*>(job.img), n, threads);
    } else if (job.dtype == DType::f64) {
        fs = scan_float(static_cast<const double*>(job.img), n, threads);
        if (fs.nonfinite) st.nonfinite = count_nonfinite(static_cast<const double*>(job.img), n, threads);
    }
    if (scan != nullptr) *scan = fs;
    return st;
}

// ---- hysteresis ---------------------------------------------------------------
// The padded map holds 0 (no edge, and every padding cell), 1 (weak candidate)
// and 255 (edge). Edges grow into 8- (2D) or 26-connected (3D) candidates.
// The result is the set of candidates connected to a strong pixel, whatever
// the order of growth, hence identical for any number of bands or threads.
struct PaddedMap {
    std::unique_ptr<LargeBuffer<std::uint8_t>> mem;  // 2 MiB pages from 4 MiB (a 2048^2 map: 2 faults, not 1000)
    i64 Z = 1, H = 0, W = 0;      // interior size
    i64 row = 0, slice = 0;       // strides of the padded buffer
    i64 zpad = 0;                 // 1 in 3D (padding slices), 0 in 2D
    std::uint8_t* origin = nullptr;  // interior element (0, 0, 0)
    int n_offsets = 0;
    i64 offsets[26] = {};

    PaddedMap(i64 depth, i64 height, i64 width, bool is3d) : Z(depth), H(height), W(width) {
        row = W + 2;
        slice = (H + 2) * row;
        zpad = is3d ? 1 : 0;
        const i64 total = (Z + 2 * zpad) * slice;
        mem.reset(new LargeBuffer<std::uint8_t>(static_cast<std::size_t>(total)));
        // Zero the outer padding (the slices before and after in 3D, the rows
        // above and below in 2D); each band / slab task zeroes the padding of
        // its own rows or slices (zero_rows, zero_slices), and the kernels write
        // every interior cell.
        std::uint8_t* base = mem->get();
        const i64 outer = is3d ? slice : row;
        std::memset(base, 0, static_cast<std::size_t>(outer));
        std::memset(base + total - outer, 0, static_cast<std::size_t>(outer));
        origin = base + zpad * slice + row + 1;
        for (i64 dz = -zpad; dz <= zpad; ++dz)
            for (i64 dy = -1; dy <= 1; ++dy)
                for (i64 dx = -1; dx <= 1; ++dx)
                    if (dz || dy || dx) offsets[n_offsets++] = dz * slice + dy * row + dx;
    }
    // Zero the left and right padding cells of rows [y0, y1) (2D), or all the
    // padding of slices [z0, z1) (3D): run by the band / slab task that owns them.
    void zero_rows(i64 y0, i64 y1) const {
        for (i64 y = y0; y < y1; ++y) {
            origin[y * row - 1] = 0;
            origin[y * row + W] = 0;
        }
    }
    void zero_slices(i64 z0, i64 z1) const {
        for (i64 z = z0; z < z1; ++z) {
            std::uint8_t* s = origin + z * slice - row - 1;
            std::memset(s, 0, static_cast<std::size_t>(row));
            std::memset(s + (H + 1) * row, 0, static_cast<std::size_t>(row));
            for (i64 y = 1; y <= H; ++y) {
                s[y * row] = 0;
                s[y * row + W + 1] = 0;
            }
        }
    }
    // Offset (from origin) of the first cell of unit u (a row in 2D, a slice in 3D).
    i64 unit_begin(i64 u, bool is3d) const { return is3d ? u * slice - row - 1 : u * row - 1; }
};

// Bytes of w equal to 1, as bit 0 of each byte (map cells are 0, 1 or 255:
// a cell is 1 iff its bit 0 is set and its bit 7 is not).
inline std::uint64_t ones_of(std::uint64_t w) { return w & ~(w >> 7) & 0x0101010101010101ULL; }

// Grow from `stack`, never leaving the offsets [lo, hi) from the origin;
// each cell that becomes an edge is also appended to `grown` if given.
// 2D: a cell whose 8-byte reads of the rows above, its own and below stay
// inside [lo, hi) finds its candidate neighbours with three loads and bit
// tests instead of eight compares and branches; the others (and 3D) test
// each neighbour. Either way a neighbour is grown iff it is a candidate, so
// the result is the same.
void grow(const PaddedMap& pm, i64 lo, i64 hi, std::vector<i64>& stack, std::vector<i64>* grown = nullptr) {
    std::uint8_t* const o = pm.origin;
    const int no = pm.n_offsets;
    const bool flat = no == 8;
    const i64 row = pm.row;
    while (!stack.empty()) {
        const i64 p = stack.back();
        stack.pop_back();
        if (flat && p - row - 1 >= lo && p + row + 7 < hi) {
            for (int r = -1; r <= 1; ++r) {
                const i64 b = p + r * row - 1;
                std::uint64_t w;
                std::memcpy(&w, o + b, 8);
                std::uint64_t m = ones_of(w) & 0x010101ULL;  // columns x-1, x, x+1
                while (m) {
                    const i64 q = b + (__builtin_ctzll(m) >> 3);
                    m &= m - 1;
                    o[q] = 255;
                    stack.push_back(q);
                    if (grown) grown->push_back(q);
                }
            }
            continue;
        }
        for (int k = 0; k < no; ++k) {
            const i64 q = p + pm.offsets[k];
            if (q >= lo && q < hi && o[q] == 1) {  // never read outside [lo, hi)
                o[q] = 255;
                stack.push_back(q);
                if (grown) grown->push_back(q);
            }
        }
    }
}

// Offsets of the 255 cells in [begin, end) (cells are 0, 1 or 255: only 255
// has bit 7), 64 cells per test in the common case of none.
#if defined(__SSE2__)
// Bit k set iff cell p[k] is 255 (k < 64); 0 after one test in the common case of none.
inline std::uint64_t strong64(const std::uint8_t* p) {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
    const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48));
    if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3))) == 0) return 0;
    return static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(v0))) |
           static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(v1))) << 16 |
           static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(v2))) << 32 |
           static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(v3))) << 48;
}
#endif

void push_strong(const std::uint8_t* origin, i64 begin, i64 end, std::vector<i64>& stack) {
    i64 i = begin;
#if defined(__SSE2__)
    for (; i + 64 <= end; i += 64)
        for (std::uint64_t r = strong64(origin + i); r; r &= r - 1) stack.push_back(i + __builtin_ctzll(r));
#endif
    for (; i < end; ++i)
        if (origin[i] == 255) stack.push_back(i);
}

// 2D seeds: the 255 cells in [begin, end) that have a candidate (1) among
// their 8 neighbours. Growth from any other strong cell adds nothing, and on
// an image whose edges are mostly strong (a long edge is strong along most of
// its length; noise can be a third strong) this skips most pushes and pops.
// Neighbours are read only inside [lo, hi), the band's own cells (the other
// bands are being written meanwhile): blocks near those limits, and the tail,
// push every 255 cell, as push_strong.
void push_seeds2d(const std::uint8_t* origin, i64 begin, i64 end, i64 row, i64 lo, i64 hi,
                  std::vector<i64>& stack) {
    i64 i = begin;
#if defined(__SSE2__)
    const __m128i one = _mm_set1_epi8(1);
    const auto ones16 = [&](const std::uint8_t* q) {
        return _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), one);
    };
    for (; i + 64 <= end; i += 64) {
        const std::uint8_t* p = origin + i;
        std::uint64_t m = strong64(p);
        if (m == 0) continue;
        if (i - row - 1 >= lo && i + 64 + row + 1 <= hi) {
            std::uint64_t near = 0;
            for (int c = 0; c < 4; ++c) {
                const std::uint8_t* q = p + 16 * c;
                __m128i a = _mm_or_si128(ones16(q - row - 1), ones16(q - row));
                a = _mm_or_si128(a, _mm_or_si128(ones16(q - row + 1), ones16(q - 1)));
                a = _mm_or_si128(a, _mm_or_si128(ones16(q + 1), ones16(q + row - 1)));
                a = _mm_or_si128(a, _mm_or_si128(ones16(q + row), ones16(q + row + 1)));
                near |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(a))) << (16 * c);
            }
            m &= near;
        }
        for (std::uint64_t r = m; r; r &= r - 1) stack.push_back(i + __builtin_ctzll(r));
    }
#else
    (void)row;
    (void)lo;
    (void)hi;
#endif
    for (; i < end; ++i)
        if (origin[i] == 255) stack.push_back(i);
}

// Output row from map row: edges 255, everything else 0.
void finish_row(const std::uint8_t* __restrict__ src, std::uint8_t* __restrict__ dst, i64 n) {
    for (i64 x = 0; x < n; ++x) dst[x] = static_cast<std::uint8_t>(-static_cast<int>(src[x] == 255));
}

// 1. Hysteresis inside one band, then the band's output rows (edges 255,
// everything else 0), run by the task that computed the band (it reads and
// writes only the band's own cells and output rows).
void grow_band(const PaddedMap& pm, bool is3d, i64 u0, i64 u1, std::uint8_t* out) {
    std::vector<i64> stack;
    stack.reserve(4096);
    const i64 lo = pm.unit_begin(u0, is3d), hi = pm.unit_begin(u1, is3d);
    // Seeds a stretch of cells at a time, each grown out before the next
    // stretch is scanned: the stack holds one stretch's seeds and their
    // frontier instead of every strong cell of the band (an image with a
    // third of its pixels edges pushed megabytes, faulted in afresh and
    // copied as the vector grew at every call: 2048^2 noise with a third
    // of its pixels edges, 461 -> 98 thousand page faults in 60 calls).
    // A cell grown earlier is found again as a seed and adds nothing: the
    // edges are the candidates connected to a strong cell, in any order.
    constexpr i64 kStretch = i64(1) << 14;
    for (i64 b = lo; b < hi; b += kStretch) {
        if (is3d)
            push_strong(pm.origin, b, std::min(hi, b + kStretch), stack);
        else
            push_seeds2d(pm.origin, b, std::min(hi, b + kStretch), pm.row, lo, hi, stack);
        grow(pm, lo, hi, stack);
    }
    const i64 z0 = is3d ? u0 : 0, z1 = is3d ? u1 : 1;
    const i64 y0 = is3d ? 0 : u0, y1 = is3d ? pm.H : u1;
    for (i64 z = z0; z < z1; ++z)
        for (i64 y = y0; y < y1; ++y)
            finish_row(pm.origin + z * pm.slice + y * pm.row, out + (z * pm.H + y) * pm.W, pm.W);
}

// 2. Across band borders, serially, growing without limits; every cell that
// becomes an edge there is set in the output too. The result is the set of
// candidates connected to a strong pixel, as with one band.
void finish(const PaddedMap& pm, bool is3d, const std::vector<i64>& cuts, std::uint8_t* out) {
    const i64 nb = static_cast<i64>(cuts.size()) - 1;
    if (nb <= 1) return;
    const i64 all_lo = pm.unit_begin(0, is3d);
    const i64 all_hi = pm.unit_begin(is3d ? pm.Z : pm.H, is3d);
    std::vector<i64> stack, grown;
    for (i64 b = 1; b < nb; ++b) {
        // edges in the last unit of band b-1 and the first unit of band b
        const i64 lo = pm.unit_begin(cuts[static_cast<std::size_t>(b)] - 1, is3d);
        const i64 hi = pm.unit_begin(cuts[static_cast<std::size_t>(b)] + 1, is3d);
        push_strong(pm.origin, lo, hi, stack);
        grow(pm, all_lo, all_hi, stack, &grown);
    }
    for (const i64 q : grown) {  // an interior cell: offset z * slice + y * row + x, 0 <= x < W
        const i64 z = is3d ? q / pm.slice : 0, r = q - z * pm.slice;
        const i64 y = r / pm.row, x = r - y * pm.row;
        out[(z * pm.H + y) * pm.W + x] = 255;
    }
}

std::vector<i64> make_cuts(i64 n, i64 parts) {
    std::vector<i64> cuts(static_cast<std::size_t>(parts + 1));
    for (i64 i = 0; i <= parts; ++i) cuts[static_cast<std::size_t>(i)] = split_begin(n, parts, i);
    return cuts;
}

Status run_canny(const CannyJob& job_in, int threads) {
    const bool is3d = job_in.ndim == 3;
    PaddedMap pm(job_in.depth, job_in.height, job_in.width, is3d);
    CannyJob job = job_in;
    job.map = pm.origin;
    job.map_row = pm.row;
    job.map_slice = pm.slice;
    const i64 A = job.aperture;
    // Bands of at least 64K pixels (and 32 rows), at most one per thread: with
    // the persistent pool a band costs a wake-up, not a thread start, so a
    // 512x512 image splits into min(threads, 4) bands. 3D: slabs of at least
    // 256K voxels and 4 slices, at most one per thread.
    constexpr i64 kMinPixelsPerBand = i64(1) << 16;
    constexpr i64 kMinVoxelsPerSlab = i64(1) << 18;
    const i64 pixels = job.depth * job.height * job.width;
    std::vector<i64> cuts;
    if (!is3d) {
        const i64 nb = std::max<i64>(1, std::min<i64>({threads, job.height / 32, pixels / kMinPixelsPerBand}));
        cuts = make_cuts(job.height, nb);
        const BandFn fn = band2d_fn();
        const int ky = job.smooth_len[1];
        const i64 rx = job.smooth_len[2] / 2;
        const int count = static_cast<int>(14 + 2 * A + 2 * ky);
        parallel_for(nb, threads, [&](i64 b) {
            Scratch s(count, std::max<i64>(job.width + 2 * rx, 2 * ky) + 16);
            const i64 y0 = cuts[static_cast<std::size_t>(b)], y1 = cuts[static_cast<std::size_t>(b + 1)];
            pm.zero_rows(y0, y1);
            CannyJob bj = job;
            if (job.narrow16_limit > 0) {
                // The rows this band's gradients read: magnitudes of rows y0 - 1 .. y1, each from
                // the aperture's rows around it (clamped: the border replicates).
                const i64 a = std::max<i64>(0, y0 - 1 - A / 2), e = std::min(job.height, y1 + 1 + A / 2);
                const i64 off = a * job.width, n = (e - a) * job.width;
                const i64 range = job.dtype == DType::i16
                                      ? int_range(static_cast<const std::int16_t*>(job.img) + off, n, 1)
                                      : int_range(static_cast<const std::uint16_t*>(job.img) + off, n, 1);
                bj.narrow16 = range <= job.narrow16_limit;
            }
            fn(bj, y0, y1, s.data());
            grow_band(pm, false, y0, y1, job.out);
        });
    } else {
        const i64 nb = std::max<i64>(1, std::min<i64>({threads, job.depth / 4, pixels / kMinVoxelsPerSlab}));
        cuts = make_cuts(job.depth, nb);
        const BandFn fn = slab3d_fn();
        const int kz = job.smooth_len[0];
        const bool smoothing = kz > 1 || job.smooth_len[1] > 1 || job.smooth_len[2] > 1;
        const int count = static_cast<int>(3 + 3 * A + 12 + 5 + (smoothing ? 2 * kz : 0));
        const i64 plane = std::max<i64>({(job.height + 2) * (job.width + 2),
                                         job.width + job.smooth_len[2], 2 * kz}) + 16;
        parallel_for(nb, threads, [&](i64 b) {
            Scratch s(count, plane);
            const i64 z0 = cuts[static_cast<std::size_t>(b)], z1 = cuts[static_cast<std::size_t>(b + 1)];
            pm.zero_slices(z0, z1);
            fn(job, z0, z1, s.data());
            grow_band(pm, true, z0, z1, job.out);
        });
    }
    finish(pm, is3d, cuts, job.out);
    return Status{};
}

}  // namespace

Status canny_checked(const CannyJob& job_in, const std::vector<std::vector<double>>& smooth, int threads);

Status canny(const CannyJob& job_in, const std::vector<std::vector<double>>& smooth, int threads) {
    threads = std::max(threads, 1);
    if (job_in.depth <= 0 || job_in.height <= 0 || job_in.width <= 0)
        throw std::invalid_argument("canny: image is empty");
    if (job_in.aperture != 3 && job_in.aperture != 5 && job_in.aperture != 7)
        throw std::invalid_argument("canny: aperture_size must be 3, 5 or 7");
    FloatScan scan;
    Status st = check_finite(job_in, threads, &scan);
    if (!st.ok()) return st;
    CannyJob widened = job_in;
    if (job_in.dtype == DType::f32 && job_in.ndim == 2) widened.f32_in_f64 = scan.max_abs > 0x1p100;
    if (job_in.exact_int && job_in.ndim == 2 && (job_in.aperture == 3 || job_in.aperture == 5) &&
        (job_in.dtype == DType::i16 || job_in.dtype == DType::u16)) {
        // |g| <= (sum of the positive Sobel taps) * range: 4 range (aperture 3), 48 range (5); the int
        // direction test multiplies |g| by 79109, so |g| <= 27145 keeps it below 2^31. Each band
        // measures the range of its own rows (run_canny): no separate pass over the image.
        widened.narrow16_limit = job_in.aperture == 3 ? 6786 : 565;
    }
    return canny_checked(widened, smooth, threads);
}

Status canny_checked(const CannyJob& job_in, const std::vector<std::vector<double>>& smooth, int threads) {
    bool smoothing = false;
    for (const auto& t : smooth) smoothing = smoothing || t.size() > 1;
    if (!smoothing) return run_canny(job_in, threads);
    // Fused into the band / slab loops: no full-size intermediate image.
    CannyJob job = job_in;
    job.exact_int = false;
    job.round16 = false;
    job.narrow16_limit = 0;  // the narrow int16 path is exact-integer only: no range scan per band
    const int nd = job_in.ndim;
    for (int ax = 0; ax < nd; ++ax) {
        const auto& taps = smooth[static_cast<std::size_t>(ax)];
        job.smooth_taps[ax + 3 - nd] = taps.data();
        job.smooth_len[ax + 3 - nd] = static_cast<int>(taps.size());
    }
    if (job.smooth_len[0] > 255)
        throw std::invalid_argument("canny: sigma along z is too large (at most 31 voxels)");
    return run_canny(job, threads);
}

// ---- Sobel ----------------------------------------------------------------------
template <class In>
constexpr DType dtype_of() {
    return std::is_same<In, std::uint8_t>::value    ? DType::u8
           : std::is_same<In, std::uint16_t>::value ? DType::u16
           : std::is_same<In, std::int16_t>::value  ? DType::i16
           : std::is_same<In, float>::value         ? DType::f32
                                                    : DType::f64;
}

std::int64_t sobel_out_phase(std::uintptr_t in_addr, std::int64_t row_bytes, std::int64_t lead_bytes) {
    constexpr i64 page = 4096;
    // The input rows within 8 rows, modulo 4 KiB; the middle of the widest gap between them.
    i64 pts[17];
    for (i64 d = -8; d <= 8; ++d)
        pts[d + 8] = ((static_cast<i64>(in_addr % page) + d * (row_bytes % page)) % page + page) % page;
    std::sort(pts, pts + 17);
    i64 gap = pts[0] + page - pts[16], start = pts[16];
    for (int i = 1; i < 17; ++i)
        if (pts[i] - pts[i - 1] > gap) {
            gap = pts[i] - pts[i - 1];
            start = pts[i - 1];
        }
    const i64 mid = start + gap / 2;
    // the element at lead_bytes on a 64-byte boundary
    return ((((mid + lead_bytes) & ~i64(63)) - lead_bytes) % page + page) % page;
}

template <class In, class Out>
Status sobel(const In* img, int ndim, const i64* shape, int aperture, int border, Out* const* out,
             int threads) {
    threads = std::max(threads, 1);
    const i64 dims[3] = {ndim == 3 ? shape[0] : 1, shape[ndim - 2], shape[ndim - 1]};
    const i64 n = dims[0] * dims[1] * dims[2];
    Status st;
    if (aperture != 3 && aperture != 5 && aperture != 7)
        throw std::invalid_argument("sobel: aperture_size must be 3, 5 or 7");
    SobelJob job;
    // float32 data sums in float32 unless |x| > 2^100 (its sums could overflow
    // there; float64 then), as Canny's float32 gradients. The kernels report
    // the largest |x| they read, so the first run assumes float32 sums and the
    // rare data beyond 2^100 (or non-finite data, refused) is found without a
    // separate pass over the image.
    job.narrow = std::is_same<In, float>::value;
    job.img = img;
    job.dtype = dtype_of<In>();
    job.out_kind = std::is_same<Out, std::int32_t>::value   ? SobelOut::i32
                   : std::is_same<Out, std::int64_t>::value ? SobelOut::i64
                   : std::is_same<Out, float>::value        ? SobelOut::f32
                                                            : SobelOut::f64;
    job.ndim = ndim;
    job.depth = dims[0];
    job.height = dims[1];
    job.width = dims[2];
    job.aperture = aperture;
    job.border = border;
    for (int a = 0; a < ndim; ++a) job.out[a] = out[a];
    if (n == 0) return st;
    using PartFn = std::uint64_t (*)(const SobelJob&, i64, i64);
    PartFn fn = &baseline::sobel_part;
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            fn = &avx512::sobel_part;
            break;
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            fn = &avx2::sobel_part;
            break;
#endif
        default:
            break;
    }
    // 2D: bands of rows; 3D: slabs of slices (each recomputes its aperture - 1
    // halo rows / slices). The split only decides who computes an element.
    const i64 items = ndim == 2 ? dims[1] : dims[0];
    const i64 per_item = ndim == 2 ? dims[2] : dims[1] * dims[2];
    const i64 parts = std::max<i64>(1, std::min<i64>(threads, items * per_item / (1 << 15)));
    const i64 p2 = std::min<i64>(parts, ndim == 2 ? std::max<i64>(1, items / 8) : std::max<i64>(1, items / 2));
    std::vector<std::uint64_t> seen(static_cast<std::size_t>(p2), 0);
    auto run = [&] {
        parallel_for(p2, threads, [&](i64 p) {
            seen[static_cast<std::size_t>(p)] = fn(job, split_begin(items, p2, p), split_begin(items, p2, p + 1));
        });
    };
    run();
    if constexpr (std::is_floating_point<In>::value) {
        // Every element is read by some part; the largest |x| as a bit pattern
        // (NaN above inf above every finite value).
        const std::uint64_t top = *std::max_element(seen.begin(), seen.end());
        const std::uint64_t inf_bits = sizeof(In) == 4 ? 0x7f800000u : 0x7ff0000000000000u;
        if (top >= inf_bits) {
            st.nonfinite = count_nonfinite(img, n, threads);
            if (!st.ok()) return st;
        }
        if (std::is_same<In, float>::value && top > 0x71800000u) {  // some |x| > 2^100 (0x1p100f's bits)
            job.narrow = false;
            run();
        }
    }
    return st;
}

template Status sobel<std::uint8_t, std::int32_t>(const std::uint8_t*, int, const i64*, int, int, std::int32_t* const*, int);
template Status sobel<std::uint16_t, std::int32_t>(const std::uint16_t*, int, const i64*, int, int, std::int32_t* const*, int);
template Status sobel<std::int16_t, std::int32_t>(const std::int16_t*, int, const i64*, int, int, std::int32_t* const*, int);
template Status sobel<std::uint16_t, std::int64_t>(const std::uint16_t*, int, const i64*, int, int, std::int64_t* const*, int);
template Status sobel<std::int16_t, std::int64_t>(const std::int16_t*, int, const i64*, int, int, std::int64_t* const*, int);
template Status sobel<float, float>(const float*, int, const i64*, int, int, float* const*, int);
template Status sobel<double, double>(const double*, int, const i64*, int, int, double* const*, int);

}  // namespace medfuse
