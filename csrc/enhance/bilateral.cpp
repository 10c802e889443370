// Bilateral filter driver: padding, weight tables, threads (see bilateral.hpp).
#include "enhance/bilateral.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "common/border.hpp"
#include "common/cpu.hpp"
#include "common/checked_simd.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "enhance/bilateral_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;

i64 reflect101(i64 i, i64 n) { return border_index(i, n, Border::reflect101); }

// Rows y0 - r .. y1 + r - 1 of the image with reflect101 borders (columns
// too), into dst: (y1 - y0 + 2r) rows of w + 2r elements, then 16 zeros (the
// vector loops may read past the last row's end).
template <class T>
void pad_rows_reflect101(const T* img, i64 h, i64 w, int r, i64 y0, i64 y1, T* dst) {
    const i64 pw = w + 2 * r, rows = y1 - y0 + 2 * r;
    for (i64 y = 0; y < rows; ++y) {
        const T* src = img + reflect101(y0 + y - r, h) * w;
        T* d = dst + y * pw;
        for (i64 x = 0; x < r; ++x) d[x] = src[reflect101(x - r, w)];
        std::memcpy(d + r, src, static_cast<std::size_t>(w) * sizeof(T));
        for (i64 x = r + w; x < pw; ++x) d[x] = src[reflect101(x - r, w)];
    }
    std::memset(static_cast<void*>(dst + rows * pw), 0, 16 * sizeof(T));
}

// Per-thread scratch kept between calls: a band's padded rows (a whole-image
// padded copy was a serial first-touch of fresh pages on every call: 4-16 MB
// for a 2048^2 image, 1000-4000 page faults, measured, and the 2-thread
// speed-up suffered most).
template <class T>
T* band_scratch(std::size_t n) {
    thread_local std::vector<unsigned char> buf;
    const std::size_t bytes = n * sizeof(T) + 64;
    if (buf.size() < bytes) buf.assign(bytes, 0);
    auto p = reinterpret_cast<std::uintptr_t>(buf.data());
    return reinterpret_cast<T*>((p + 63) & ~static_cast<std::uintptr_t>(63));
}

// Window offsets (row-major, pixels within distance radius) and space weights.
void space_table(int radius, double sigma_space, i64 pstride, std::vector<std::int32_t>& ofs,
                 std::vector<float>& space) {
    const double coeff = -0.5 / (sigma_space * sigma_space);
    for (int i = -radius; i <= radius; ++i)
        for (int j = -radius; j <= radius; ++j) {
            const double r = std::sqrt(double(i) * i + double(j) * j);
            if (r > radius) continue;
            space.push_back(static_cast<float>(std::exp(r * r * coeff)));
            ofs.push_back(static_cast<std::int32_t>(i * pstride + j));
        }
}

template <class Fn>
void run_rows(i64 h, i64 w, int nk, int threads, Fn&& fn) {
    // Bands sized by the work (never by the thread count).
    const i64 per_row = std::max<i64>(1, w * nk);
    const i64 band = std::max<i64>(1, (i64(1) << 20) / per_row);
    parallel_for((h + band - 1) / band, threads, [&](i64 t) { fn(t * band, std::min(h, (t + 1) * band)); });
}

// The colour weight is 2^-((d * coeff)^2) = exp(-d^2 / (2 sigma^2)); a
// coefficient beyond float32 (sigma below ~5e-39) is clamped, never infinite.
float color_coeff(double sigma_color) {
    const double coeff = 0.8493218002880191 / sigma_color;  // sqrt(log2(e) / 2), the twin's literal
    return coeff < double(FLT_MAX) ? static_cast<float>(coeff) : FLT_MAX;
}

using RowsFn = void (*)(const BilateralRows&, i64, i64);

// The active ISA's row loops for uint8 (u8) or float32.
RowsFn rows_fn(bool u8) {
    const Isa isa = active_isa();
#if defined(MEDFUSE_HAVE_AVX512)
    if (isa == Isa::avx512) return u8 ? avx512::bilateral_u8_rows : avx512::bilateral_f32_rows;
#endif
#if defined(MEDFUSE_HAVE_AVX2)
    if (isa != Isa::baseline) return u8 ? avx2::bilateral_u8_rows : avx2::bilateral_f32_rows;
#endif
    (void)isa;
    return u8 ? baseline::bilateral_u8_rows : baseline::bilateral_f32_rows;
}

// Builds the window tables and runs the rows in bands, each band from its
// own padded copy of the rows it reads.
template <class T>
void run_filter(const T* img, i64 h, i64 w, int radius, double sigma_color, double sigma_space, T* out,
                int threads) {
    const i64 pstride = w + 2 * radius;
    std::vector<std::int32_t> ofs;
    std::vector<float> space;
    space_table(radius, sigma_space, pstride, ofs, space);
    BilateralRows job;
    job.pstride = pstride;
    job.w = w;
    job.radius = radius;
    job.nk = static_cast<int>(ofs.size());
    job.ofs = ofs.data();
    job.space = space.data();
    job.coeff = color_coeff(sigma_color);
    const RowsFn fn = rows_fn(std::is_same<T, std::uint8_t>::value);
    run_rows(h, w, job.nk, threads, [&](i64 y0, i64 y1) {
        T* pad = band_scratch<T>(static_cast<std::size_t>((y1 - y0 + 2 * radius) * pstride + 16));
        pad_rows_reflect101(img, h, w, radius, y0, y1, pad);
        BilateralRows band = job;
        band.pad = pad;
        band.out = out + y0 * w;
        fn(band, 0, y1 - y0);
    });
}

}  // namespace

void bilateral_u8(const std::uint8_t* img, std::int64_t h, std::int64_t w, int radius, double sigma_color,
                  double sigma_space, std::uint8_t* out, int threads) {
    if (h < 1 || w < 1 || radius < 1) throw std::invalid_argument("bilateral: bad shape or radius");
    run_filter(img, h, w, radius, sigma_color, sigma_space, out, threads);
}

void bilateral_f32(const float* img, std::int64_t h, std::int64_t w, int radius, double sigma_color,
                   double sigma_space, float* out, int threads) {
    if (h < 1 || w < 1 || radius < 1) throw std::invalid_argument("bilateral: bad shape or radius");
    // One pass over the image refuses non-finite values and a range that
    // overflows float32 (the documented contract; the kernels themselves
    // would give such differences the weight 2^-125 p).
    float lo = img[0], hi = img[0];
    for (i64 i = 0; i < h * w; ++i) {
        const float v = img[i];
        if (!std::isfinite(v)) throw std::invalid_argument("image contains NaN or infinity");
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    const float len = static_cast<float>(double(hi) - double(lo));
    if (!std::isfinite(len))
        throw std::invalid_argument("bilateral: the image's value range (max - min) overflows float32; rescale it first");
    if (lo == hi) {  // constant image: every weighted mean is the value itself
        std::memcpy(out, img, static_cast<std::size_t>(h * w) * sizeof(float));
        return;
    }
    run_filter(img, h, w, radius, sigma_color, sigma_space, out, threads);
}

}  // namespace medfuse
