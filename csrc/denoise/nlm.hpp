// Non-local means denoising, 2D, uint8 and float32 (pixelwise, one channel).
//
// Pure C++17, no Python. For every pixel p and every offset o of the
// (2*sr+1)^2 search window, the patch distance is the sum of squared
// differences between the (2*pr+1)^2 patches around p and p+o, reflect101
// border. Its weight comes from a lookup table built by the caller (the
// Python plan, shared with the NumPy twin):
//     idx = (int) min(ssd * scale, bins),   weight = lut[idx],  lut[bins] == 0.
// out(p) = sum_o weight * I(p+o) / sum_o weight.
//
// Symmetric offsets: the distance of the pair (p, p+d) is also the one of
// (p+d, p) for the offset -d, so the kernel computes the weight map W_d of
// half the offsets only (d = (0, dx > 0) and (dy > 0, any dx)) and adds, to
// every pixel p, W_d(p-d) * I(p-d) and W_d(p) * I(p+d).
//
// Arithmetic, fixed so that every SIMD path and thread count agree bit for
// bit (and with the twin): uint8 squared differences and patch sums are
// integers below 2^24, exact in float32 (running sums, any order); float32
// squares and sums in float32, the vertical sum over the patch rows first
// (top to bottom), then the horizontal one (left to right), no FMA. Every
// pixel's weights and weighted values are accumulated in float32 in one
// order: first d = 0 (weight lut[0]), then for each half offset in row-major
// order (dy = 0..sr, dx = 1..sr when dy = 0, else -sr..sr) the -d term, then
// the +d term. uint8 output is rounded half to even and clipped.
#pragma once
#include <cstdint>

namespace medfuse {

void nlm_u8(const std::uint8_t* img, std::int64_t h, std::int64_t w, int patch_radius, int search_radius,
            const float* lut, int bins, float scale, std::uint8_t* out, int threads);
void nlm_f32(const float* img, std::int64_t h, std::int64_t w, int patch_radius, int search_radius,
             const float* lut, int bins, float scale, float* out, int threads);

// Band job shared by the per-ISA kernels (nlm_kernels.hpp).
struct NlmJob {
    const float* pad = nullptr;  // image as float32, padded by pr + sr on every side
    std::int64_t pstride = 0;   // padded row length
    std::int64_t w = 0;
    int pr = 0;  // patch radius
    int sr = 0;  // search radius
    const float* lut = nullptr;
    int bins = 0;
    float scale = 0.f;
    void* out = nullptr;
};

#define MEDFUSE_DECLARE_ISA(ns)                                                   \
    namespace ns {                                                                \
    void nlm_u8_band(const NlmJob& job, std::int64_t y0, std::int64_t y1);        \
    void nlm_f32_band(const NlmJob& job, std::int64_t y0, std::int64_t y1);       \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
