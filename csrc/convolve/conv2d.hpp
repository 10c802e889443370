// CNN convolution layer y = f(W * x + b), NCHW float32, as
// torch.nn.functional.conv2d (cross-correlation, zero padding, stride,
// dilation, groups), optional ReLU.
//
// Pure C++17, no Python. Implicit GEMM per (image, group): the output block
// [C_out/groups x pixels] = A [C_out/groups x K] * B [K x pixels] with
// K = C_in/groups * kH * kW. A (the weights) is packed once per call into
// 6-row panels; B is packed per block of output pixels straight from x (an
// im2col tile of 16-pixel panels, zeros for the padding) and consumed by a
// 6x16 register-tile micro-kernel (AVX2 FMA, or portable C++), K in equal
// blocks of at most 384 (partial sums wait in y between blocks). Every output
// element is one accumulation chain over k = 0..K-1 in order, so results do
// not depend on the thread count or on how the work was split.
//
// avx512 (conv2d_avx512.cpp): a direct convolution instead, for horizontal
// stride 1 or 2, kernel width <= 16 and K <= 8192: register tiles of
// 8/16/24 output channels x 16/32/48 pixels of one output row read the input
// rows in place with masked 512-bit loads (no im2col packing; stride 2 by a
// permute of two loads); rows whose width is not a multiple of 16 are tiled
// as one flat run of pixels over several rows (direct_flat below; stride 2
// from a copy of the band's rows split into even and odd columns). Same chain per output element (acc = 0, one FMA per
// k in the same order, + bias, ReLU), so it gives the AVX2 path's bits.
// cvec (conv2d_cvec_kernels.hpp, avx2 and avx512): a direct convolution with
// vectors over output channels instead of pixels: tiles of up to 3 x 8 output
// channels x up to 8 (avx2: 4) pixels of one output row (or of a run across
// rows under 32 pixels), input values broadcast from a zero-padded copy of
// the band's rows; auto takes it for >= 8
// output channels per group at stride 2 (avx2: K >= 16) or with a reduction
// of >= 96 (cvec_pays in conv2d.cpp). Same chain, same bits as the GEMM.
// avx2 (conv2d_avx2.cpp): a direct convolution for the same shapes that
// copies the input rows of each output row into zero-padded row buffers
// (stride 2: even and odd columns apart), then tiles of 6 channels x 16
// pixels or 12 x 8 with plain 8-lane loads; same chain, same bits.
// winograd (conv2d_winograd_kernels.hpp, every ISA): Winograd F(2x2, 3x3)
// for 3x3 kernels, stride 1, dilation 1 (any padding, groups). Per band of
// tile rows of one (image, group): V = B^T d B of each 4x4 input patch (adds
// only) into 16 planes [cg x tiles]; 16 products M = U V with the weights
// U = G g G^T (transformed once per call in float64, rounded once), acc = 0,
// one FMA per input channel in order, on 8 (avx2: 4) channels x 48 (24) tile
// register tiles, per block of a tile row and 8 output channels (the 16
// products of a block stay in L1); Y = A^T M A (adds only), + bias, ReLU. 2.25x fewer
// multiplies than the direct chain, different rounding: within
// gamma_(cg+9) of the sum of absolute values of the transformed terms (see
// tests/test_conv2d.py), about 3e-7 of the largest output on normal data;
// avx2 and avx512 give the same bits, any thread count the same bits (tiles
// are independent). +-inf inputs or weights can give NaN where the direct
// chain gives +-inf (the transforms subtract); NaN inputs give NaN exactly
// where the direct chain does. auto takes it on avx2 / avx512 for >= 16
// input and output channels per group and outputs of at least 28 x 28
// (Zen 4, 1 thread, alternating processes: 1.3-1.9x faster than direct there
// on avx512, 1.3-1.55x on avx2; 0.6-0.95x on 14x14..24x24 outputs). The stride-1 grad input (conv2d_backward.cpp) is a forward
// convolution of grad_out, so it takes this path on the same terms.
// MEDFUSE_CONV2D_PATH=gemm (or =direct, =cvec, =winograd) forces the packed
// GEMM (or the pixel-vector direct, channel-vector direct or Winograd path
// where it applies; other shapes keep the auto choice) for the whole process:
// the tests compare them.
#pragma once
#include <cstdint>

namespace medfuse {

struct Conv2dJob {
    const float* x = nullptr;     // (n, c, h, w)
    const float* w = nullptr;     // (co, c / groups, kh, kw)
    const float* bias = nullptr;  // (co) or null
    float* y = nullptr;           // (n, co, ho, wo)
    std::int64_t n = 0, c = 0, h = 0, wd = 0;
    std::int64_t co = 0, kh = 0, kw = 0;
    std::int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    std::int64_t groups = 1;
    std::int64_t ho = 0, wo = 0;
    bool relu = false;
};

void conv2d_f32(const Conv2dJob& job, int threads);

namespace conv2d_detail {
constexpr int kMR = 6;   // output channels per micro-tile
constexpr int kNR = 16;  // output pixels per micro-tile
constexpr int kKC = 384;  // largest reduction block (packed B rows per pass)
// Reduction block for a given K: K split into equal blocks of at most kKC.
inline std::int64_t block_k(std::int64_t K) {
    const std::int64_t nb = (K + kKC - 1) / kKC;
    return nb <= 1 ? K : (K + nb - 1) / nb;
}
// Direct paths: output channels per avx512 register tile, widest kernel.
constexpr int kDMR = 8;
constexpr int kDirectMaxKw = 16;
// avx512 direct path, horizontal stride 1: output rows of wo pixels with
// wo % 16 != 0 (wo >= 8) are tiled as one flat run of pixels per band of
// rows, so a 16-lane vector may cover the end of one row and the start of
// the next (at most 3 rows): a 56-pixel row no longer leaves 1/8 of the
// lanes idle. Bands then hold at least kFlatMinPixels pixels when the work
// split allows. Stride 2 reads a copy of the band's input rows split into
// even and odd columns (read in place, a vector over two rows cost four
// masked loads and a permute: 1.2x slower than row tiles on 14-pixel rows).
inline bool direct_flat(std::int64_t wo, std::int64_t sw) { return (sw == 1 || sw == 2) && wo >= 8 && wo % 16 != 0; }
constexpr std::int64_t kFlatMinPixels = 192;
// Winograd path: weight panels of kWinoPanel output channels; tile rows of
// the transformed input padded to a multiple of kWinoTileAlign (every ISA's
// vector width divides it); row buffers kWinoSlack floats longer than needed
// (one vector); kWinoSkew floats between transformed planes (see the kernel);
// bands of at least kWinoMinTiles tiles where the image has them.
constexpr int kWinoPanel = 8;
constexpr int kWinoTileAlign = 16;
constexpr int kWinoSlack = 16;
constexpr int kWinoSkew = 16;
constexpr std::int64_t kWinoMinTiles = 64;
constexpr int kWinoBlock = 48;  // tiles per register-tile block, widest ISA (avx512: 3 x 16)
// Tiles per row in the transformed input, rounded up to whole vectors.
inline std::int64_t wino_row_tiles(std::int64_t tw) { return (tw + kWinoTileAlign - 1) / kWinoTileAlign * kWinoTileAlign; }
// Scratch floats of one band of `nrow` tile rows of `tw` tiles.
inline std::int64_t wino_scratch(std::int64_t cg, std::int64_t nrow, std::int64_t tw) {
    return 16 * cg * nrow * wino_row_tiles(tw) + 16 * kWinoSkew + 16 * kWinoPanel * kWinoBlock + (4 * nrow + 4) * (tw + 1 + kWinoSlack);
}
}  // namespace conv2d_detail

// ---- per-ISA entry point (conv2d_kernels.hpp compiled once per ISA) --------
// Output pixels [p0, p1) of image `img`, group `g`: packs B into `bpack`
// (block_k(K) * round_up(p1 - p0, 16) floats) and runs every micro-tile of the group.
// `apack`: the group's packed weights (mblocks panels of K x 6).
#define MEDFUSE_DECLARE_ISA(ns)                                                                \
    namespace ns {                                                                             \
    void conv2d_block(const Conv2dJob& job, const float* apack, std::int64_t img, std::int64_t g, \
                      std::int64_t p0, std::int64_t p1, float* bpack);                         \
    void conv2d_winograd_band(const Conv2dJob& job, const float* U, std::int64_t img, std::int64_t g, \
                              std::int64_t r0, std::int64_t r1, float* scratch);               \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

// Direct path: output rows [ho0, ho1) of image `img`, group `g`, all
// channels; `apack`: the group's weights in panels of K x kDMR (avx512) or
// K x kMR (avx2).
namespace avx512 {
void conv2d_direct_rows(const Conv2dJob& job, const float* apack, std::int64_t img, std::int64_t g,
                        std::int64_t ho0, std::int64_t ho1);
void conv2d_cvec_rows(const Conv2dJob& job, const float* apack, std::int64_t img, std::int64_t g,
                      std::int64_t ho0, std::int64_t ho1);
}
namespace avx2 {
void conv2d_direct_rows(const Conv2dJob& job, const float* apack, std::int64_t img, std::int64_t g,
                        std::int64_t ho0, std::int64_t ho1);
void conv2d_cvec_rows(const Conv2dJob& job, const float* apack, std::int64_t img, std::int64_t g,
                      std::int64_t ho0, std::int64_t ho1);
}

}  // namespace medfuse
