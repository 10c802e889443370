// Sobel inner loops, compiled once per ISA (included inside the namespace
// medfuse::<isa> by canny.cpp / canny_avx2.cpp / canny_avx512.cpp after
// <algorithm>, <cstdint>, <vector>, common/border.hpp and
// common/large_buffer.hpp; see canny.hpp for the job).
//
// Separable passes in the twin's order, x first, then y, then z: each pass
// sums taps[k] * v[i + k - r] from the first tap's product (+-v: the first
// tap is +-1), k ascending, zero taps skipped (python/medfuse/reference/
// edges.py, from_first), so float results are bit-identical to
// the twin's (-ffp-contract=off: no fused multiply-add; float32 data in
// float32 unless some |x| > 2^100, float64 data in float64) and integer
// results are exact. Integer inputs accumulate in the output type
// (int32, or int64 where int32 could overflow: every partial sum is bounded by
// the final one's bound, max|x| * sum|s|^(ndim-1) * sum|d|). The work streams
// through small buffers instead of whole-array temporaries: in 2D a ring of
// aperture rows of x-filtered values (smooth and derivative) per band of
// output rows; in 3D a ring of aperture slices of xy-filtered planes (the
// three products the z pass needs). Each x loop is a plain elementwise loop
// the compiler vectorises for the ISA; the per-element operation order does
// not depend on how rows or slices are split between threads.

namespace {

inline std::int64_t sobel_border(std::int64_t i, std::int64_t n, int border) {
    return medfuse::border_index(i, n, border == 0 ? Border::replicate : Border::reflect101);
}

// Sobel taps as compile-time constants (so multiplications by 1 or -1 and
// the derivative's zero centre fold away; exact: x * 1 == x, x * -1 == -x).
template <int K>
constexpr int sobel_tap(bool deriv, int j) {
    constexpr int s3[3] = {1, 2, 1}, d3[3] = {-1, 0, 1};
    constexpr int s5[5] = {1, 4, 6, 4, 1}, d5[5] = {-1, -2, 0, 2, 1};
    constexpr int s7[7] = {1, 6, 15, 20, 15, 6, 1}, d7[7] = {-1, -4, -5, 0, 5, 4, 1};
    return K == 3 ? (deriv ? d3[j] : s3[j]) : K == 5 ? (deriv ? d5[j] : s5[j]) : (deriv ? d7[j] : s7[j]);
}

// One output value: sum_j tap_j * v(j) from the first product, j ascending,
// zero taps skipped (D: derivative taps, else smoothing taps). Summing from
// zero instead cost one addition more per sum, which the float32 2D loops
// are bound by (AVX2, 512^2, with kHalo below: 80 -> 65 us), and differs
// only in the sign of a zero result.
template <int K, bool D, class Acc, class F>
inline Acc sobel_sum(F&& v) {
    Acc a = v(0) * static_cast<Acc>(sobel_tap<K>(D, 0));  // the first tap is never zero
#pragma GCC unroll 7
    for (int j = 1; j < K; ++j) {
        const int t = sobel_tap<K>(D, j);
        if (t == 0) continue;
        a = a + v(j) * static_cast<Acc>(t);
    }
    return a;
}

// dst[x] = sum_j tap_j * src[x + j]  (x pass over a padded row).
template <int K, bool D, class Acc>
inline void sobel_xpass(const Acc* __restrict src, std::int64_t w, Acc* __restrict dst) {
    for (std::int64_t x = 0; x < w; ++x) dst[x] = sobel_sum<K, D, Acc>([&](int j) { return src[x + j]; });
}

// out[x] = Out(sum_j tap_j * rows[j][x])  (y or z pass).
template <int K, bool D, class Acc, class Out>
inline void sobel_combine(const Acc* const* rows, std::int64_t w, Out* __restrict out) {
    const Acc* r[K];
    for (int j = 0; j < K; ++j) r[j] = rows[j];
    for (std::int64_t x = 0; x < w; ++x)
        out[x] = static_cast<Out>(sobel_sum<K, D, Acc>([&](int j) { return r[j][x]; }));
}

// Vector types of the ISA's width (GCC vector extensions).
#if defined(__AVX512F__)
#define MEDFUSE_SOBEL_VB 64
#elif defined(__AVX__)
#define MEDFUSE_SOBEL_VB 32
#else
#define MEDFUSE_SOBEL_VB 16
#endif

template <class T>
struct SobelVec {
    static constexpr std::int64_t L = MEDFUSE_SOBEL_VB / static_cast<std::int64_t>(sizeof(T));
    typedef T V __attribute__((vector_size(MEDFUSE_SOBEL_VB)));
};
// L lanes of Out (the output type can be wider than the accumulator: int16 -> int32).
template <class Acc, class Out>
struct SobelOutVec {
    typedef Out V __attribute__((vector_size(SobelVec<Acc>::L * sizeof(Out))));
};

template <class V, class T>
inline V sv_load(const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(V));
    return v;
}
template <class Acc, class Out, class V>
inline void sv_store_out(Out* p, const V& v) {
    if constexpr (std::is_same<Acc, Out>::value) {
        __builtin_memcpy(p, &v, sizeof(V));
    } else {
        using W = typename SobelOutVec<Acc, Out>::V;
        const W w = __builtin_convertvector(v, W);
        __builtin_memcpy(p, &w, sizeof(W));
    }
}

// Row `src` (w values) as Acc with r border columns each side, into pad (w + 2r).
// Returns, for float input, the largest |x| of the row as its bit pattern (sign
// cleared: ordered as |x|, with inf above every finite value and NaN above inf),
// so that the caller needs no separate pass over the image to check it; else 0.
template <class In, class Acc>
inline std::uint64_t sobel_pad_row(const In* src, std::int64_t w, int r, int border, Acc* pad) {
    for (int i = 0; i < r; ++i) pad[i] = static_cast<Acc>(src[sobel_border(i - r, w, border)]);
    for (int i = 0; i < r; ++i) pad[r + w + i] = static_cast<Acc>(src[sobel_border(w + i, w, border)]);
    if constexpr (std::is_floating_point<In>::value) {
        using U = typename std::conditional<sizeof(In) == 4, std::uint32_t, std::uint64_t>::type;
        using VI = typename SobelVec<In>::V;
        using VU = typename SobelVec<U>::V;
        constexpr std::int64_t L = SobelVec<In>::L;
        constexpr U kAbs = ~(U(1) << (8 * sizeof(U) - 1));
        VU m = VU{};
        std::int64_t x = 0;
        for (; x + L <= w; x += L) {
            const VI v = sv_load<VI>(src + x);
            const VU b = __builtin_bit_cast(VU, v) & kAbs;
            m = m > b ? m : b;
            sv_store_out<In, Acc>(pad + r + x, v);
        }
        U mm = 0;
        for (std::int64_t i = 0; i < L; ++i) mm = m[i] > mm ? m[i] : mm;
        for (; x < w; ++x) {
            U b;
            __builtin_memcpy(&b, src + x, sizeof(U));
            b &= kAbs;
            mm = b > mm ? b : mm;
            pad[r + x] = static_cast<Acc>(src[x]);
        }
        return mm;
    } else {
        for (std::int64_t x = 0; x < w; ++x) pad[r + x] = static_cast<Acc>(src[x]);
        return 0;
    }
}

// ---- 2D: explicit vectors ------------------------------------------------------
// Every loop below is vectorised by
// construction (the auto-vectoriser left the aperture-5 and -7 y passes scalar:
// too many row pointers to check for aliasing). Operations per element are the
// scalar ones above: taps ±1 as an add or subtract (x + (-v) == x - v exactly),
// zero taps skipped, sums from the first product in ascending tap order.
// sum_j tap_j * v(j) from the first product, j ascending, zero taps skipped; A is Acc or a vector of Acc.
template <int K, bool D, class Acc, class A, class F>
inline A sobel_vsum(F&& v) {
    static_assert(sobel_tap<K>(D, 0) == 1 || sobel_tap<K>(D, 0) == -1, "first tap +-1");
    A a = sobel_tap<K>(D, 0) == 1 ? static_cast<A>(v(0)) : static_cast<A>(-v(0));  // exact negation
#pragma GCC unroll 7
    for (int j = 1; j < K; ++j) {
        const int t = sobel_tap<K>(D, j);
        if (t == 0) continue;
        if (t == 1)
            a = static_cast<A>(a + v(j));
        else if (t == -1)
            a = static_cast<A>(a - v(j));
        else
            a = static_cast<A>(a + v(j) * static_cast<Acc>(t));
    }
    return a;
}

// One padded input row (w + k - 1 values of Acc) -> its x-smoothed (hs_new) and
// x-derivative (hd_new) values; with Emit also the output row whose window ends
// at this input row: gy from the k - 1 previous x-smoothed rows hs[j] and the
// new one, gx likewise from hd. One loop, so the new row's values are used
// from registers.
template <int K, class Acc, class Out, bool Emit>
inline void sobel2d_row(const Acc* __restrict pad, std::int64_t w, Acc* __restrict hs_new, Acc* __restrict hd_new,
                        const Acc* const* hs, const Acc* const* hd, Out* __restrict gy, Out* __restrict gx) {
    using V = typename SobelVec<Acc>::V;
    constexpr std::int64_t L = SobelVec<Acc>::L;
    const Acc* ps[K];
    const Acc* pd[K];
    for (int j = 0; j < K - 1; ++j) {
        ps[j] = Emit ? hs[j] : nullptr;
        pd[j] = Emit ? hd[j] : nullptr;
    }
    std::int64_t x = 0;
    for (; x + L <= w; x += L) {
        const V s = sobel_vsum<K, false, Acc, V>([&](int j) { return sv_load<V>(pad + x + j); });
        const V d = sobel_vsum<K, true, Acc, V>([&](int j) { return sv_load<V>(pad + x + j); });
        __builtin_memcpy(hs_new + x, &s, sizeof(V));
        __builtin_memcpy(hd_new + x, &d, sizeof(V));
        if constexpr (Emit) {
            const V oy = sobel_vsum<K, true, Acc, V>([&](int j) { return j == K - 1 ? s : sv_load<V>(ps[j] + x); });
            const V ox = sobel_vsum<K, false, Acc, V>([&](int j) { return j == K - 1 ? d : sv_load<V>(pd[j] + x); });
            sv_store_out<Acc, Out>(gy + x, oy);
            sv_store_out<Acc, Out>(gx + x, ox);
        }
    }
    for (; x < w; ++x) {
        const Acc s = sobel_vsum<K, false, Acc, Acc>([&](int j) { return pad[x + j]; });
        const Acc d = sobel_vsum<K, true, Acc, Acc>([&](int j) { return pad[x + j]; });
        hs_new[x] = s;
        hd_new[x] = d;
        if constexpr (Emit) {
            gy[x] = static_cast<Out>(sobel_vsum<K, true, Acc, Acc>([&](int j) { return j == K - 1 ? s : ps[j][x]; }));
            gx[x] = static_cast<Out>(sobel_vsum<K, false, Acc, Acc>([&](int j) { return j == K - 1 ? d : pd[j][x]; }));
        }
    }
}

// Elements between ring rows: a multiple of 64 bytes plus one cache line, so
// that the rows read together do not share L1 sets when w is a power of two.
template <class T>
inline std::int64_t sobel_row_stride(std::int64_t w) {
    constexpr std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(T));
    return (w + line - 1) / line * line + line;
}

// 2D: output rows [y0, y1) of d/dy (out[0]) and d/dx (out[1]).
// Returns the largest |x| bit pattern read (float input; see sobel_pad_row).
template <int k, class In, class Acc, class Out>
std::uint64_t sobel2d_rows_t(const SobelJob& job, std::int64_t y0, std::int64_t y1) {
    using i64 = std::int64_t;
    constexpr int r = k / 2;
    const i64 H = job.height, W = job.width;
    const In* img = static_cast<const In*>(job.img);
    Out* gy = static_cast<Out*>(job.out[0]);
    Out* gx = static_cast<Out*>(job.out[1]);
    // ring slot j: the x-smoothed (hs) and x-derivative (hd) values of one input row
    const i64 S = sobel_row_stride<Acc>(W);
    std::vector<Acc> buf(static_cast<std::size_t>(2 * k * S + W + 2 * r));
    Acc* hs = buf.data();
    Acc* hd = hs + k * S;
    Acc* pad = hd + k * S;
    const Acc* rows[7];
    const Acc* rows2[7];
    std::uint64_t seen = 0;
    for (i64 t = y0 - r; t < y1 + r; ++t) {
        const i64 slot = (t - (y0 - r)) % k;
        seen = std::max(seen, sobel_pad_row(img + sobel_border(t, H, job.border) * W, W, r, job.border, pad));
        const i64 y = t - r;  // the output row whose window ends at input row t
        if (y < y0) {
            sobel2d_row<k, Acc, Out, false>(pad, W, hs + slot * S, hd + slot * S, nullptr, nullptr, nullptr, nullptr);
            continue;
        }
        for (int j = 0; j < k - 1; ++j) {
            rows[j] = hs + ((y - y0 + j) % k) * S;
            rows2[j] = hd + ((y - y0 + j) % k) * S;
        }
        sobel2d_row<k, Acc, Out, true>(pad, W, hs + slot * S, hd + slot * S, rows, rows2, gy + y * W, gx + y * W);
    }
    return seen;
}

// One pass of the 2D operator over one column chunk (lane type C: a vector of
// Acc, or Acc for a single column): R new input rows -> their x-smoothed (s) and
// x-derivative (d) values, and the R output rows whose windows end at them.
// in(i, j): new row i at column offset j - r; hist(sd, j): the x-pass values of
// the k - 1 rows before (sd 0: s, 1: d); keep(sd, j, v) receives the last k - 1
// rows' values for the next pass; out(i, gy, gx); seen(centre values).
// Ring traffic per output row: 2 (k - 1) / R loads and stores, none for the
// input (read straight from the image) or the new rows in between.
template <int K, int R, class Acc, class C, class In_, class Hist, class Keep, class OutF, class Seen>
inline void sobel2d_pass(In_&& in, Hist&& hist, Keep&& keep, OutF&& out, Seen&& seen) {
    constexpr int r = K / 2;
    C s[K - 1 + R], d[K - 1 + R];
#pragma GCC unroll 7
    for (int j = 0; j < K - 1; ++j) {
        s[j] = hist(0, j);
        d[j] = hist(1, j);
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
        C c[K];
#pragma GCC unroll 7
        for (int j = 0; j < K; ++j) c[j] = in(i, j);
        seen(c[r]);
        s[K - 1 + i] = sobel_vsum<K, false, Acc, C>([&](int j) { return c[j]; });
        d[K - 1 + i] = sobel_vsum<K, true, Acc, C>([&](int j) { return c[j]; });
        out(i, sobel_vsum<K, true, Acc, C>([&](int j) { return s[i + j]; }),
            sobel_vsum<K, false, Acc, C>([&](int j) { return d[i + j]; }));
    }
#pragma GCC unroll 7
    for (int j = 0; j < K - 1; ++j) {
        keep(0, j, s[R + j]);
        keep(1, j, d[R + j]);
    }
}

template <class U>
inline void sobel_seen_max(U& m, const U& b) {
    m = b > m ? b : m;
}

// 2D, the uint8 -> int16 sums: output rows [y0, y1) of d/dy (out[0]) and d/dx
// (out[1]), R = 4 rows per pass (1 for the last few): 20-25% faster than the
// ring of sobel2d_rows_t for these (fewer stores per pixel). Also float32 data
// in float32 sums (aperture 3; 5 and 7 with AVX-512's 32 registers), whose
// speed depends on how the output and input addresses fall modulo 4 KiB (loads
// of a row behind stores to the same low address bits): the binding places the
// outputs (sobel_out_phase); 512^2 in 69-76 us against 90-105 us for the ring
// (Zen 4, C++ harness). Columns: chunks of one vector loaded straight from
// the image rows, starting at column r, the last chunk moved left to end at
// w - r (a few columns recomputed by the same operations, same values); then
// the r border columns each side one at a time with border-mapped loads (every
// column when w < L + 2r). The x-pass values of the k - 1 rows before a pass
// sit in a ring of two sets (read one, write the other: the overlapping last
// chunk still reads the previous pass's values). The first pass of a band is
// preceded by the x pass of its k - 1 halo rows. With kHalo the passes take
// the k - 1 rows before them from the image again and redo their x pass
// instead of reading the ring (which only the warm-up then writes, for its
// range scan): more loads and additions, but no ring loads and stores, and
// 16 KB less in L1 at 512 columns (float32 aperture 3: faster on both paths).
// Returns the largest |x| bit pattern read when Acc is the float input type
// (the centre load of each row covers every element; the rerun with float64
// sums of float32 data does not need it), else 0.
template <int k, class In, class Acc, class Out, bool kHalo = false>
std::uint64_t sobel2d_rows4_t(const SobelJob& job, std::int64_t y0, std::int64_t y1) {
    using i64 = std::int64_t;
    using V = typename SobelVec<Acc>::V;
    using VIn = typename SobelOutVec<Acc, In>::V;  // L lanes of In
    using U = typename std::conditional<sizeof(Acc) == 8, std::uint64_t, std::uint32_t>::type;
    using VU = typename SobelVec<U>::V;  // the bits of V
    constexpr bool kScan = std::is_floating_point<In>::value && std::is_same<In, Acc>::value;
    [[maybe_unused]] constexpr U kAbs = ~(U(1) << (8 * sizeof(U) - 1));
    constexpr int r = k / 2;
    constexpr int R = 4;
    constexpr i64 L = SobelVec<Acc>::L;
    const i64 H = job.height, W = job.width;
    const In* img = static_cast<const In*>(job.img);
    Out* gy = static_cast<Out*>(job.out[0]);
    Out* gx = static_cast<Out*>(job.out[1]);
    const i64 S = sobel_row_stride<Acc>(W);
    std::vector<Acc> ring(static_cast<std::size_t>(2 * 2 * (k - 1) * S));
    auto slot = [&](int set, int sd, int j) { return ring.data() + ((set * 2 + sd) * (k - 1) + j) * S; };
    U seen = 0;
    VU vseen = VU{};
    const bool vec = W - 2 * r >= L;
    std::vector<i64> cols;  // the single columns, and their k border-mapped sources each
    for (i64 x = 0; x < W; ++x) {
        if (vec && x == r) x = std::max<i64>(r, W - r);
        if (x >= W) break;
        cols.push_back(x);
        for (int j = 0; j < k; ++j) cols.push_back(sobel_border(x + j - r, W, job.border));
    }
    // One pass of NR rows: new input rows first_row + i (output rows first_row + i - r),
    // ring set `set` in, 1 - set out. NR == 0 (warm-up): the x pass of k - 1 rows into set 0.
    auto pass = [&](auto nr_tag, i64 first_row, int set) {
        constexpr int NR = decltype(nr_tag)::value;
        constexpr bool kWarm = NR == 0;
        constexpr int NP = kWarm ? k - 1 : NR;  // input rows read
        constexpr int NH = (kHalo && !kWarm) ? k - 1 : 0;  // halo rows re-read instead of the ring
        const In* rp[8 + 6];  // k - 1 <= 6 warm-up rows, or R = 4 (after k - 1 halo rows)
        for (int i = -NH; i < NP; ++i) rp[NH + i] = img + sobel_border(first_row + i, H, job.border) * W;
        const i64 y = first_row - r;
        auto run = [&](auto lane_tag, i64 x0, const i64* src) {
            using C = decltype(lane_tag);
            constexpr bool kVec = !std::is_same<C, Acc>::value;
            auto load_in = [&](int i, int j) -> C {  // i from -NH: the halo rows
                if constexpr (kVec) {
                    const VIn v = sv_load<VIn>(rp[NH + i] + x0 - r + j);
                    if constexpr (std::is_same<In, Acc>::value)
                        return v;
                    else
                        return __builtin_convertvector(v, V);
                } else {
                    return static_cast<Acc>(rp[NH + i][src[j]]);
                }
            };
            auto seen_f = [&](const C& c) {
                if constexpr (kScan) {
                    if constexpr (kVec)
                        sobel_seen_max(vseen, VU(__builtin_bit_cast(VU, c) & kAbs));
                    else
                        sobel_seen_max(seen, U(__builtin_bit_cast(U, c) & kAbs));
                }
            };
            auto ld = [&](const Acc* p) -> C {
                if constexpr (kVec)
                    return sv_load<V>(p + x0);
                else
                    return p[x0];
            };
            auto st = [&](Acc* p, const C& v) {
                if constexpr (kVec)
                    __builtin_memcpy(p + x0, &v, sizeof(V));
                else
                    p[x0] = v;
            };
            if constexpr (kWarm) {
                for (int i = 0; i < NP; ++i) {
                    C c[k];
                    for (int j = 0; j < k; ++j) c[j] = load_in(i, j);
                    seen_f(c[r]);
                    st(slot(0, 0, i), sobel_vsum<k, false, Acc, C>([&](int j) { return c[j]; }));
                    st(slot(0, 1, i), sobel_vsum<k, true, Acc, C>([&](int j) { return c[j]; }));
                }
            } else {
                sobel2d_pass<k, NR, Acc, C>(
                    load_in,
                    [&](int sd, int j) -> C {
                        if constexpr (kHalo) {  // the x pass of halo row j again, from the image
                            C c[k];
                            for (int t = 0; t < k; ++t) c[t] = load_in(j - NH, t);
                            return sd == 0 ? sobel_vsum<k, false, Acc, C>([&](int t) { return c[t]; })
                                           : sobel_vsum<k, true, Acc, C>([&](int t) { return c[t]; });
                        } else {
                            return ld(slot(set, sd, j));
                        }
                    },
                    [&](int sd, int j, const C& v) {
                        if constexpr (!kHalo) st(slot(1 - set, sd, j), v);
                    },
                    [&](int i, const C& oy, const C& ox) {
                        const i64 o = (y + i) * W + x0;
                        if constexpr (kVec) {
                            sv_store_out<Acc, Out>(gy + o, oy);
                            sv_store_out<Acc, Out>(gx + o, ox);
                        } else {
                            gy[o] = static_cast<Out>(oy);
                            gx[o] = static_cast<Out>(ox);
                        }
                    },
                    seen_f);
            }
        };
        if (vec) {
            for (i64 x0 = r;; x0 += L) {
                if (x0 + L > W - r) x0 = W - r - L;  // the last chunk ends at w - r
                run(V{}, x0, nullptr);
                if (x0 + L >= W - r) break;
            }
        }
        for (std::size_t c = 0; c < cols.size(); c += k + 1) run(Acc{}, cols[c], cols.data() + c + 1);
    };
    pass(std::integral_constant<int, 0>{}, y0 - r, 0);
    int set = 0;
    i64 y = y0;
    for (; y + R <= y1; y += R, set = 1 - set) pass(std::integral_constant<int, R>{}, y + r, set);
    for (; y < y1; ++y, set = 1 - set) pass(std::integral_constant<int, 1>{}, y + r, set);
    if constexpr (kScan)
        for (i64 i = 0; i < L; ++i) sobel_seen_max(seen, U(vseen[i]));
    return seen;
}

// 3D: output slices [z0, z1) of d/dz (out[0]), d/dy (out[1]), d/dx (out[2]).
template <int k, class In, class Acc, class Out>
std::uint64_t sobel3d_slices_t(const SobelJob& job, std::int64_t z0, std::int64_t z1) {
    using i64 = std::int64_t;
    constexpr int r = k / 2;
    const i64 Z = job.depth, H = job.height, W = job.width, P = H * W;
    const In* img = static_cast<const In*>(job.img);
    Out* out[3] = {static_cast<Out*>(job.out[0]), static_cast<Out*>(job.out[1]), static_cast<Out*>(job.out[2])};
    // Per input slice: x passes (xs, xd: H x W), then the y passes into ring
    // slot j: ss = y-smooth(xs) (for d/dz), sd = y-derivative(xs) (d/dy),
    // ds = y-smooth(xd) (d/dx).
    LargeBuffer<Acc> mem(static_cast<std::size_t>((2 + 3 * k) * P + W + 2 * r));
    Acc* xs = mem.get();
    Acc* xd = xs + P;
    Acc* ss = xd + P;
    Acc* sd = ss + k * P;
    Acc* ds = sd + k * P;
    Acc* pad = ds + k * P;
    const Acc* rows[7];
    std::uint64_t seen = 0;
    for (i64 t = z0 - r; t < z1 + r; ++t) {
        const i64 slot = (t - (z0 - r)) % k;
        const In* slice = img + sobel_border(t, Z, job.border) * P;
        for (i64 y = 0; y < H; ++y) {
            seen = std::max(seen, sobel_pad_row(slice + y * W, W, r, job.border, pad));
            sobel_xpass<k, false>(pad, W, xs + y * W);
            sobel_xpass<k, true>(pad, W, xd + y * W);
        }
        for (i64 y = 0; y < H; ++y) {
            for (int j = 0; j < k; ++j) rows[j] = xs + sobel_border(y + j - r, H, job.border) * W;
            sobel_combine<k, false>(rows, W, ss + slot * P + y * W);
            sobel_combine<k, true>(rows, W, sd + slot * P + y * W);
            for (int j = 0; j < k; ++j) rows[j] = xd + sobel_border(y + j - r, H, job.border) * W;
            sobel_combine<k, false>(rows, W, ds + slot * P + y * W);
        }
        const i64 z = t - r;
        if (z < z0) continue;
        const Acc* planes[3] = {ss, sd, ds};
        for (int a = 0; a < 3; ++a)
            for (i64 y = 0; y < H; ++y) {
                for (int j = 0; j < k; ++j) rows[j] = planes[a] + ((z - z0 + j) % k) * P + y * W;
                if (a == 0)
                    sobel_combine<k, true>(rows, W, out[a] + z * P + y * W);
                else
                    sobel_combine<k, false>(rows, W, out[a] + z * P + y * W);
            }
    }
    return seen;
}

template <class In, class Acc, class Out>
std::uint64_t sobel_k(const SobelJob& job, std::int64_t b, std::int64_t e) {
    if (job.ndim == 2) {
        if (job.aperture == 3) return sobel2d_rows_t<3, In, Acc, Out>(job, b, e);
        if (job.aperture == 5) return sobel2d_rows_t<5, In, Acc, Out>(job, b, e);
        return sobel2d_rows_t<7, In, Acc, Out>(job, b, e);
    }
    if (job.aperture == 3) return sobel3d_slices_t<3, In, Acc, Out>(job, b, e);
    if (job.aperture == 5) return sobel3d_slices_t<5, In, Acc, Out>(job, b, e);
    return sobel3d_slices_t<7, In, Acc, Out>(job, b, e);
}

}  // namespace

// Type dispatch (the combinations canny.cpp's sobel<In, Out> instantiates).
// Returns the largest |x| bit pattern of the rows read (float input), else 0.
std::uint64_t sobel_part(const SobelJob& job, std::int64_t b, std::int64_t e) {
    // uint8 in 2D, apertures 3 and 5: every partial sum fits int16 (|x pass| <=
    // 16 * 255, |y pass| <= 3 * 16 * 255 = 12240, each product <= 6 * 4080), so the
    // sums run in int16 (twice the lanes of int32) and widen to int32 on store.
    if (job.dtype == DType::u8 && job.out_kind == SobelOut::i32 && job.ndim == 2) {
        if (job.aperture == 3) return sobel2d_rows4_t<3, std::uint8_t, std::int16_t, std::int32_t>(job, b, e);
        if (job.aperture == 5) return sobel2d_rows4_t<5, std::uint8_t, std::int16_t, std::int32_t>(job, b, e);
    }
#define MEDFUSE_SOBEL_CASE(DT, OK, In, Acc, Out) \
    if (job.dtype == DType::DT && job.out_kind == OK) return sobel_k<In, Acc, Out>(job, b, e);
    MEDFUSE_SOBEL_CASE(u8, SobelOut::i32, std::uint8_t, std::int32_t, std::int32_t)
    MEDFUSE_SOBEL_CASE(u16, SobelOut::i32, std::uint16_t, std::int32_t, std::int32_t)
    MEDFUSE_SOBEL_CASE(i16, SobelOut::i32, std::int16_t, std::int32_t, std::int32_t)
    MEDFUSE_SOBEL_CASE(u16, SobelOut::i64, std::uint16_t, std::int64_t, std::int64_t)
    MEDFUSE_SOBEL_CASE(i16, SobelOut::i64, std::int16_t, std::int64_t, std::int64_t)
    // float32 in 2D, float32 sums: 4 output rows per pass as well (its 4 KiB
    // sensitivity is answered by the binding, which places the outputs at a
    // distance from the input modulo 4 KiB: sobel_out_phase).
    if (job.dtype == DType::f32 && job.out_kind == SobelOut::f32 && job.narrow && job.ndim == 2) {
        // Aperture 3 re-reads its two halo rows (kHalo): AVX2 512^2 65 us against 79-80 us with the ring.
        if (job.aperture == 3) return sobel2d_rows4_t<3, float, float, float, true>(job, b, e);
#if defined(__AVX512F__)  // 16 vector registers are too few for it at apertures 5 and 7 (slower than the ring)
        if (job.aperture == 5) return sobel2d_rows4_t<5, float, float, float>(job, b, e);
        if (job.aperture == 7) return sobel2d_rows4_t<7, float, float, float>(job, b, e);
#endif
    }
    if (job.dtype == DType::f32 && job.out_kind == SobelOut::f32 && job.narrow)
        return sobel_k<float, float, float>(job, b, e);
    MEDFUSE_SOBEL_CASE(f32, SobelOut::f32, float, double, float)
    MEDFUSE_SOBEL_CASE(f64, SobelOut::f64, double, double, double)
#undef MEDFUSE_SOBEL_CASE
    return 0;
}

#if defined(__AVX2__)
namespace {

// The largest |x| bit pattern of x[b, e) (NaN above inf above every finite
// value): an integer max over the sign-cleared bits in 4 independent vectors
// of the ISA's width. Canny's float pre-scan on the AVX2 / AVX-512 paths
// (canny.cpp, scan_float): at load speed (Zen 4, 1 MB of float32: 11 us,
// against 27 us for SSE2 float max and (x - x) sums in 4 chains and 53 us in
// one).
template <class T>
std::uint64_t abs_bits_max_t(const T* x, std::int64_t b, std::int64_t e) {
    using S = typename std::conditional<sizeof(T) == 8, std::int64_t, std::int32_t>::type;
    using U = typename std::make_unsigned<S>::type;
    using V = typename SobelVec<S>::V;
    constexpr std::int64_t L = SobelVec<S>::L;
    constexpr int NA = 4;
    constexpr S kAbs = static_cast<S>(U(~U(0)) >> 1);
    V m[NA];
    for (int k = 0; k < NA; ++k) m[k] = V{};
    std::int64_t i = b;
    for (; i + NA * L <= e; i += NA * L)
        for (int k = 0; k < NA; ++k) {
            V v = sv_load<V>(reinterpret_cast<const S*>(x + i + k * L)) & kAbs;
            m[k] = v > m[k] ? v : m[k];
        }
    for (int k = 1; k < NA; ++k) m[0] = m[k] > m[0] ? m[k] : m[0];
    S top = 0;
    for (std::int64_t j = 0; j < L; ++j) top = m[0][j] > top ? m[0][j] : top;
    for (; i < e; ++i) {
        S v;
        __builtin_memcpy(&v, x + i, sizeof(S));
        v &= kAbs;
        top = v > top ? v : top;
    }
    return static_cast<std::uint64_t>(top);
}

}  // namespace

std::uint64_t float_abs_bits_max(const float* x, std::int64_t b, std::int64_t e) { return abs_bits_max_t(x, b, e); }
std::uint64_t float_abs_bits_max(const double* x, std::int64_t b, std::int64_t e) { return abs_bits_max_t(x, b, e); }
#endif  // __AVX2__
