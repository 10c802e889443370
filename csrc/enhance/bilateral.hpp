// Bilateral filter, 2D, uint8 and float32, with cv2.bilateralFilter's algorithm.
//
// Pure C++17, no Python. Circular window of `radius` (pixels at distance
// <= radius), reflect101 border (cv2's BORDER_DEFAULT), float32 weights:
// space weight exp(-r^2 / (2 sigma_space^2)); colour weight
// exp(-d^2 / (2 sigma_color^2)) of d = I(q) - I(p), computed per pair in
// float32 as 2^-((d * coeff)^2) with a polynomial (bilateral_kernels.hpp).
// cv2 looks the weights up in tables instead (256 entries for uint8, 4096
// interpolated bins over the range for float32): a gather per lookup; on the
// Zen 5 measured, the polynomial made the uint8 filter twice as fast and the
// float32 one five times; the results agree with cv2's to a few 1e-7. Per
// pixel, sums run over the window offsets in row-major order in float32
// (multiply then add, no FMA), so every SIMD path gives identical results.
#pragma once
#include <cstdint>

namespace medfuse {

void bilateral_u8(const std::uint8_t* img, std::int64_t h, std::int64_t w, int radius, double sigma_color,
                  double sigma_space, std::uint8_t* out, int threads);
void bilateral_f32(const float* img, std::int64_t h, std::int64_t w, int radius, double sigma_color,
                   double sigma_space, float* out, int threads);

// Row job shared by the per-ISA kernels (bilateral_kernels.hpp).
struct BilateralRows {
    const void* pad = nullptr;    // padded image, rows of `pstride` elements
    std::int64_t pstride = 0;
    std::int64_t w = 0;
    int radius = 0;
    int nk = 0;                   // window offsets
    const std::int32_t* ofs = nullptr;  // offset of each (relative to the window centre)
    const float* space = nullptr;       // space weight of each
    float coeff = 0.f;                  // colour weight 2^-((difference * coeff)^2)
    void* out = nullptr;                // output rows of `w` elements
};

#define MEDFUSE_DECLARE_ISA(ns)                                                          \
    namespace ns {                                                                       \
    void bilateral_u8_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1);  \
    void bilateral_f32_rows(const BilateralRows& job, std::int64_t y0, std::int64_t y1); \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
