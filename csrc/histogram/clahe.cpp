// Contrast: equalize_hist (cv2.equalizeHist) and CLAHE (cv2.createCLAHE().apply),
// following OpenCV's integer/float arithmetic step by step so every pixel matches:
// tile LUTs from histograms clipped at int(clip * tile_area / levels) (at least 1)
// with the excess spread evenly and the residual every levels/residual bins,
// LUT = saturate(round(cumsum * (levels - 1) / tile_area)) in float, and bilinear
// interpolation between the four nearest tile LUTs in float. Images whose size is
// not a multiple of the grid get their LUTs from a reflect-101 extension.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "common/border.hpp"
#include "common/large_buffer.hpp"
#include "common/parallel.hpp"
#include "histogram/histogram.hpp"

namespace medfuse {
namespace {

template <class T>
inline T saturate_round(float v) {
    // cvRound (round half to even, current rounding mode) then clamp, as cv::saturate_cast.
    const long r = std::lrint(v);
    constexpr long hi = static_cast<long>(std::numeric_limits<T>::max());
    return static_cast<T>(r < 0 ? 0 : (r > hi ? hi : r));
}

inline i64 reflect101(i64 i, i64 n) { return border_index(i, n, Border::reflect101); }

}  // namespace

template <class T>
void equalize_hist(const T* x, i64 n, T* out, int threads) {
    constexpr int levels = 1 << (8 * sizeof(T));
    std::vector<i64> hist(levels, 0);
    hist_keys<T>(x, nullptr, n, 0, levels - 1, 0, hist.data(), threads);
    int i = 0;
    while (hist[static_cast<std::size_t>(i)] == 0) ++i;
    std::vector<T> lut(levels, T(0));
    const i64 first = hist[static_cast<std::size_t>(i)];
    if (first == n) {
        std::fill(lut.begin(), lut.end(), static_cast<T>(i));
    } else {
        // cv2: float scale = (levels - 1.f) / (total - hist[i]); int sum; lut = saturate(sum * scale)
        const float scale = (static_cast<float>(levels) - 1.0f) / static_cast<float>(static_cast<int>(n - first));
        int sum = 0;
        lut[static_cast<std::size_t>(i++)] = T(0);
        for (; i < levels; ++i) {
            sum += static_cast<int>(hist[static_cast<std::size_t>(i)]);
            lut[static_cast<std::size_t>(i)] = saturate_round<T>(static_cast<float>(sum) * scale);
        }
    }
    const i64 parts = std::max<i64>(1, std::min<i64>(threads, n / (1 << 16)));
    const T* lp = lut.data();
    parallel_for(parts, threads, [&](i64 p) {
        for (i64 k = split_begin(n, parts, p); k < split_begin(n, parts, p + 1); ++k) out[k] = lp[x[k]];
    });
}

template <class T>
void clahe(const T* x, i64 H, i64 W, double clip_limit, int tiles_y, int tiles_x, T* out, int threads) {
    constexpr int levels = 1 << (8 * sizeof(T));
    i64 HE = H, WE = W;
    if (!(W % tiles_x == 0 && H % tiles_y == 0)) {
        HE = H + (tiles_y - H % tiles_y);
        WE = W + (tiles_x - W % tiles_x);
    }
    const int th = static_cast<int>(HE / tiles_y), tw = static_cast<int>(WE / tiles_x);
    const int area = th * tw;
    const float lut_scale = static_cast<float>(levels - 1) / static_cast<float>(area);
    int clip = 0;
    if (clip_limit > 0.0) {
        clip = static_cast<int>(clip_limit * area / levels);
        clip = std::max(clip, 1);
    }
    std::vector<i64> xmap(static_cast<std::size_t>(WE));
    for (i64 i = 0; i < WE; ++i) xmap[static_cast<std::size_t>(i)] = reflect101(i, W);
    const i64 n_tiles = static_cast<i64>(tiles_x) * tiles_y;
    // Pixels look up their tiles' LUTs only at values the image holds, and a
    // LUT entry depends only on the histogram at and below it (the clipped
    // excess comes from bins that hold pixels; the residual's positions are
    // fixed by the count alone), so the LUTs stop at the image's maximum:
    // a 12-bit X-ray in uint16 builds 4096 entries per tile, not 65536.
    T lowest = 0, highest = 0;
    i64 selected = 0, nans = 0;
    min_max<T>(x, nullptr, H * W, &lowest, &highest, &selected, &nans, threads);
    const int vmax = highest;
    const i64 span = static_cast<i64>(vmax) + 1;  // LUT entries per tile
    // The tiles' LUTs as float (exact: integers < 2^16), so the per-pixel
    // loop does no int->float conversions; each tile writes its own, in
    // parallel, into uninitialised memory.
    const LargeBuffer<float> lutf(static_cast<std::size_t>(n_tiles * span));

    // Tiles in a fixed number of groups, each reusing one histogram (16-bit:
    // up to 256 KB, which a fresh allocation per tile faulted in page by page).
    const i64 n_groups = std::min<i64>(n_tiles, 8);
    parallel_for(n_groups, threads, [&](i64 g) {
        std::vector<int> hist(static_cast<std::size_t>(span));
        int* hs = hist.data();
        for (i64 k = g; k < n_tiles; k += n_groups) {
            std::fill(hist.begin(), hist.end(), 0);
            const i64 ty = k / tiles_x, tx = k % tiles_x;
            const i64 x0 = tx * tw;
            const bool inside = x0 + tw <= W;
            for (i64 yy = ty * th; yy < (ty + 1) * th; ++yy) {
                const T* row = x + reflect101(yy, H) * W;
                if (inside) {
                    const T* r = row + x0;
                    for (int j = 0; j < tw; ++j) ++hs[r[j]];
                } else {
                    for (int j = 0; j < tw; ++j) ++hs[row[xmap[static_cast<std::size_t>(x0 + j)]]];
                }
            }
            if (clip > 0) {
                // Bins above vmax are empty: nothing to clip there (clip >= 1).
                int clipped = 0;
                for (i64 i = 0; i < span; ++i) {
                    if (hs[i] > clip) {
                        clipped += hs[i] - clip;
                        hs[i] = clip;
                    }
                }
                // Spread over all `levels` bins as cv2; only those <= vmax are kept.
                const int batch = clipped / levels;
                int residual = clipped - batch * levels;
                for (i64 i = 0; i < span; ++i) hs[i] += batch;
                if (residual != 0) {
                    const int step = std::max(levels / residual, 1);
                    for (i64 i = 0; i < span && residual > 0; i += step, --residual) hs[i]++;
                }
            }
            float* tl = lutf.get() + k * span;
            int sum = 0;
            for (i64 i = 0; i < span; ++i) {
                sum += hs[i];
                tl[i] = static_cast<float>(saturate_round<T>(static_cast<float>(sum) * lut_scale));
            }
        }
    });

    // Per-column tile indices and weights, as cv2 (float arithmetic).
    std::vector<i64> ind1(static_cast<std::size_t>(W)), ind2(static_cast<std::size_t>(W));
    std::vector<float> xa(static_cast<std::size_t>(W)), xa1(static_cast<std::size_t>(W));
    const float inv_tw = 1.0f / static_cast<float>(tw);
    for (i64 c = 0; c < W; ++c) {
        const float txf = static_cast<float>(c) * inv_tw - 0.5f;
        int t1 = static_cast<int>(std::floor(txf));
        int t2 = t1 + 1;
        xa[static_cast<std::size_t>(c)] = txf - static_cast<float>(t1);
        xa1[static_cast<std::size_t>(c)] = 1.0f - xa[static_cast<std::size_t>(c)];
        t1 = std::max(t1, 0);
        t2 = std::min(t2, tiles_x - 1);
        ind1[static_cast<std::size_t>(c)] = static_cast<i64>(t1) * span;
        ind2[static_cast<std::size_t>(c)] = static_cast<i64>(t2) * span;
    }
    // The per-pixel arithmetic below is cv2's, operation by operation.
    // Columns split into runs sharing the same pair of tile columns.
    std::vector<i64> run_start;
    for (i64 c = 0; c < W; ++c)
        if (c == 0 || ind1[static_cast<std::size_t>(c)] != ind1[static_cast<std::size_t>(c - 1)] ||
            ind2[static_cast<std::size_t>(c)] != ind2[static_cast<std::size_t>(c - 1)])
            run_start.push_back(c);
    run_start.push_back(W);
    const float inv_th = 1.0f / static_cast<float>(th);
    // Rows in up to 8 chunks per thread, handed out as threads free up: a
    // thread slowed for a while (a shared machine's vCPU) leaves its rest to
    // the others instead of holding up the call. Rows are independent.
    const i64 parts = std::max<i64>(1, std::min<i64>({threads > 1 ? 8 * static_cast<i64>(threads) : 1, H, (H * W) / (1 << 15)}));
    parallel_for(parts, threads, [&](i64 p) {
        for (i64 y = split_begin(H, parts, p); y < split_begin(H, parts, p + 1); ++y) {
            const float tyf = static_cast<float>(y) * inv_th - 0.5f;
            int t1 = static_cast<int>(std::floor(tyf));
            int t2 = t1 + 1;
            const float ya = tyf - static_cast<float>(t1), ya1 = 1.0f - ya;
            t1 = std::max(t1, 0);
            t2 = std::min(t2, tiles_y - 1);
            const float* lp1 = lutf.get() + static_cast<i64>(t1) * tiles_x * span;
            const float* lp2 = lutf.get() + static_cast<i64>(t2) * tiles_x * span;
            const T* src = x + y * W;
            T* dst = out + y * W;
            for (std::size_t r = 0; r + 1 < run_start.size(); ++r) {
                const i64 c0 = run_start[r], c1 = run_start[r + 1];
                const float* a1 = lp1 + ind1[static_cast<std::size_t>(c0)];
                const float* a2 = lp1 + ind2[static_cast<std::size_t>(c0)];
                const float* b1 = lp2 + ind1[static_cast<std::size_t>(c0)];
                const float* b2 = lp2 + ind2[static_cast<std::size_t>(c0)];
                const float* xw = xa.data();
                const float* xw1 = xa1.data();
                for (i64 c = c0; c < c1; ++c) {
                    const T v = src[c];
                    const float res = (a1[v] * xw1[c] + a2[v] * xw[c]) * ya1 + (b1[v] * xw1[c] + b2[v] * xw[c]) * ya;
                    dst[c] = saturate_round<T>(res);
                }
            }
        }
    });
}

template void equalize_hist<std::uint8_t>(const std::uint8_t*, i64, std::uint8_t*, int);
template void equalize_hist<std::uint16_t>(const std::uint16_t*, i64, std::uint16_t*, int);
template void clahe<std::uint8_t>(const std::uint8_t*, i64, i64, double, int, int, std::uint8_t*, int);
template void clahe<std::uint16_t>(const std::uint16_t*, i64, i64, double, int, int, std::uint16_t*, int);

}  // namespace medfuse
