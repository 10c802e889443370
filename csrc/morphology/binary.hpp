// Binary erosion / dilation of 2D (y, x) and 3D (z, y, x) 0/1 byte images.
//
// Pure C++17, no Python. out[p] = AND (erosion) or OR (dilation) over the
// offsets o of in[p + o], with voxels outside the image reading as
// `border`. The caller passes the offsets already oriented (erosion: the
// structure's true elements minus its centre; dilation: centre minus them),
// so both are scipy.ndimage.binary_erosion / binary_dilation.
#pragma once
#include <cstdint>

namespace medfuse {

struct MorphJob {
    const std::uint8_t* in = nullptr;  // 0/1, C-contiguous
    std::int64_t depth = 1, height = 0, width = 0;
    const std::int64_t* offsets = nullptr;  // n_offsets triples (dz, dy, dx)
    std::int64_t n_offsets = 0;
    bool dilate = false;         // OR instead of AND
    std::uint8_t border = 0;     // value of voxels outside the image (0 or 1)
    std::int64_t iterations = 1;  // < 1: repeat until nothing changes
    std::uint8_t* out = nullptr;  // 0/1, same shape
};

// Throws std::invalid_argument on a bad job, std::bad_alloc if the padded
// scratch does not fit.
void binary_morph(const MorphJob& job, int threads);

// Row loops per ISA (binary_kernels.hpp): acc op= src over n bytes; output
// lines of the separable box pass along y/z; the pass along x over n bytes as
// one line (a band of rows; the driver fixes each row's end pixels).
#define MEDFUSE_DECLARE_ISA(ns)                                                                                  \
    namespace ns {                                                                                               \
    void op_row_u8(bool dilate, std::uint8_t* acc, const std::uint8_t* src, std::int64_t n);                     \
    void box_lines_u8(bool dilate, const std::uint8_t* base, std::int64_t stride, std::int64_t count,            \
                      std::int64_t i, std::int64_t r, std::int64_t n, bool kills, std::uint8_t* dst);            \
    void box_flat_u8(bool dilate, const std::uint8_t* in, std::uint8_t* out, std::int64_t n, std::int64_t r);     \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
