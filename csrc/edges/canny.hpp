// Canny edge detection and Sobel gradients, 2D (y, x) and 3D (z, y, x).
//
// Pure C++17, no Python. Arrays are C-contiguous; a 2D image is a volume
// with depth 1. The semantics (stated in python/medfuse/edges.py) are the
// same as the NumPy twins in python/medfuse/reference/edges.py: integer
// inputs in 2D use exact integer arithmetic; everything else float64 in a
// fixed operation order, so results are bit-identical to the twins.
#pragma once
#include <cstdint>
#include <vector>

#include "common/status.hpp"

namespace medfuse {

enum class DType { u8, u16, i16, f32, f64 };

struct CannyJob {
    const void* img = nullptr;
    DType dtype = DType::u8;
    int ndim = 2;
    std::int64_t depth = 1, height = 0, width = 0;
    int aperture = 3;
    bool l2 = false;
    bool exact_int = false;  // 2D 8/16-bit: integer gradients and magnitudes
    bool round16 = false;    // uint8 aperture 7: round-half-even(S / 16), as cv2
    bool f32_in_f64 = false;  // 2D float32 with |values| > 2^100: float64 arithmetic
    // 2D exact 16-bit data whose range (max - min) keeps every gradient within
    // +-27145 (aperture 3: range <= 6786; 5: <= 565): int16 gradients and int
    // magnitudes and direction test, as the uint8 path (canny.cpp sets it).
    bool narrow16 = false;
    // canny.cpp: > 0 to decide narrow16 per band, from the range of the rows
    // that band's gradients read (the largest range that allows it).
    std::int64_t narrow16_limit = 0;
    double low_cmp = 0.0;    // candidate if magnitude > low_cmp (squared for L2)
    double high_cmp = 0.0;   // strong if magnitude > high_cmp
    double weights[3] = {1.0, 1.0, 1.0};  // per axis (z, y, x)
    // 2D Gaussian pre-smoothing fused into the band loop (float path only):
    // per-axis taps (z, y, x); length 1 means the axis is not smoothed.
    const double* smooth_taps[3] = {nullptr, nullptr, nullptr};
    int smooth_len[3] = {1, 1, 1};
    std::uint8_t* out = nullptr;
    // Where the kernels write the 0/1/255 map: element (z, y, x) is at
    // map + z * map_slice + y * map_row + x (a zero-padded buffer, so that
    // hysteresis needs no bounds checks).
    std::uint8_t* map = nullptr;
    std::int64_t map_row = 0, map_slice = 0;
};

// Per-band scratch: kScratchBuffers buffers of scratch_elems(width) 8-byte
// elements each, 64-byte aligned, carved by the caller.
constexpr int kScratchBuffers = 24;

// Canny over the whole job. `smooth` holds per-axis (z, y, x) Gaussian taps
// (empty, or one vector per axis; a single tap means "not smoothed").
Status canny(const CannyJob& job, const std::vector<std::vector<double>>& smooth, int threads);

// Sobel derivative along every axis. `out[a]` receives d/d(axis a), same
// shape as the input. Integer inputs accumulate exactly in the output type
// (int32, or int64 for 3D 16-bit aperture 7); float32 inputs accumulate in
// float32 (in float64 when some |x| > 2^100), float64 inputs in float64, in
// the twin's order. border: 0 replicate, 1 reflect101. The loops
// stream through per-thread ring buffers (sobel_kernels.hpp).
template <class In, class Out>
Status sobel(const In* img, int ndim, const std::int64_t* shape, int aperture, int border,
             Out* const* out, int threads);

// Where (byte offset modulo 4 KiB) to place a 2D output whose rows are as long
// in bytes as the input's (row_bytes): in the middle of the widest gap, modulo
// 4 KiB, between the input rows within 8 rows of one another, moved down to put
// the element at lead_bytes (the first column of the vector loops) on a 64-byte
// boundary. A load whose address matches an earlier, still pending store's in
// the low 12 bits waits for it (4 KiB aliasing): the Sobel passes load input
// rows a few rows below the output rows they have just stored, and NumPy's
// allocations of one size tend to fall at the same offsets (measured on Zen 4,
// 512^2 float32 aperture 3: 120 us with the outputs 16 bytes from the input
// modulo 4 KiB, 75 us 1 KiB away, 69 us with the stores aligned as well).
std::int64_t sobel_out_phase(std::uintptr_t in_addr, std::int64_t row_bytes, std::int64_t lead_bytes);

// Sobel job for the per-ISA loops (sobel_kernels.hpp): which input and output
// types, the shape (a 2D image has depth 1), out[a] = d/d(axis a).
enum class SobelOut { i32, i64, f32, f64 };
struct SobelJob {
    const void* img = nullptr;
    DType dtype = DType::u8;
    SobelOut out_kind = SobelOut::i32;
    int ndim = 2;
    std::int64_t depth = 1, height = 0, width = 0;
    int aperture = 3;
    int border = 1;  // 0 replicate, 1 reflect101
    bool narrow = false;  // float32 input summed in float32 (|x| <= 2^100), else in float64
    void* out[3] = {nullptr, nullptr, nullptr};
};

// ---- per-ISA entry points (canny_kernels.hpp compiled once per ISA) --------
#define MEDFUSE_DECLARE_ISA(ns)                                                          \
    namespace ns {                                                                       \
    void canny2d_band(const CannyJob& job, std::int64_t r0, std::int64_t r1,             \
                      void* const* bufs);                                                \
    void canny3d_slab(const CannyJob& job, std::int64_t z0, std::int64_t z1,             \
                      void* const* bufs);                                                \
    std::uint64_t sobel_part(const SobelJob& job, std::int64_t b, std::int64_t e);       \
    /* largest |x| bit pattern of x[b, e) (avx2 / avx512 only; sobel_kernels.hpp) */     \
    std::uint64_t float_abs_bits_max(const float* x, std::int64_t b, std::int64_t e);    \
    std::uint64_t float_abs_bits_max(const double* x, std::int64_t b, std::int64_t e);   \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
