// Sobel inner loops, compiled once per ISA (included inside the namespace
// medfuse::<isa> by canny.cpp / canny_avx2.cpp / canny_avx512.cpp after
// <algorithm>, <cstdint>, <vector>, common/border.hpp and
// common/large_buffer.hpp; see canny.hpp for the job).
//
// Separable passes in the twin's order, x first, then y, then z: each pass
// sums taps[k] * v[i + k - r] from zero, k ascending, zero taps skipped
// (python/medfuse/reference/edges.py), so float results are bit-identical to
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

// One output value: sum_j tap_j * v(j) from zero, j ascending, zero taps
// skipped (D: derivative taps, else smoothing taps).
template <int K, bool D, class Acc, class F>
inline Acc sobel_sum(F&& v) {
    Acc a = Acc(0);
#pragma GCC unroll 7
    for (int j = 0; j < K; ++j) {
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

// Both x passes of a padded row in one loop: hs = smoothing, hd = derivative.
template <int K, class Acc>
inline void sobel_xpass2(const Acc* __restrict src, std::int64_t w, Acc* __restrict hs, Acc* __restrict hd) {
    for (std::int64_t x = 0; x < w; ++x) {
        hs[x] = sobel_sum<K, false, Acc>([&](int j) { return src[x + j]; });
        hd[x] = sobel_sum<K, true, Acc>([&](int j) { return src[x + j]; });
    }
}

// Both y passes of the 2D operator in one loop: gy = derivative of the hs
// rows, gx = smoothing of the hd rows.
template <int K, class Acc, class Out>
inline void sobel_combine2(const Acc* const* hs, const Acc* const* hd, std::int64_t w, Out* __restrict gy,
                           Out* __restrict gx) {
    const Acc* a[K];
    const Acc* b[K];
    for (int j = 0; j < K; ++j) a[j] = hs[j], b[j] = hd[j];
    for (std::int64_t x = 0; x < w; ++x) {
        gy[x] = static_cast<Out>(sobel_sum<K, true, Acc>([&](int j) { return a[j][x]; }));
        gx[x] = static_cast<Out>(sobel_sum<K, false, Acc>([&](int j) { return b[j][x]; }));
    }
}

// Row `src` (w values) as Acc with r border columns each side, into pad (w + 2r).
template <class In, class Acc>
inline void sobel_pad_row(const In* src, std::int64_t w, int r, int border, Acc* pad) {
    for (int i = 0; i < r; ++i) pad[i] = static_cast<Acc>(src[sobel_border(i - r, w, border)]);
    for (std::int64_t x = 0; x < w; ++x) pad[r + x] = static_cast<Acc>(src[x]);
    for (int i = 0; i < r; ++i) pad[r + w + i] = static_cast<Acc>(src[sobel_border(w + i, w, border)]);
}

// 2D: output rows [y0, y1) of d/dy (out[0]) and d/dx (out[1]).
template <int k, class In, class Acc, class Out>
void sobel2d_rows_t(const SobelJob& job, std::int64_t y0, std::int64_t y1) {
    using i64 = std::int64_t;
    constexpr int r = k / 2;
    const i64 H = job.height, W = job.width;
    const In* img = static_cast<const In*>(job.img);
    Out* gy = static_cast<Out*>(job.out[0]);
    Out* gx = static_cast<Out*>(job.out[1]);
    // ring slot j: the x-smoothed (hs) and x-derivative (hd) values of one input row
    std::vector<Acc> buf(static_cast<std::size_t>((2 * k + 1) * W + 2 * r));
    Acc* hs = buf.data();
    Acc* hd = hs + k * W;
    Acc* pad = hd + k * W;
    const Acc* rows[7];
    const Acc* rows2[7];
    for (i64 t = y0 - r; t < y1 + r; ++t) {
        const i64 slot = (t - (y0 - r)) % k;
        sobel_pad_row(img + sobel_border(t, H, job.border) * W, W, r, job.border, pad);
        sobel_xpass2<k>(pad, W, hs + slot * W, hd + slot * W);
        const i64 y = t - r;  // the output row whose window ends at input row t
        if (y < y0) continue;
        for (int j = 0; j < k; ++j) {
            rows[j] = hs + ((y - y0 + j) % k) * W;
            rows2[j] = hd + ((y - y0 + j) % k) * W;
        }
        sobel_combine2<k>(rows, rows2, W, gy + y * W, gx + y * W);
    }
}

// 3D: output slices [z0, z1) of d/dz (out[0]), d/dy (out[1]), d/dx (out[2]).
template <int k, class In, class Acc, class Out>
void sobel3d_slices_t(const SobelJob& job, std::int64_t z0, std::int64_t z1) {
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
    for (i64 t = z0 - r; t < z1 + r; ++t) {
        const i64 slot = (t - (z0 - r)) % k;
        const In* slice = img + sobel_border(t, Z, job.border) * P;
        for (i64 y = 0; y < H; ++y) {
            sobel_pad_row(slice + y * W, W, r, job.border, pad);
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
}

template <class In, class Acc, class Out>
void sobel_k(const SobelJob& job, std::int64_t b, std::int64_t e) {
    if (job.ndim == 2) {
        if (job.aperture == 3) sobel2d_rows_t<3, In, Acc, Out>(job, b, e);
        else if (job.aperture == 5) sobel2d_rows_t<5, In, Acc, Out>(job, b, e);
        else sobel2d_rows_t<7, In, Acc, Out>(job, b, e);
    } else {
        if (job.aperture == 3) sobel3d_slices_t<3, In, Acc, Out>(job, b, e);
        else if (job.aperture == 5) sobel3d_slices_t<5, In, Acc, Out>(job, b, e);
        else sobel3d_slices_t<7, In, Acc, Out>(job, b, e);
    }
}

}  // namespace

// Type dispatch (the combinations canny.cpp's sobel<In, Out> instantiates).
void sobel_part(const SobelJob& job, std::int64_t b, std::int64_t e) {
#define MEDFUSE_SOBEL_CASE(DT, OK, In, Acc, Out)                                 \
    if (job.dtype == DType::DT && job.out_kind == OK) {                          \
        sobel_k<In, Acc, Out>(job, b, e);                                        \
        return;                                                                  \
    }
    MEDFUSE_SOBEL_CASE(u8, SobelOut::i32, std::uint8_t, std::int32_t, std::int32_t)
    MEDFUSE_SOBEL_CASE(u16, SobelOut::i32, std::uint16_t, std::int32_t, std::int32_t)
    MEDFUSE_SOBEL_CASE(i16, SobelOut::i32, std::int16_t, std::int32_t, std::int32_t)
    MEDFUSE_SOBEL_CASE(u16, SobelOut::i64, std::uint16_t, std::int64_t, std::int64_t)
    MEDFUSE_SOBEL_CASE(i16, SobelOut::i64, std::int16_t, std::int64_t, std::int64_t)
    if (job.dtype == DType::f32 && job.out_kind == SobelOut::f32 && job.narrow) {
        sobel_k<float, float, float>(job, b, e);
        return;
    }
    MEDFUSE_SOBEL_CASE(f32, SobelOut::f32, float, double, float)
    MEDFUSE_SOBEL_CASE(f64, SobelOut::f64, double, double, double)
#undef MEDFUSE_SOBEL_CASE
}
