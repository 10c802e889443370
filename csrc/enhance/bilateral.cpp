// Bilateral filter driver: padding, weight tables, threads (see bilateral.hpp).
#include "enhance/bilateral.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
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

template <class T>
std::vector<T> pad_reflect101(const T* img, i64 h, i64 w, int r) {
    const i64 ph = h + 2 * r, pw = w + 2 * r;
    std::vector<T> pad(static_cast<std::size_t>(ph * pw + 16));
    for (i64 y = 0; y < ph; ++y) {
        const T* src = img + reflect101(y - r, h) * w;
        T* dst = pad.data() + y * pw;
        for (i64 x = 0; x < r; ++x) dst[x] = src[reflect101(x - r, w)];
        std::memcpy(dst + r, src, static_cast<std::size_t>(w) * sizeof(T));
        for (i64 x = r + w; x < pw; ++x) dst[x] = src[reflect101(x - r, w)];
    }
    return pad;
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

bool use_avx2() {
#if defined(MEDFUSE_HAVE_AVX2)
    return active_isa() != Isa::baseline;
#else
    return false;
#endif
}

}  // namespace

void bilateral_u8(const std::uint8_t* img, std::int64_t h, std::int64_t w, int radius, double sigma_color,
                  double sigma_space, std::uint8_t* out, int threads) {
    if (h < 1 || w < 1 || radius < 1) throw std::invalid_argument("bilateral: bad shape or radius");
    const auto pad = pad_reflect101(img, h, w, radius);
    const i64 pstride = w + 2 * radius;
    std::vector<std::int32_t> ofs;
    std::vector<float> space;
    space_table(radius, sigma_space, pstride, ofs, space);
    std::vector<float> lut(256);
    const double cc = -0.5 / (sigma_color * sigma_color);
    for (int i = 0; i < 256; ++i) lut[static_cast<std::size_t>(i)] = static_cast<float>(std::exp(double(i) * i * cc));
    BilateralRows job;
    job.pad = pad.data();
    job.pstride = pstride;
    job.w = w;
    job.radius = radius;
    job.nk = static_cast<int>(ofs.size());
    job.ofs = ofs.data();
    job.space = space.data();
    job.lut = lut.data();
    job.out = out;
    const bool avx = use_avx2();
    run_rows(h, w, job.nk, threads, [&](i64 y0, i64 y1) {
#if defined(MEDFUSE_HAVE_AVX2)
        if (avx) return avx2::bilateral_u8_rows(job, y0, y1);
#endif
        (void)avx;
        baseline::bilateral_u8_rows(job, y0, y1);
    });
}

void bilateral_f32(const float* img, std::int64_t h, std::int64_t w, int radius, double sigma_color,
                   double sigma_space, float* out, int threads) {
    if (h < 1 || w < 1 || radius < 1) throw std::invalid_argument("bilateral: bad shape or radius");
    // One pass over the image refuses what the colour-weight table cannot
    // index (the kernels also clamp the table position, so nothing reads
    // outside it whatever reaches them).
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
    // A range so small that 4096 / range overflows float32 cannot index the
    // table either (cv2 4.x copied any image whose range was below FLT_EPSILON,
    // 1.2e-7; cv2 5 filters it, and so does medfuse, down to this limit).
    if (4096.0 / double(len) > double(FLT_MAX))
        throw std::invalid_argument("bilateral: the image's value range (max - min) is below 1.2e-35, too small for "
                                    "the colour-weight table; rescale it first");
    const auto pad = pad_reflect101(img, h, w, radius);
    const i64 pstride = w + 2 * radius;
    std::vector<std::int32_t> ofs;
    std::vector<float> space;
    space_table(radius, sigma_space, pstride, ofs, space);
    const int bins = 1 << 12;
    const float scale = static_cast<float>(bins) / len;
    std::vector<float> lut(static_cast<std::size_t>(bins + 2));
    const double cc = -0.5 / (sigma_color * sigma_color);
    float last = 1.f;
    for (int i = 0; i < bins + 2; ++i) {
        if (last > 0.f) {
            const double val = i / double(scale);
            lut[static_cast<std::size_t>(i)] = static_cast<float>(std::exp(val * val * cc));
            last = lut[static_cast<std::size_t>(i)];
        } else {
            lut[static_cast<std::size_t>(i)] = 0.f;
        }
    }
    BilateralRows job;
    job.pad = pad.data();
    job.pstride = pstride;
    job.w = w;
    job.radius = radius;
    job.nk = static_cast<int>(ofs.size());
    job.ofs = ofs.data();
    job.space = space.data();
    job.lut = lut.data();
    job.scale = scale;
    job.alpha_max = static_cast<float>(bins) + 0.5f;  // the table has bins + 2 entries
    job.out = out;
    const bool avx = use_avx2();
    run_rows(h, w, job.nk, threads, [&](i64 y0, i64 y1) {
#if defined(MEDFUSE_HAVE_AVX2)
        if (avx) return avx2::bilateral_f32_rows(job, y0, y1);
#endif
        (void)avx;
        baseline::bilateral_f32_rows(job, y0, y1);
    });
}

}  // namespace medfuse
