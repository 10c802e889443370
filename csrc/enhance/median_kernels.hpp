// Median-filter inner loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by median.cpp / median_avx2.cpp).
//
// uint8 3x3 and 5x5 medians as min/max networks over vectors of pixels: for
// every output row, the k padded rows are sorted column-wise once (shared by
// the k outputs that use each column); then per output pixel
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

#if defined(__AVX2__)
using V = __m256i;
constexpr int kLanes = 32;
inline V vload(const std::uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline void vstore(std::uint8_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
inline V vmin(V a, V b) { return _mm256_min_epu8(a, b); }
inline V vmax(V a, V b) { return _mm256_max_epu8(a, b); }
#elif defined(__SSE2__)
using V = __m128i;
constexpr int kLanes = 16;
inline V vload(const std::uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void vstore(std::uint8_t* p, V v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
inline V vmin(V a, V b) { return _mm_min_epu8(a, b); }
inline V vmax(V a, V b) { return _mm_max_epu8(a, b); }
#else
using V = std::uint8_t;
constexpr int kLanes = 1;
inline V vload(const std::uint8_t* p) { return *p; }
inline void vstore(std::uint8_t* p, V v) { *p = v; }
inline V vmin(V a, V b) { return a < b ? a : b; }
inline V vmax(V a, V b) { return a < b ? b : a; }
#endif

inline void cswap(V& a, V& b) {
    const V lo = vmin(a, b);
    b = vmax(a, b);
    a = lo;
}

inline V med3(V a, V b, V c) { return vmax(vmin(a, b), vmin(vmax(a, b), c)); }

// s_i[j] = rank-i value (after the column sort) of window column j.
inline V med25(const V* s0, const V* s1, const V* s2, const V* s3, const V* s4) {
    const V t0 = vmin(s0[0], s0[1]);
    const V t1 = vmax(s0[0], s0[1]);
    const V t2 = vmin(s0[3], s0[4]);
    const V t3 = vmax(s0[3], s0[4]);
    const V t4 = vmin(s0[2], t3);
    const V t5 = vmax(s0[2], t3);
    const V t7 = vmax(t4, t2);
    const V t8 = vmin(t1, t5);
    const V t9 = vmax(t1, t5);
    const V t11 = vmax(t0, t7);
    const V t15 = vmax(t8, t11);
    const V t18 = vmin(s1[0], s1[1]);
    const V t19 = vmax(s1[0], s1[1]);
    const V t20 = vmin(s1[3], s1[4]);
    const V t21 = vmax(s1[3], s1[4]);
    const V t22 = vmin(s1[2], t21);
    const V t23 = vmax(s1[2], t21);
    const V t24 = vmin(t22, t20);
    const V t25 = vmax(t22, t20);
    const V t26 = vmin(t19, t23);
    const V t27 = vmax(t19, t23);
    const V t28 = vmin(t18, t25);
    const V t29 = vmax(t18, t25);
    const V t31 = vmax(t28, t24);
    const V t32 = vmin(t26, t29);
    const V t33 = vmax(t26, t29);
    const V t35 = vmax(t32, t31);
    const V t36 = vmin(s2[0], s2[1]);
    const V t37 = vmax(s2[0], s2[1]);
    const V t38 = vmin(s2[3], s2[4]);
    const V t39 = vmax(s2[3], s2[4]);
    const V t40 = vmin(s2[2], t39);
    const V t41 = vmax(s2[2], t39);
    const V t42 = vmin(t40, t38);
    const V t43 = vmax(t40, t38);
    const V t44 = vmin(t37, t41);
    const V t46 = vmin(t36, t43);
    const V t47 = vmax(t36, t43);
    const V t49 = vmax(t46, t42);
    const V t50 = vmin(t44, t47);
    const V t51 = vmax(t44, t47);
    const V t52 = vmin(t50, t49);
    const V t53 = vmax(t50, t49);
    const V t54 = vmin(s3[0], s3[1]);
    const V t55 = vmax(s3[0], s3[1]);
    const V t56 = vmin(s3[3], s3[4]);
    const V t57 = vmax(s3[3], s3[4]);
    const V t58 = vmin(s3[2], t57);
    const V t59 = vmax(s3[2], t57);
    const V t60 = vmin(t58, t56);
    const V t61 = vmax(t58, t56);
    const V t62 = vmin(t55, t59);
    const V t64 = vmin(t54, t61);
    const V t65 = vmax(t54, t61);
    const V t66 = vmin(t64, t60);
    const V t67 = vmax(t64, t60);
    const V t68 = vmin(t62, t65);
    const V t70 = vmin(t68, t67);
    const V t71 = vmax(t68, t67);
    const V t72 = vmin(s4[0], s4[1]);
    const V t73 = vmax(s4[0], s4[1]);
    const V t74 = vmin(s4[3], s4[4]);
    const V t75 = vmax(s4[3], s4[4]);
    const V t76 = vmin(s4[2], t75);
    const V t77 = vmax(s4[2], t75);
    const V t78 = vmin(t76, t74);
    const V t79 = vmax(t76, t74);
    const V t80 = vmin(t73, t77);
    const V t82 = vmin(t72, t79);
    const V t83 = vmax(t72, t79);
    const V t84 = vmin(t82, t78);
    const V t85 = vmax(t82, t78);
    const V t86 = vmin(t80, t83);
    const V t88 = vmin(t86, t85);
    const V t90 = vmin(t15, t35);
    const V t91 = vmax(t15, t35);
    const V t92 = vmin(t52, t66);
    const V t93 = vmax(t52, t66);
    const V t95 = vmax(t90, t92);
    const V t96 = vmin(t91, t93);
    const V t97 = vmax(t91, t93);
    const V t99 = vmax(t96, t95);
    const V t100 = vmin(t9, t33);
    const V t101 = vmax(t9, t33);
    const V t102 = vmin(t70, t84);
    const V t103 = vmax(t70, t84);
    const V t104 = vmin(t53, t103);
    const V t105 = vmax(t53, t103);
    const V t106 = vmin(t104, t102);
    const V t107 = vmax(t104, t102);
    const V t108 = vmin(t101, t105);
    const V t110 = vmin(t100, t107);
    const V t111 = vmax(t100, t107);
    const V t113 = vmax(t110, t106);
    const V t114 = vmin(t108, t111);
    const V t116 = vmin(t114, t113);
    const V t117 = vmax(t114, t113);
    const V t118 = vmin(t27, t51);
    const V t120 = vmin(t71, t88);
    const V t122 = vmin(t118, t120);
    const V t129 = vmax(t99, t116);
    const V t130 = vmin(t97, t117);
    const V t131 = vmax(t97, t117);
    const V t132 = vmin(t130, t129);
    const V t133 = vmax(t130, t129);
    const V t134 = vmin(t131, t122);
    const V t143 = vmax(t132, t134);
    const V t151 = vmax(t143, t133);
    return t151;
}

inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

}  // namespace

int median_u8_lanes() { return kLanes; }

// k rank rows of round_up(w + 4, lanes) + lanes bytes, plus one output row.
std::int64_t median_u8_scratch(std::int64_t w) {
    const std::int64_t row = round_up(w + 4, kLanes) + kLanes;
    return 6 * row;
}

void median_u8_row(const std::uint8_t* const* rows, std::int64_t w, int k, const std::int64_t* lmap,
                   const std::int64_t* rmap, std::uint8_t* out, std::uint8_t* scratch) {
    const std::int64_t row = round_up(w + 4, kLanes) + kLanes;
    const int r = k / 2;
    std::uint8_t* rank[5];
    for (int i = 0; i < 5; ++i) rank[i] = scratch + i * row;
    std::uint8_t* orow = scratch + 5 * row;
    // 1. Column sorts of the image columns, straight from the k source rows,
    //    into rank[i][r + x]; the tail without over-reading the rows.
    std::int64_t x = 0;
    if (k == 3) {
        const std::uint8_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
        for (; x + kLanes <= w; x += kLanes) {
            V a = vload(r0 + x), b = vload(r1 + x), c = vload(r2 + x);
            cswap(a, b);
            cswap(b, c);
            cswap(a, b);
            vstore(rank[0] + 1 + x, a);
            vstore(rank[1] + 1 + x, b);
            vstore(rank[2] + 1 + x, c);
        }
    } else {
        for (; x + kLanes <= w; x += kLanes) {
            V v[5];
            for (int i = 0; i < 5; ++i) v[i] = vload(rows[i] + x);
            cswap(v[0], v[1]); cswap(v[3], v[4]); cswap(v[2], v[4]);
            cswap(v[2], v[3]); cswap(v[1], v[4]); cswap(v[0], v[3]);
            cswap(v[0], v[2]); cswap(v[1], v[3]); cswap(v[1], v[2]);
            for (int i = 0; i < 5; ++i) vstore(rank[i] + 2 + x, v[i]);
        }
    }
    for (; x < w; ++x) {  // insertion sort of one column
        std::uint8_t v[5];
        for (int i = 0; i < k; ++i) {
            std::uint8_t t = rows[i][x];
            int j = i;
            for (; j > 0 && v[j - 1] > t; --j) v[j] = v[j - 1];
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
    for (x = 0; x < w; x += kLanes) {
        V m;
        if (k == 3) {
            const V lo = vmax(vmax(vload(rank[0] + x), vload(rank[0] + x + 1)), vload(rank[0] + x + 2));
            const V mid = med3(vload(rank[1] + x), vload(rank[1] + x + 1), vload(rank[1] + x + 2));
            const V hi = vmin(vmin(vload(rank[2] + x), vload(rank[2] + x + 1)), vload(rank[2] + x + 2));
            m = med3(lo, mid, hi);
        } else {
            V s5[5][5];
            for (int i = 0; i < 5; ++i)
                for (int j = 0; j < 5; ++j) s5[i][j] = vload(rank[i] + x + j);
            m = med25(s5[0], s5[1], s5[2], s5[3], s5[4]);
        }
        if (x + kLanes <= w) {
            vstore(out + x, m);
        } else {
            vstore(orow, m);
            std::memcpy(out + x, orow, static_cast<std::size_t>(w - x));
        }
    }
}
