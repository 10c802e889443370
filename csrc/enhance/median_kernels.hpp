// Median-filter inner loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by median.cpp / median_avx2.cpp / median_avx512.cpp).
//
// 3x3 and 5x5 medians of 2D images (uint8, uint16, int16, float32) as
// min/max networks over vectors of pixels: for every output row, the k source
// rows are sorted column-wise once (shared by the k outputs that use each
// column); then per output pixel
//  * 3x3: median(max of the column minima, median of the middles, min of the
//    maxima) -- exact for column-sorted 3x3 windows;
//  * 5x5: sort the rank rows across the 5 columns (the 5x5 block is then
//    sorted along rows and columns); 6 entries are then provably below the
//    median and 6 above, so the median is the median of the 13 others; those
//    are sorted along anti-diagonals and fed to Batcher's network for 13.
//    The generator dropped every comparator that never swaps on column-sorted
//    input and every op the output does not need: 108 min/max. It was proved
//    on all 7776 column-sorted 0/1 inputs (0-1 principle) and checked on
//    random data; the tests compare it with cv2.medianBlur and scipy.
//
// Included inside a namespace: it includes no headers (the .cpp includes
// <cstdint>, <cstring> and <immintrin.h> first) and everything it defines
// below the entry points has internal linkage, so nothing can be merged
// across ISA paths by the linker.

namespace {

// Per element type: the vector type V, lanes L, load/store and min/max.
// (float32: NaN is refused before the kernel runs, so min/max order totally.)
#if defined(__AVX512BW__)
// Shifts by one element of E bytes: lane i of shift_prev is cur[i - 1] (lane 0:
// prev's last element), of shift_next cur[i + 1] (the last lane: next[0]).
// Whole 16-byte blocks move by valignd, then vpalignr takes the element across.
template <int E>
inline __m512i shift_prev(__m512i prev, __m512i cur) {
    if constexpr (E == 4) return _mm512_maskz_alignr_epi32(static_cast<__mmask16>(0xFFFF), cur, prev, 15);
    const __m512i t = _mm512_maskz_alignr_epi32(static_cast<__mmask16>(0xFFFF), cur, prev, 12);
    return _mm512_maskz_alignr_epi8(~__mmask64(0), cur, t, 16 - E);
}
template <int E>
inline __m512i shift_next(__m512i cur, __m512i next) {
    if constexpr (E == 4) return _mm512_maskz_alignr_epi32(static_cast<__mmask16>(0xFFFF), next, cur, 1);
    const __m512i t = _mm512_maskz_alignr_epi32(static_cast<__mmask16>(0xFFFF), next, cur, 4);
    return _mm512_maskz_alignr_epi8(~__mmask64(0), t, cur, E);
}

struct OpsU8 {
    using T = std::uint8_t; using V = __m512i; static constexpr int L = 64;
    static V ld(const T* p) { return _mm512_loadu_si512(p); }
    static void st(T* p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm512_max_epu8(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm512_set1_epi8(static_cast<char>(v)); }
};
struct OpsU16 {
    using T = std::uint16_t; using V = __m512i; static constexpr int L = 32;
    static V ld(const T* p) { return _mm512_loadu_si512(p); }
    static void st(T* p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epu16(a, b); }
    static V mx(V a, V b) { return _mm512_max_epu16(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm512_set1_epi16(static_cast<short>(v)); }
};
struct OpsI16 {
    using T = std::int16_t; using V = __m512i; static constexpr int L = 32;
    static V ld(const T* p) { return _mm512_loadu_si512(p); }
    static void st(T* p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epi16(a, b); }
    static V mx(V a, V b) { return _mm512_max_epi16(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm512_set1_epi16(v); }
};
struct OpsF32 {
    using T = float; using V = __m512; static constexpr int L = 16;
    static V ld(const T* p) { return _mm512_loadu_ps(p); }
    static void st(T* p, V v) { _mm512_storeu_ps(p, v); }
    static V mn(V a, V b) { return compat512::min_ps(a, b); }  // common/avx512_compat.hpp
    static V mx(V a, V b) { return compat512::max_ps(a, b); }
    static V prev1(V prev, V cur) {
        return _mm512_castsi512_ps(shift_prev<4>(_mm512_castps_si512(prev), _mm512_castps_si512(cur)));
    }
    static V next1(V cur, V next) {
        return _mm512_castsi512_ps(shift_next<4>(_mm512_castps_si512(cur), _mm512_castps_si512(next)));
    }
    static V set1(T v) { return _mm512_set1_ps(v); }
};
#elif defined(__AVX2__)
// Shifts by one element of E bytes (as the AVX-512 ones): the 16-byte halves
// move by vperm2i128, then vpalignr takes the element across.
template <int E>
inline __m256i shift_prev(__m256i prev, __m256i cur) {
    return _mm256_alignr_epi8(cur, _mm256_permute2x128_si256(prev, cur, 0x21), 16 - E);
}
template <int E>
inline __m256i shift_next(__m256i cur, __m256i next) {
    return _mm256_alignr_epi8(_mm256_permute2x128_si256(cur, next, 0x21), cur, E);
}

struct OpsU8 {
    using T = std::uint8_t; using V = __m256i; static constexpr int L = 32;
    static V ld(const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static void st(T* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm256_max_epu8(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm256_set1_epi8(static_cast<char>(v)); }
};
struct OpsU16 {
    using T = std::uint16_t; using V = __m256i; static constexpr int L = 16;
    static V ld(const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static void st(T* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epu16(a, b); }
    static V mx(V a, V b) { return _mm256_max_epu16(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm256_set1_epi16(static_cast<short>(v)); }
};
struct OpsI16 {
    using T = std::int16_t; using V = __m256i; static constexpr int L = 16;
    static V ld(const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static void st(T* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epi16(a, b); }
    static V mx(V a, V b) { return _mm256_max_epi16(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm256_set1_epi16(v); }
};
struct OpsF32 {
    using T = float; using V = __m256; static constexpr int L = 8;
    static V ld(const T* p) { return _mm256_loadu_ps(p); }
    static void st(T* p, V v) { _mm256_storeu_ps(p, v); }
    static V mn(V a, V b) { return _mm256_min_ps(a, b); }
    static V mx(V a, V b) { return _mm256_max_ps(a, b); }
    static V prev1(V prev, V cur) {
        return _mm256_castsi256_ps(shift_prev<4>(_mm256_castps_si256(prev), _mm256_castps_si256(cur)));
    }
    static V next1(V cur, V next) {
        return _mm256_castsi256_ps(shift_next<4>(_mm256_castps_si256(cur), _mm256_castps_si256(next)));
    }
    static V set1(T v) { return _mm256_set1_ps(v); }
};
#elif defined(__SSE2__)
// Shifts by one element of E bytes (as the AVX-512 ones): byte shifts, or-ed.
template <int E>
inline __m128i shift_prev(__m128i prev, __m128i cur) {
    return _mm_or_si128(_mm_slli_si128(cur, E), _mm_srli_si128(prev, 16 - E));
}
template <int E>
inline __m128i shift_next(__m128i cur, __m128i next) {
    return _mm_or_si128(_mm_srli_si128(cur, E), _mm_slli_si128(next, 16 - E));
}

struct OpsU8 {
    using T = std::uint8_t; using V = __m128i; static constexpr int L = 16;
    static V ld(const T* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
    static void st(T* p, V v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
    static V mn(V a, V b) { return _mm_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm_max_epu8(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm_set1_epi8(static_cast<char>(v)); }
};
struct OpsI16 {
    using T = std::int16_t; using V = __m128i; static constexpr int L = 8;
    static V ld(const T* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
    static void st(T* p, V v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
    static V mn(V a, V b) { return _mm_min_epi16(a, b); }
    static V mx(V a, V b) { return _mm_max_epi16(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return _mm_set1_epi16(v); }
};
struct OpsU16 {  // SSE2 has no unsigned 16-bit min/max: flip the sign bit around signed ones
    using T = std::uint16_t; using V = __m128i; static constexpr int L = 8;
    static V flip(V v) { return _mm_xor_si128(v, _mm_set1_epi16(static_cast<short>(0x8000))); }
    static V ld(const T* p) { return flip(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static void st(T* p, V v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), flip(v)); }
    static V mn(V a, V b) { return _mm_min_epi16(a, b); }
    static V mx(V a, V b) { return _mm_max_epi16(a, b); }
    static V prev1(V prev, V cur) { return shift_prev<sizeof(T)>(prev, cur); }
    static V next1(V cur, V next) { return shift_next<sizeof(T)>(cur, next); }
    static V set1(T v) { return flip(_mm_set1_epi16(static_cast<short>(v))); }
};
struct OpsF32 {
    using T = float; using V = __m128; static constexpr int L = 4;
    static V ld(const T* p) { return _mm_loadu_ps(p); }
    static void st(T* p, V v) { _mm_storeu_ps(p, v); }
    static V mn(V a, V b) { return _mm_min_ps(a, b); }
    static V mx(V a, V b) { return _mm_max_ps(a, b); }
    static V prev1(V prev, V cur) {
        return _mm_castsi128_ps(shift_prev<4>(_mm_castps_si128(prev), _mm_castps_si128(cur)));
    }
    static V next1(V cur, V next) {
        return _mm_castsi128_ps(shift_next<4>(_mm_castps_si128(cur), _mm_castps_si128(next)));
    }
    static V set1(T v) { return _mm_set1_ps(v); }
};
#else
template <class E> struct OpsScalar {
    using T = E; using V = E; static constexpr int L = 1;
    static V ld(const T* p) { return *p; }
    static void st(T* p, V v) { *p = v; }
    static V mn(V a, V b) { return b < a ? b : a; }
    static V mx(V a, V b) { return a < b ? b : a; }
    static V set1(T v) { return v; }
    static V prev1(V prev, V) { return prev; }  // L == 1: the 3x3 register path is not used
    static V next1(V, V next) { return next; }
};
using OpsU8 = OpsScalar<std::uint8_t>;
using OpsU16 = OpsScalar<std::uint16_t>;
using OpsI16 = OpsScalar<std::int16_t>;
using OpsF32 = OpsScalar<float>;
#endif

template <class O> inline void cswap(typename O::V& a, typename O::V& b) {
    const typename O::V lo = O::mn(a, b);
    b = O::mx(a, b);
    a = lo;
}

template <class O> inline typename O::V med3(typename O::V a, typename O::V b, typename O::V c) {
    return O::mx(O::mn(a, b), O::mn(O::mx(a, b), c));
}

// s_i[j] = rank-i value (after the column sort) of window column j.
template <class O>
inline typename O::V med25(const typename O::V* s0, const typename O::V* s1, const typename O::V* s2,
                           const typename O::V* s3, const typename O::V* s4) {
    using V = typename O::V;
    const V t0 = O::mn(s0[0], s0[1]);
    const V t1 = O::mx(s0[0], s0[1]);
    const V t2 = O::mn(s0[3], s0[4]);
    const V t3 = O::mx(s0[3], s0[4]);
    const V t4 = O::mn(s0[2], t3);
    const V t5 = O::mx(s0[2], t3);
    const V t7 = O::mx(t4, t2);
    const V t8 = O::mn(t1, t5);
    const V t9 = O::mx(t1, t5);
    const V t11 = O::mx(t0, t7);
    const V t15 = O::mx(t8, t11);
    const V t18 = O::mn(s1[0], s1[1]);
    const V t19 = O::mx(s1[0], s1[1]);
    const V t20 = O::mn(s1[3], s1[4]);
    const V t21 = O::mx(s1[3], s1[4]);
    const V t22 = O::mn(s1[2], t21);
    const V t23 = O::mx(s1[2], t21);
    const V t24 = O::mn(t22, t20);
    const V t25 = O::mx(t22, t20);
    const V t26 = O::mn(t19, t23);
    const V t27 = O::mx(t19, t23);
    const V t28 = O::mn(t18, t25);
    const V t29 = O::mx(t18, t25);
    const V t31 = O::mx(t28, t24);
    const V t32 = O::mn(t26, t29);
    const V t33 = O::mx(t26, t29);
    const V t35 = O::mx(t32, t31);
    const V t36 = O::mn(s2[0], s2[1]);
    const V t37 = O::mx(s2[0], s2[1]);
    const V t38 = O::mn(s2[3], s2[4]);
    const V t39 = O::mx(s2[3], s2[4]);
    const V t40 = O::mn(s2[2], t39);
    const V t41 = O::mx(s2[2], t39);
    const V t42 = O::mn(t40, t38);
    const V t43 = O::mx(t40, t38);
    const V t44 = O::mn(t37, t41);
    const V t46 = O::mn(t36, t43);
    const V t47 = O::mx(t36, t43);
    const V t49 = O::mx(t46, t42);
    const V t50 = O::mn(t44, t47);
    const V t51 = O::mx(t44, t47);
    const V t52 = O::mn(t50, t49);
    const V t53 = O::mx(t50, t49);
    const V t54 = O::mn(s3[0], s3[1]);
    const V t55 = O::mx(s3[0], s3[1]);
    const V t56 = O::mn(s3[3], s3[4]);
    const V t57 = O::mx(s3[3], s3[4]);
    const V t58 = O::mn(s3[2], t57);
    const V t59 = O::mx(s3[2], t57);
    const V t60 = O::mn(t58, t56);
    const V t61 = O::mx(t58, t56);
    const V t62 = O::mn(t55, t59);
    const V t64 = O::mn(t54, t61);
    const V t65 = O::mx(t54, t61);
    const V t66 = O::mn(t64, t60);
    const V t67 = O::mx(t64, t60);
    const V t68 = O::mn(t62, t65);
    const V t70 = O::mn(t68, t67);
    const V t71 = O::mx(t68, t67);
    const V t72 = O::mn(s4[0], s4[1]);
    const V t73 = O::mx(s4[0], s4[1]);
    const V t74 = O::mn(s4[3], s4[4]);
    const V t75 = O::mx(s4[3], s4[4]);
    const V t76 = O::mn(s4[2], t75);
    const V t77 = O::mx(s4[2], t75);
    const V t78 = O::mn(t76, t74);
    const V t79 = O::mx(t76, t74);
    const V t80 = O::mn(t73, t77);
    const V t82 = O::mn(t72, t79);
    const V t83 = O::mx(t72, t79);
    const V t84 = O::mn(t82, t78);
    const V t85 = O::mx(t82, t78);
    const V t86 = O::mn(t80, t83);
    const V t88 = O::mn(t86, t85);
    const V t90 = O::mn(t15, t35);
    const V t91 = O::mx(t15, t35);
    const V t92 = O::mn(t52, t66);
    const V t93 = O::mx(t52, t66);
    const V t95 = O::mx(t90, t92);
    const V t96 = O::mn(t91, t93);
    const V t97 = O::mx(t91, t93);
    const V t99 = O::mx(t96, t95);
    const V t100 = O::mn(t9, t33);
    const V t101 = O::mx(t9, t33);
    const V t102 = O::mn(t70, t84);
    const V t103 = O::mx(t70, t84);
    const V t104 = O::mn(t53, t103);
    const V t105 = O::mx(t53, t103);
    const V t106 = O::mn(t104, t102);
    const V t107 = O::mx(t104, t102);
    const V t108 = O::mn(t101, t105);
    const V t110 = O::mn(t100, t107);
    const V t111 = O::mx(t100, t107);
    const V t113 = O::mx(t110, t106);
    const V t114 = O::mn(t108, t111);
    const V t116 = O::mn(t114, t113);
    const V t117 = O::mx(t114, t113);
    const V t118 = O::mn(t27, t51);
    const V t120 = O::mn(t71, t88);
    const V t122 = O::mn(t118, t120);
    const V t129 = O::mx(t99, t116);
    const V t130 = O::mn(t97, t117);
    const V t131 = O::mx(t97, t117);
    const V t132 = O::mn(t130, t129);
    const V t133 = O::mx(t130, t129);
    const V t134 = O::mn(t131, t122);
    const V t143 = O::mx(t132, t134);
    const V t151 = O::mx(t143, t133);
    return t151;
}

inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// 3x3 rows of at least L + 2 pixels, in registers. The three source rows
// are column-sorted once per vector of L columns; the sorted columns at
// shifts -1 and +1 come from the neighbouring vectors by lane shifts (prev1 /
// next1), so each vector of L outputs costs 3 loads, one column sort, six
// shifts and the 12 min/max of the median (max of the column minima, median
// of the middles, min of the maxima, then their median). The scratch path in
// median_row stored and reloaded the sorted rows instead (12 loads per
// vector, most of them misaligned). The border columns' sorted triples
// enter as broadcast vectors before the first and after the last vector.
// A row that is not a whole number of vectors ends with vectors at any
// column (3 x 3 loads, three column sorts; overlapping vectors write the
// same values) and its last pixel sorted alone.
template <class O>
void median3_row(const typename O::T* const* rows, std::int64_t w, const std::int64_t* lmap,
                 const std::int64_t* rmap, typename O::T* out) {
    using T = typename O::T;
    using V = typename O::V;
    constexpr int L = O::L;
    const T *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
    auto sorted = [&](std::int64_t x, V& a, V& b, V& c) {
        a = O::ld(r0 + x);
        b = O::ld(r1 + x);
        c = O::ld(r2 + x);
        cswap<O>(a, b);
        cswap<O>(b, c);
        cswap<O>(a, b);
    };
    auto median = [&](V l0, V l1, V l2, V m0, V m1, V m2, V h0, V h1, V h2) {
        const V lo = O::mx(O::mx(l0, l1), l2);
        const V mid = med3<O>(m0, m1, m2);
        const V hi = O::mn(O::mn(h0, h1), h2);
        return med3<O>(lo, mid, hi);
    };
    auto any_block = [&](std::int64_t xs) {  // outputs xs .. xs + L - 1, 1 <= xs, xs + L + 1 <= w
        V a0, b0, c0, a1, b1, c1, a2, b2, c2;
        sorted(xs - 1, a0, b0, c0);
        sorted(xs, a1, b1, c1);
        sorted(xs + 1, a2, b2, c2);
        O::st(out + xs, median(a0, a1, a2, b0, b1, b2, c0, c1, c2));
    };
    // the sorted triple of a border column as a vector (only one lane is used)
    auto border = [&](std::int64_t col, V& a, V& b, V& c) {
        T t0 = r0[col], t1 = r1[col], t2 = r2[col], t;
        if (t1 < t0) t = t0, t0 = t1, t1 = t;
        if (t2 < t1) t = t1, t1 = t2, t2 = t;
        if (t1 < t0) t = t0, t0 = t1, t1 = t;
        a = O::set1(t0), b = O::set1(t1), c = O::set1(t2);
    };
    auto emit = [&](std::int64_t x, V pa, V pb, V pc, V ca, V cb, V cc, V na, V nb, V nc) {
        O::st(out + x, median(O::prev1(pa, ca), ca, O::next1(ca, na), O::prev1(pb, cb), cb, O::next1(cb, nb),
                              O::prev1(pc, cc), cc, O::next1(cc, nc)));
    };
    V pa, pb, pc, ca, cb, cc;
    border(lmap[0], pa, pb, pc);
    sorted(0, ca, cb, cc);
    std::int64_t x = 0;
    for (; x + 2 * L <= w; x += L) {
        V na, nb, nc;
        sorted(x + L, na, nb, nc);
        emit(x, pa, pb, pc, ca, cb, cc, na, nb, nc);
        pa = ca, pb = cb, pc = cc;
        ca = na, cb = nb, cc = nc;
    }
    if (x + L == w) {  // the row ends with a whole vector: the right border column is its next
        V na, nb, nc;
        border(rmap[0], na, nb, nc);
        emit(x, pa, pb, pc, ca, cb, cc, na, nb, nc);
        return;
    }
    for (std::int64_t xa = x > 0 ? x : 1; xa < w - 1; xa += L) any_block(xa < w - 1 - L ? xa : w - 1 - L);
    const std::int64_t ends[2] = {w - 1, 0};  // column 0 only when no vector covered it (x == 0)
    for (const std::int64_t e : ends) {
        if (e == 0 && x > 0) break;
        T v[9];
        int n = 0;
        for (int i = 0; i < 3; ++i)
            for (std::int64_t c = e - 1; c <= e + 1; ++c) {
                const T t = rows[i][c < 0 ? lmap[0] : (c >= w ? rmap[0] : c)];
                int j = n++;
                for (; j > 0 && t < v[j - 1]; --j) v[j] = v[j - 1];
                v[j] = t;
            }
        out[e] = v[4];
    }
}

template <class O>
void median_row(const typename O::T* const* rows, std::int64_t w, int k, const std::int64_t* lmap,
                const std::int64_t* rmap, typename O::T* out, typename O::T* scratch) {
    using T = typename O::T;
    using V = typename O::V;
    constexpr int L = O::L;
    const std::int64_t row = round_up(w + 4, L) + L;  // <= w + 4 + 128 elements
    const int r = k / 2;
    T* rank[5];
    for (int i = 0; i < 5; ++i) rank[i] = scratch + i * row;
    T* orow = scratch + 5 * row;
    if (k == 3 && L > 1 && w >= L + 2) {
        median3_row<O>(rows, w, lmap, rmap, out);
        return;
    }
    // 1. Column sorts of the image columns, straight from the k source rows,
    //    into rank[i][r + x]; the tail without over-reading the rows.
    std::int64_t x = 0;
    if (k == 3) {
        const T *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
        for (; x + L <= w; x += L) {
            V a = O::ld(r0 + x), b = O::ld(r1 + x), c = O::ld(r2 + x);
            cswap<O>(a, b);
            cswap<O>(b, c);
            cswap<O>(a, b);
            O::st(rank[0] + 1 + x, a);
            O::st(rank[1] + 1 + x, b);
            O::st(rank[2] + 1 + x, c);
        }
    } else {
        for (; x + L <= w; x += L) {
            V v[5];
            for (int i = 0; i < 5; ++i) v[i] = O::ld(rows[i] + x);
            cswap<O>(v[0], v[1]); cswap<O>(v[3], v[4]); cswap<O>(v[2], v[4]);
            cswap<O>(v[2], v[3]); cswap<O>(v[1], v[4]); cswap<O>(v[0], v[3]);
            cswap<O>(v[0], v[2]); cswap<O>(v[1], v[3]); cswap<O>(v[1], v[2]);
            for (int i = 0; i < 5; ++i) O::st(rank[i] + 2 + x, v[i]);
        }
    }
    for (; x < w; ++x) {  // insertion sort of one column
        T v[5];
        for (int i = 0; i < k; ++i) {
            const T t = rows[i][x];
            int j = i;
            for (; j > 0 && t < v[j - 1]; --j) v[j] = v[j - 1];
            v[j] = t;
        }
        for (int i = 0; i < k; ++i) rank[i][r + x] = v[i];
    }
    // 2. Border columns are copies of image columns (the column sort commutes
    //    with the horizontal border map).
    for (int i = 0; i < k; ++i)
        for (int t = 0; t < r; ++t) {
            rank[i][t] = rank[i][r + lmap[t]];
            rank[i][r + w + t] = rank[i][r + rmap[t]];
        }
    // 3. Medians: full vectors straight to `out`, the last partial one via orow.
    for (x = 0; x < w; x += L) {
        V m;
        if (k == 3) {
            const V lo = O::mx(O::mx(O::ld(rank[0] + x), O::ld(rank[0] + x + 1)), O::ld(rank[0] + x + 2));
            const V mid = med3<O>(O::ld(rank[1] + x), O::ld(rank[1] + x + 1), O::ld(rank[1] + x + 2));
            const V hi = O::mn(O::mn(O::ld(rank[2] + x), O::ld(rank[2] + x + 1)), O::ld(rank[2] + x + 2));
            m = med3<O>(lo, mid, hi);
        } else {
            V s5[5][5];
            for (int i = 0; i < 5; ++i)
                for (int j = 0; j < 5; ++j) s5[i][j] = O::ld(rank[i] + x + j);
            m = med25<O>(s5[0], s5[1], s5[2], s5[3], s5[4]);
        }
        if (x + L <= w) {
            O::st(out + x, m);
        } else {
            O::st(orow, m);
            std::memcpy(out + x, orow, static_cast<std::size_t>(w - x) * sizeof(T));
        }
    }
}

}  // namespace

#define MEDFUSE_MEDIAN_ROW(name, ops, type)                                                          \
    void name(const type* const* rows, std::int64_t w, int k, const std::int64_t* lmap,            \
              const std::int64_t* rmap, type* out, type* scratch) {                                  \
        median_row<ops>(rows, w, k, lmap, rmap, out, scratch);                                      \
    }
MEDFUSE_MEDIAN_ROW(median_row_u8, OpsU8, std::uint8_t)
MEDFUSE_MEDIAN_ROW(median_row_u16, OpsU16, std::uint16_t)
MEDFUSE_MEDIAN_ROW(median_row_i16, OpsI16, std::int16_t)
MEDFUSE_MEDIAN_ROW(median_row_f32, OpsF32, float)
#undef MEDFUSE_MEDIAN_ROW

// Large 8-bit windows: a byte histogram per padded column over the window's
// k1 rows (slid down one row at a time: two counts per column), and the
// window histogram K slid right by adding one column histogram and
// subtracting another. The median m is tracked with `below` = #values < m
// (Huang). The same exact median as any other path.
//  * Windows of at most 255 pixels (up to 15x15) on AVX2/AVX-512: K holds
//    byte counts (256 bytes: 4 zmm / 8 ymm, modular byte arithmetic is exact
//    since every count stays in [0, 255]), and `below` is recounted after
//    each step as the sum of K's bytes below m (masked SAD).
//  * Otherwise: 16-bit counts in 256-lane loops the compiler vectorises, and
//    `below` changes by the difference of the two columns' counts below m.
namespace {

inline void colhist_slide_down(std::uint8_t* H, const std::uint8_t* pad, std::int64_t pw, std::int64_t y,
                               std::int64_t k1) {
    const std::uint8_t* old_row = pad + (y - 1) * pw;
    const std::uint8_t* new_row = pad + (y - 1 + k1) * pw;
    for (std::int64_t c = 0; c < pw; ++c) {
        --H[c * 256 + old_row[c]];
        ++H[c * 256 + new_row[c]];
    }
}

#if defined(__AVX512BW__) || defined(__AVX2__)
// Bytes K[i] for i < m, summed: the masked-off bytes are zeroed, then SAD.
#if defined(__AVX512BW__)
struct ByteCounts {
    __m512i k[4];
    __m512i iota[4];
    ByteCounts() {
        alignas(64) std::uint8_t t[256];
        for (int i = 0; i < 256; ++i) t[i] = static_cast<std::uint8_t>(i);
        for (int j = 0; j < 4; ++j) iota[j] = _mm512_load_si512(t + 64 * j);
    }
    void begin_row(const std::uint8_t* K) {
        for (int j = 0; j < 4; ++j) k[j] = _mm512_load_si512(K + 64 * j);
    }
    // K += hin - hout, stored back to K; returns the sum of K[i], i < m.
    std::int32_t step(std::uint8_t* K, const std::uint8_t* hin, const std::uint8_t* hout, std::int32_t m,
                      std::int32_t /*below*/) {
        const __m512i mv = _mm512_set1_epi8(static_cast<char>(m));
        const __m512i zero = _mm512_setzero_si512();
        __m512i acc = zero;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            k[j] = _mm512_sub_epi8(_mm512_add_epi8(k[j], _mm512_loadu_si512(hin + 64 * j)),
                                   _mm512_loadu_si512(hout + 64 * j));
            _mm512_store_si512(K + 64 * j, k[j]);
            const __mmask64 lt = _mm512_cmplt_epu8_mask(iota[j], mv);
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_mov_epi8(lt, k[j]), zero));
        }
        const __m256i h = _mm256_add_epi64(_mm512_maskz_extracti64x4_epi64(0xFF, acc, 0), _mm512_maskz_extracti64x4_epi64(0xFF, acc, 1));
        const __m128i q = _mm_add_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        return static_cast<std::int32_t>(_mm_cvtsi128_si64(q) + _mm_extract_epi64(q, 1));
    }
};
#else
struct ByteCounts {
    __m256i k[8];
    alignas(64) std::uint8_t below_mask[512];  // 0xFF then 0: bytes [256 - m, 512 - m) mask i < m
    ByteCounts() {
        std::memset(below_mask, 0xFF, 256);
        std::memset(below_mask + 256, 0, 256);
    }
    void begin_row(const std::uint8_t* K) {
        for (int j = 0; j < 8; ++j) k[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(K + 32 * j));
    }
    std::int32_t step(std::uint8_t* K, const std::uint8_t* hin, const std::uint8_t* hout, std::int32_t m,
                      std::int32_t /*below*/) {
        const std::uint8_t* msk = below_mask + 256 - m;
        const __m256i zero = _mm256_setzero_si256();
        __m256i acc = zero;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            k[j] = _mm256_sub_epi8(
                _mm256_add_epi8(k[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hin + 32 * j))),
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hout + 32 * j)));
            _mm256_store_si256(reinterpret_cast<__m256i*>(K + 32 * j), k[j]);
            const __m256i lt = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(msk + 32 * j));
            acc = _mm256_add_epi64(acc, _mm256_sad_epu8(_mm256_and_si256(k[j], lt), zero));
        }
        const __m128i q = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        return static_cast<std::int32_t>(_mm_cvtsi128_si64(q) + _mm_extract_epi64(q, 1));
    }
};
#endif

#endif

// 16-bit window counts: K += hin - hout in one constant-length pass (vectorised
// whole), and `below` changes by the part of that difference below m.
struct WideCounts {
    void begin_row(const std::int16_t*) {}
    std::int32_t step(std::int16_t* K, const std::uint8_t* __restrict__ hin, const std::uint8_t* __restrict__ hout,
                      std::int32_t m, std::int32_t below) {
        std::int16_t d = 0;
        const std::int16_t mm = static_cast<std::int16_t>(m);
        for (std::int16_t i = 0; i < 256; ++i) {
            const std::int16_t diff = static_cast<std::int16_t>(static_cast<std::int16_t>(hin[i]) - static_cast<std::int16_t>(hout[i]));
            K[i] = static_cast<std::int16_t>(K[i] + diff);
            d = static_cast<std::int16_t>(d + (i < mm ? diff : 0));
        }
        return below + d;
    }
};

// Rows [y0, y1) from the column histograms H (already over the rows of y0's
// window): per row the window counts K over its first k2 columns, then slid
// right by Counts::step, which returns the new number of values below m.
template <class Counts, class C>
void colhist_rows(const std::uint8_t* pad, std::int64_t w, std::int64_t k1, std::int64_t k2, std::int64_t y0,
                  std::int64_t y1, std::uint8_t* out, std::uint8_t* H, C* K, Counts& counts) {
    using i64 = std::int64_t;
    const i64 pw = w + k2 - 1;
    const std::int32_t rank = static_cast<std::int32_t>(k1 * k2 / 2);
    for (i64 y = y0; y < y1; ++y) {
        if (y > y0) colhist_slide_down(H, pad, pw, y, k1);
        for (int i = 0; i < 256; ++i) K[i] = 0;
        for (i64 c = 0; c < k2; ++c) {
            const std::uint8_t* __restrict__ h = H + c * 256;
            for (int i = 0; i < 256; ++i) K[i] = static_cast<C>(K[i] + h[i]);
        }
        std::int32_t m = 0, below = 0;
        while (below + K[m] <= rank) below += K[m++];
        std::uint8_t* o = out + y * w;
        o[0] = static_cast<std::uint8_t>(m);
        counts.begin_row(K);
        for (i64 x = 1; x < w; ++x) {
            below = counts.step(K, H + (x + k2 - 1) * 256, H + (x - 1) * 256, m, below);
            while (below > rank) below -= K[--m];
            while (below + K[m] <= rank) below += K[m++];
            o[x] = static_cast<std::uint8_t>(m);
        }
    }
}

}  // namespace

void median_colhist_u8(const std::uint8_t* pad, std::int64_t w, std::int64_t k1, std::int64_t k2, std::int64_t y0,
                       std::int64_t y1, std::uint8_t* out, std::uint8_t* colhist) {
    using i64 = std::int64_t;
    const i64 pw = w + k2 - 1;
    std::uint8_t* const H = colhist;
    std::memset(H, 0, static_cast<std::size_t>(pw) * 256);
    for (i64 i = 0; i < k1; ++i) {
        const std::uint8_t* row = pad + (y0 + i) * pw;
        for (i64 c = 0; c < pw; ++c) ++H[c * 256 + row[c]];
    }
#if defined(__AVX512BW__) || defined(__AVX2__)
    if (k1 * k2 <= 255) {
        alignas(64) std::uint8_t K[256];
        ByteCounts counts;
        return colhist_rows(pad, w, k1, k2, y0, y1, out, H, K, counts);
    }
#endif
    alignas(64) std::int16_t K[256];
    WideCounts counts;
    colhist_rows(pad, w, k1, k2, y0, y1, out, H, K, counts);
}
