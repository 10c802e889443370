// Median filter, 2D (y, x) and 3D (z, y, x), uint8 / uint16 / int16 / float32.
//
// Pure C++17, no Python. The input is C-contiguous; a 2D image is a volume of
// depth 1. Out-of-range neighbours follow `border` (reflect101 = scipy
// "mirror", replicate = scipy "nearest" / cv2.medianBlur). The window holds
// size[0] * size[1] * size[2] values (every size odd) and the result is the
// element of rank n / 2, exactly as scipy.ndimage.median_filter.
//
// Algorithms (chosen per call, same result for any choice and thread count):
//  * 2D 3x3 and 5x5 (every dtype): column-sorted min/max networks on
//    vectors (per-ISA, median_kernels.hpp);
//  * uint8 otherwise, 16-bit with windows > 49 values: a sliding two-level
//    histogram along x (cost O(window height * depth) per pixel, not the
//    window area);
//  * float32 and small 16-bit windows otherwise: gather + nth_element.
#pragma once
#include <cstdint>

namespace medfuse {

enum class MedianBorder : int { reflect101 = 0, replicate = 1 };

// shape/size: `ndim` entries (2 or 3). out: same shape as img.
template <class T>
void median_filter(const T* img, int ndim, const std::int64_t* shape, const std::int64_t* size,
                   MedianBorder border, T* out, int threads);

// ---- per-ISA entry points (median_kernels.hpp compiled once per ISA) -------
// One output row of a k x k median (k = 3 or 5) of a 2D image: rows[0..k)
// are the k source image rows it reads (vertical border already resolved),
// each `w` elements; lmap / rmap give the source column of the k/2 columns
// left of 0 and right of w - 1. `scratch` holds median_row_scratch(w)
// elements.
inline std::int64_t median_row_scratch(std::int64_t w) { return 6 * (w + 4 + 128); }
#define MEDFUSE_DECLARE_ROW(name, type)                                                          \
    void name(const type* const* rows, std::int64_t w, int k, const std::int64_t* lmap,        \
              const std::int64_t* rmap, type* out, type* scratch);
// Rows [y0, y1) of a k1 x k2 median of a 2D uint8 image (k1 <= 255) from
// its padded copy (rows of w + k2 - 1 values; padded row y + i is the
// source of window row i of output row y). `colhist` is scratch of
// (w + k2 - 1) * 256 bytes.
#define MEDFUSE_DECLARE_COLHIST                                                                    \
    void median_colhist_u8(const std::uint8_t* pad, std::int64_t w, std::int64_t k1, std::int64_t k2, \
                           std::int64_t y0, std::int64_t y1, std::uint8_t* out, std::uint8_t* colhist);
#define MEDFUSE_DECLARE_ISA(ns)                     \
    namespace ns {                                  \
    MEDFUSE_DECLARE_COLHIST                         \
    MEDFUSE_DECLARE_ROW(median_row_u8, std::uint8_t)   \
    MEDFUSE_DECLARE_ROW(median_row_u16, std::uint16_t) \
    MEDFUSE_DECLARE_ROW(median_row_i16, std::int16_t)  \
    MEDFUSE_DECLARE_ROW(median_row_f32, float)         \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA
#undef MEDFUSE_DECLARE_ROW
#undef MEDFUSE_DECLARE_COLHIST

}  // namespace medfuse
