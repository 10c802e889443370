// Non-local means driver: padding, dispatch, threads (see nlm.hpp).
#include "denoise/nlm.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "common/avx512_compat.hpp"
#include "common/border.hpp"
#include "common/cpu.hpp"
#include "common/checked_simd.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "denoise/nlm_kernels.hpp"
}  // namespace baseline

namespace {

using i64 = std::int64_t;
using BandFn = void (*)(const NlmJob&, i64, i64);

// The image as float32 (uint8 values are exact), padded by r on every side.
template <class T>
std::vector<float> pad_reflect101(const T* img, i64 h, i64 w, int r) {
    const i64 ph = h + 2 * r, pw = w + 2 * r;
    std::vector<float> pad(static_cast<std::size_t>(ph * pw));
    for (i64 y = 0; y < ph; ++y) {
        const T* src = img + border_index(y - r, h, Border::reflect101) * w;
        float* dst = pad.data() + y * pw;
        for (i64 x = 0; x < pw; ++x) dst[x] = static_cast<float>(src[border_index(x - r, w, Border::reflect101)]);
    }
    return pad;
}

template <class T>
BandFn band_fn() {
    const bool u8 = std::is_same<T, std::uint8_t>::value;
    switch (active_isa()) {
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return u8 ? &avx512::nlm_u8_band : &avx512::nlm_f32_band;
#endif
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return u8 ? &avx2::nlm_u8_band : &avx2::nlm_f32_band;
#endif
        default:
            return u8 ? &baseline::nlm_u8_band : &baseline::nlm_f32_band;
    }
}

template <class T>
void nlm_impl(const T* img, i64 h, i64 w, int pr, int sr, const float* lut, int bins, float scale, T* out,
              int threads) {
    if (h < 1 || w < 1 || pr < 0 || sr < 0 || bins < 1) throw std::invalid_argument("nlm: bad shape or radius");
    const int R = pr + sr;
    const auto pad = pad_reflect101(img, h, w, R);
    NlmJob job;
    job.pad = pad.data();
    job.pstride = w + 2 * R;
    job.w = w;
    job.pr = pr;
    job.sr = sr;
    job.lut = lut;
    job.bins = bins;
    job.scale = scale;
    job.out = out;
    const BandFn fn = band_fn<T>();
    // Bands of 48 rows: every pixel's result is computed the same way in any
    // band, so the split never changes the output.
    const i64 band = 48;
    parallel_for((h + band - 1) / band, threads, [&](i64 t) { fn(job, t * band, std::min(h, (t + 1) * band)); });
}

}  // namespace

void nlm_u8(const std::uint8_t* img, std::int64_t h, std::int64_t w, int patch_radius, int search_radius,
            const float* lut, int bins, float scale, std::uint8_t* out, int threads) {
    nlm_impl(img, h, w, patch_radius, search_radius, lut, bins, scale, out, threads);
}

void nlm_f32(const float* img, std::int64_t h, std::int64_t w, int patch_radius, int search_radius,
             const float* lut, int bins, float scale, float* out, int threads) {
    nlm_impl(img, h, w, patch_radius, search_radius, lut, bins, scale, out, threads);
}

}  // namespace medfuse
