// Connected-component labelling of 2D (y, x) and 3D (z, y, x) binary images.
//
// Pure C++17, no Python. The input is a C-contiguous byte mask (nonzero =
// foreground); a 2D image is a volume with depth 1. Labels are numbered
// 1..count in raster (C) order of each component's first voxel, which is
// scipy.ndimage.label's numbering; background is 0.
#pragma once
#include <cstdint>

namespace medfuse {

// `rank` selects the neighbourhood: two voxels are neighbours when their
// offset has every |d| <= 1 and at most `rank` nonzero components
// (2D: 1 -> 4-connectivity, 2 -> 8; 3D: 1 -> 6, 2 -> 18, 3 -> 26), the same
// as scipy.ndimage.generate_binary_structure(ndim, rank).
struct LabelJob {
    const std::uint8_t* mask = nullptr;
    std::int64_t depth = 1, height = 0, width = 0;
    int rank = 1;
    std::int32_t* out = nullptr;  // depth * height * width labels
};

// Returns the number of components. Throws std::overflow_error if it would
// exceed INT32_MAX and std::invalid_argument for a bad rank or shape.
std::int64_t label(const LabelJob& job, int threads);

// Binary hole filling: out[i] = 1 where mask[i] != 0 or where i lies in a
// background (mask == 0) component, under `rank` connectivity, that touches
// no first or last index of any of the `ndim` axes (2D: depth 1, ndim 2; a
// 3D image of depth 1 has all of its background on the border). The same
// result as scipy.ndimage.binary_fill_holes with
// generate_binary_structure(ndim, rank). `out` holds depth*height*width bytes.
void fill_holes(const std::uint8_t* mask, std::int64_t depth, std::int64_t height, std::int64_t width, int ndim,
                int rank, std::uint8_t* out, int threads);

}  // namespace medfuse
