// Gray-level co-occurrence matrices (GLCM) and their texture features.
//
// Pure C++17, no Python. The semantics are stated in python/medfuse/texture.py
// and mirrored by the NumPy twins in python/medfuse/reference/texture.py:
//
// * glcm: counts of (i, j) = (image[p], image[p + offset]) over every voxel
//   p whose neighbour p + offset lies inside the array, for each offset
//   (dz, dy, dx); 2D images are volumes of depth 1. With a mask, a pair
//   counts only when both voxels are in the mask. Output layout
//   (levels, levels, n_offsets), C order (the public (L, L, nd, na) array
//   with offset index k = d * na + a), uint32 counts or float64 fractions.
// * glcm_features: per direction, the scikit-image graycoprops properties
//   and the PyRadiomics GLCM features (except MCC, which needs eigenvalues
//   and is computed in NumPy).
#pragma once
#include <cstdint>

namespace medfuse {

enum class GlcmInput { u8, u16, u32, u64, i8, i16, i32, i64 };

struct GlcmJob {
    const void* image = nullptr;  // C-contiguous (depth, height, width)
    GlcmInput dtype = GlcmInput::u8;
    const std::uint8_t* mask = nullptr;  // optional, same shape, 0/1
    std::int64_t depth = 1, height = 0, width = 0;
    std::int64_t levels = 0;  // values must lie in [0, levels) (inside the mask)
    const std::int64_t* offsets = nullptr;  // n_offsets * 3: (dz, dy, dx)
    std::int64_t n_offsets = 0;
    bool symmetric = false;
    bool normed = false;
    std::uint32_t* out_counts = nullptr;  // (levels, levels, n_offsets) if !normed
    double* out_normed = nullptr;         // (levels, levels, n_offsets) if normed
};

struct GlcmStatus {
    std::int64_t out_of_range = 0;  // counted voxels with a value outside [0, levels)
    std::int64_t in_mask = 0;       // voxels in the mask (all voxels without one)
};

// Fills the job's output. Values outside [0, levels) inside the mask are
// counted in the status and nothing is written then (the caller raises).
GlcmStatus glcm(const GlcmJob& job, int threads);

// Number of per-direction values written by glcm_features.
constexpr int kGlcmSkimageProps = 10;  // contrast dissimilarity homogeneity ASM energy
                                       // correlation mean variance std entropy
constexpr int kGlcmRadiomics = 23;     // PyRadiomics features without MCC (order in texture.py)

struct GlcmFeatureJob {
    const void* P = nullptr;  // (levels, levels, n) C order
    bool is_u32 = true;       // uint32 counts, else float64 (finite, >= 0)
    std::int64_t levels = 0, n = 0;
    bool want_skimage = true;
    bool want_radiomics = true;
    bool want_entropy = true;  // skimage 'entropy' (one log per non-zero cell)
    double* out_skimage = nullptr;    // n * kGlcmSkimageProps
    double* out_radiomics = nullptr;  // n * kGlcmRadiomics (NaN rows for empty directions)
    double* out_totals = nullptr;     // n: sum of each matrix
    std::uint8_t* present = nullptr;  // levels: 1 if row i or column i is non-zero in some direction
};

void glcm_features(const GlcmFeatureJob& job, int threads);

}  // namespace medfuse
