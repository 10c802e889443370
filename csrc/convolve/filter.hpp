// Correlation with a dense kernel and separable filtering, 2D (y, x) and
// 3D (z, y, x): the core behind medfuse.convolve, sep_filter, gaussian,
// unsharp_mask and filter_bank.
//
// Pure C++17, no Python. Arrays are C-contiguous; a 2D image is a volume of
// depth 1. Semantics (stated in python/medfuse/convolve.py): correlation, the
// kernel's anchor at k // 2 on every axis (cv2's default anchor, also for
// even sizes), out-of-image samples from the border rule. Sums are formed in
// the compute type (float32 or float64); zero taps are skipped, as cv2 and
// scipy.ndimage do. Every output pixel is computed by the same operations
// whatever the band / thread split, so results do not depend on threads.
#pragma once
#include <cstdint>

#include "common/border.hpp"
#include <vector>

namespace medfuse {

enum class PixelType { u8, u16, i16, f32, f64 };

struct FilterJob {
    const void* in = nullptr;
    PixelType in_type = PixelType::f32;
    std::int64_t shape[3] = {1, 1, 1};  // (z, y, x); z = 1 for 2D
    void* out = nullptr;
    PixelType out_type = PixelType::f32;  // f32, f64 or in_type (rounded, saturated)
    bool f64 = false;                     // compute in float64 (else float32)
    Border border = Border::reflect101;
    double value = 0.0;  // constant border value
    int threads = 1;
    // Unsharp mask fused into a 2D separable blur: each blurred row (compute
    // type, the bits sep_filter would store) goes straight into
    // unsharp_combine's formula with the input row; `out` then has the input's
    // type and no blurred image is stored.
    bool unsharp = false;
    double amount = 0.0, threshold = 0.0;
};


// Dense kernel of shape kshape (z, y, x), C order.
void correlate(const FilterJob& job, const double* kernel, const std::int64_t kshape[3]);

// One 1D kernel per axis (z, y, x). A kernel equal to {1.0} skips its axis.
void sep_filter(const FilterJob& job, const std::vector<double> taps[3]);

// Unsharp-mask combine, elementwise in float64 (the twin's formula):
// d = x - blurred; o = |d| >= threshold ? x + amount * d : x (NaN d keeps x);
// integer T: o rounded half to even, NaN -> 0, clipped to T's range; float T:
// o rounded to T. B is float (blurred float32) or double.
template <class T, class B>
void unsharp_combine(const T* x, const B* blurred, std::int64_t n, double amount, double threshold, T* out,
                     int threads);

// ---- per-ISA entry points (filter_kernels.hpp compiled once per ISA) -------
// fir: out[i] = sum_j taps[j] * src[j][i] for i < n. With `symmetric` (K odd
// and taps[j] == taps[K-1-j]) mirrored pairs are added first.
// unsharp_span_<T>: unsharp_combine's formula over n elements (one span, no threads).
#define MEDFUSE_DECLARE_FILTER_ISA(ns)                                                     \
    namespace ns {                                                                         \
    void fir_f32(const float* const* src, const float* taps, int K, bool symmetric,        \
                 float* out, std::int64_t n);                                              \
    void fir_f64(const double* const* src, const double* taps, int K, bool symmetric,      \
                 double* out, std::int64_t n);                                             \
    void unsharp_span_u8(const std::uint8_t* x, const float* b, std::int64_t n, double a,  \
                         double t, std::uint8_t* o);                                       \
    void unsharp_span_u16(const std::uint16_t* x, const float* b, std::int64_t n,          \
                          double a, double t, std::uint16_t* o);                           \
    void unsharp_span_i16(const std::int16_t* x, const float* b, std::int64_t n, double a, \
                          double t, std::int16_t* o);                                      \
    void unsharp_span_f32(const float* x, const float* b, std::int64_t n, double a,        \
                          double t, float* o);                                             \
    void unsharp_span_f64(const double* x, const double* b, std::int64_t n, double a,      \
                          double t, double* o);                                            \
    }
MEDFUSE_DECLARE_FILTER_ISA(baseline)
MEDFUSE_DECLARE_FILTER_ISA(avx2)
MEDFUSE_DECLARE_FILTER_ISA(avx512)
#undef MEDFUSE_DECLARE_FILTER_ISA

}  // namespace medfuse
