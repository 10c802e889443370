// Gradients of the CNN layer y = W * x + b (NCHW, as torch.nn.functional.conv2d:
// cross-correlation, zero padding, stride, dilation, groups), and a direct
// float64 forward pass (the float32 forward is the packed GEMM of conv2d.hpp).
//
// Pure C++17, no Python. Given gy = dL/dy:
//   gx[n, c, hi, wi] = sum over (o, ky, kx, ho, wo) hitting (hi, wi) of w[o, c, ky, kx] gy[n, o, ho, wo]
//   gw[o, c, ky, kx] = sum over (n, ho, wo) of gy[n, o, ho, wo] x[n, c, hi, wi]
//   gb[o]            = sum over (n, ho, wo) of gy[n, o, ho, wo]
// Work split: gx by (image, group) (each task owns a disjoint slice of gx),
// gw/gb by blocks of 8 output channels (each task owns its rows of gw). The
// order of every sum is fixed by the shapes alone, so results are identical
// for any thread count. The inner loops are written for the compiler's
// vectorizer and compiled once per ISA (conv2d_backward_kernels.hpp): grad
// input forms im2col-gradient rows with a 4-tap x 16-pixel register tile
// summed over output channels, then scatter-adds them; grad weight packs
// the im2col rows of one (image, input channel) and takes 16-lane dot
// products over all output pixels, 4 output channels per pass.
// float32 grad weight on avx2 / avx512 (conv2d_backward_f32): the
// channels-last tiles below from 5 (avx2: 4) input channels per group on;
// fewer, with horizontal stride 1 or 2: the direct lane-sum kernels
// (conv2d_grad_weight_vec: avx512 16 lanes, avx2 8 lanes, wo >= 12 / 8);
// otherwise the im2col GEMM (conv2d.hpp).
#pragma once
#include <cstdint>
#include <vector>

namespace medfuse {

template <class T>
struct Conv2dGradJob {
    const T* x = nullptr;   // (n, c, h, w)
    const T* w = nullptr;   // (co, c / groups, kh, kw)
    const T* gy = nullptr;  // (n, co, ho, wo); for the forward: the bias (co) or null
    T* gx = nullptr;        // (n, c, h, w) or null; for the forward: y (n, co, ho, wo)
    T* gw = nullptr;        // (co, c / groups, kh, kw) or null
    T* gb = nullptr;        // (co) or null
    std::int64_t n = 0, c = 0, h = 0, wd = 0;
    std::int64_t co = 0, kh = 0, kw = 0;
    std::int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    std::int64_t groups = 1;
    std::int64_t ho = 0, wo = 0;
};

void conv2d_backward_f32(const Conv2dGradJob<float>& job, int threads);
void conv2d_backward_f64(const Conv2dGradJob<double>& job, int threads);
// Direct forward in float64: y = job.gx, bias = job.gy (may be null).
void conv2d_forward_f64(const Conv2dGradJob<double>& job, int threads);

namespace conv2d_bwd_detail {
constexpr int kLanes = 16;    // independent partial sums per dot product
constexpr int kOcBlock = 8;   // output channels per grad-weight task
constexpr std::int64_t kRowChunk = 1024;  // output pixels per grad-input chunk (whole rows)
constexpr int kGwOc = 8;   // output channels per avx512 grad-weight register tile (zmm or ymm)
constexpr int kGwOc2 = 4;  // output channels per avx2 grad-weight register tile
}  // namespace conv2d_bwd_detail

// ---- per-ISA entry points (conv2d_backward_kernels.hpp compiled per ISA) ----
#define MEDFUSE_DECLARE_ISA(ns)                                                                       \
    namespace ns {                                                                                    \
    void conv2d_grad_input(const Conv2dGradJob<float>& job, std::int64_t img, std::int64_t g, float* tmp);   \
    void conv2d_grad_input(const Conv2dGradJob<double>& job, std::int64_t img, std::int64_t g, double* tmp); \
    void conv2d_grad_weight(const Conv2dGradJob<float>& job, std::int64_t o0, std::int64_t o1, float* acc);  \
    void conv2d_grad_weight(const Conv2dGradJob<double>& job, std::int64_t o0, std::int64_t o1, double* acc); \
    void conv2d_forward_direct(const Conv2dGradJob<double>& job, std::int64_t img, std::int64_t o);    \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

// avx512, float32, horizontal stride 1 or 2: gw[o0..o1, :, :, :] of group g
// (o relative to the group, o1 - o0 <= kGwOc) straight from x and gy, no
// im2col matrix: 16-lane partial sums over (image, output row, 16 output
// pixels) in that order, each reduced pairwise 16 -> 1 at the end.
namespace avx512 {
void conv2d_grad_weight_vec(const Conv2dGradJob<float>& job, std::int64_t g, std::int64_t o0, std::int64_t o1);
}
// avx2 / avx512, float32, at least 5 (avx2: 4) input channels per group (conv2d_backward_kernels.hpp):
// gw[o0..o1, block cb of `lanes` input channels, :, :] of group g from a padded, blocked
// channels-last copy of the group's x (conv2d_grad_weight_cl_pack: image n at
// xcl + n * cblocks * (H + 2 ph) * (W + 2 pw) * lanes, layout [cb][hp][wp][lane]),
// tiles of OB output channels x 3 taps x `lanes` input channels summed over the output
// pixels in order, no lane sums. lanes: 8 (avx2, OB = kGwOc2; avx512 in ymm, OB = kGwOc)
// or 16 (avx512 only, OB = kGwOc).
namespace avx2 {
// avx2, float32, horizontal stride 1 or 2: as avx512::conv2d_grad_weight_vec
// with 8-lane partial sums over (image, output row, 8 output pixels) and
// kGwOc2 output channels per task, each reduced pairwise 8 -> 1 at the end.
void conv2d_grad_weight_vec(const Conv2dGradJob<float>& job, std::int64_t g, std::int64_t o0, std::int64_t o1);
void conv2d_grad_weight_cl(const Conv2dGradJob<float>& job, const float* xcl, std::int64_t g, std::int64_t cb,
                           std::int64_t o0, std::int64_t o1, int lanes);
}
namespace avx512 {
void conv2d_grad_weight_cl(const Conv2dGradJob<float>& job, const float* xcl, std::int64_t g, std::int64_t cb,
                           std::int64_t o0, std::int64_t o1, int lanes);
}
// conv2d_grad_weight_cl_pack (per ISA): the blocked channels-last copy of image n of
// group g (zeros in the padding and in channels cg..cblocks * lanes - 1).
namespace avx2 {
void conv2d_grad_weight_cl_pack(const Conv2dGradJob<float>& job, std::int64_t g, std::int64_t n, std::int64_t lanes,
                                float* xcl);
}
namespace avx512 {
void conv2d_grad_weight_cl_pack(const Conv2dGradJob<float>& job, std::int64_t g, std::int64_t n, std::int64_t lanes,
                                float* xcl);
}

// avx2 / avx512, float32, stride > 1 (conv2d_cvec_kernels.hpp): the grad input
// by phases on the forward's channel-vector tiles. Phase (rh, rw) holds the
// input pixels (rh + sh a, rw + sw b); they receive gradient through the taps
// ky with (rh + ph - ky dh) % sh == 0 (descending ky) and kx likewise: a
// stride-1 correlation of grad_out, whose tap (t, u) for pixel (a, b) reads
// grad_out row a + eh + t ddh, column b + ew + u ddw.
struct CvecGradPhase {
    const float* apack = nullptr;      // per group: panels of K x 8 gx channels, K = cog * nkh * nkw in order
                                       // (grad_out channel, t, u); zeros past the group's channels
    std::int64_t group_stride = 0;     // floats between the groups' panels
    std::int64_t nkh = 0, nkw = 0;     // taps (either 0: the phase gets no gradient)
    std::int64_t eh = 0, ew = 0, ddh = 1, ddw = 1;
    std::int64_t ncols = 0;            // phase pixels per input row
};
struct CvecGradPlan {
    std::vector<CvecGradPhase> phases;  // [rh * sw + rw]
    std::int64_t c_lo = 0, c_hi = -1;   // grad_out columns read by any phase (may lie outside grad_out)
};
// Input rows [hi0, hi1) of image img, group g (all channels of the group).
namespace avx2 {
void conv2d_cvec_grad_input(const Conv2dGradJob<float>& job, const CvecGradPlan& plan, std::int64_t img,
                            std::int64_t g, std::int64_t hi0, std::int64_t hi1);
}
namespace avx512 {
void conv2d_cvec_grad_input(const Conv2dGradJob<float>& job, const CvecGradPlan& plan, std::int64_t img,
                            std::int64_t g, std::int64_t hi0, std::int64_t hi1);
}

}  // namespace medfuse
