// Histograms, binning and contrast kernels (pure C++17, no Python).
//
// Every function reads a C-contiguous buffer of n elements (any ndim is
// flattened by the caller), an optional mask (one byte per element, nonzero
// = selected), and writes into caller-provided outputs. Work is split into
// parts by problem size; integer counts are merged in part order, weighted
// sums are folded block by block in element order, so results never depend
// on the thread count.
#pragma once
#include <cstdint>

namespace medfuse {

using i64 = std::int64_t;

// Integer data, integer-aligned bins: every selected x with lo <= x <= hi
// adds one to keys[(x - lo) >> shift]; keys has ((hi - lo) >> shift) + 1
// entries (the caller folds keys into bins). T: u8, u16, i16, i32.
template <class T>
void hist_keys(const T* x, const std::uint8_t* mask, i64 n, i64 lo, i64 hi, int shift, i64* keys,
               int threads);

// numpy.histogram's uniform-bins arithmetic, exactly: a value is kept when
// lo_thr <= x <= hi_thr (in T), its bin is trunc(((B(x) - lo_b) / denom) * nbins)
// computed in B then D, then corrected by one against the edges (in B).
// Without weights: counts (int64, nbins). With weights: wsum (float64, nbins),
// summed in element order within blocks of 65536 elements (numpy's BLOCK),
// block sums added in block order.
template <class T, class B, class D>
void hist_uniform(const T* x, const std::uint8_t* mask, const double* weights, i64 n, T lo_thr, T hi_thr,
                  B lo_b, D denom, const B* edges, i64 nbins, i64* counts, double* wsum, int threads);

// Bins given as non-decreasing edges (nbins + 1 of them, compared in double,
// exactly): bin i holds edges[i] <= x < edges[i+1], the last bin also x == edges[nbins].
template <class T>
void hist_edges(const T* x, const std::uint8_t* mask, const double* weights, i64 n, const double* edges,
                i64 nbins, i64* counts, double* wsum, int threads);

// numpy.digitize(x, edges) (right=False, increasing edges) as int32; 0 where
// the mask is unset.
template <class T>
void digitize(const T* x, const std::uint8_t* mask, i64 n, const double* edges, i64 n_edges,
              std::int32_t* out, int threads);

// Minimum and maximum of the selected values; NaN values are counted in
// *nan_count and skipped. *selected = number of selected elements.
template <class T>
void min_max(const T* x, const std::uint8_t* mask, i64 n, T* mn, T* mx, i64* selected, i64* nan_count,
             int threads);

// cv2.equalizeHist for uint8; the same rule for uint16 (65536 levels).
template <class T>
void equalize_hist(const T* x, i64 n, T* out, int threads);

// cv2.createCLAHE(clip_limit, (tiles_x, tiles_y)).apply(image), uint8/uint16 2D.
template <class T>
void clahe(const T* x, i64 height, i64 width, double clip_limit, int tiles_y, int tiles_x, T* out,
           int threads);

// CT windowing: out = clip((x - lo) * scale, 0, top) in float64, rounded
// half-to-even for integer O. Returns the number of NaN inputs (out is 0 there).
template <class T, class O>
i64 window(const T* x, i64 n, double lo, double scale, double top, O* out, int threads);

}  // namespace medfuse
