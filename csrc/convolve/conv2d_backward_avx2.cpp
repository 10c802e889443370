// conv2d gradient loops for the avx2 path (built with its own -m flags),
// including the AVX2 channels-last grad weight (conv2d_backward_kernels.hpp)
// and the AVX2 float32 grad weight without an im2col matrix for fewer than 4
// input channels per group (conv2d_gw_vec_kernels.hpp on GwVec below; see
// conv2d_backward.hpp).
#include <algorithm>
#include <cstdint>
#include <immintrin.h>
#include <vector>

#include "common/checked_simd.hpp"
#include "common/simd_transpose.hpp"
#include "convolve/conv2d_backward.hpp"

namespace medfuse {
namespace avx2 {
#include "convolve/conv2d_backward_kernels.hpp"

namespace {

using i64 = std::int64_t;

// The avx2 vector operations of conv2d_gw_vec_kernels.hpp: 8 lanes (ymm), 4
// output channels per register tile (12 accumulators in 16 registers). A tap's
// lanes inside the row: int32 masks, -1 on, 0 off, per entry (8 for stride 1,
// 16 for stride 2, where output pixel l is input lane 2 l), and full[e] when
// every lane is on (a plain load; VMASKMOVPS is slow on AMD cores).
struct GwVec {
    using V = __m256;
    static constexpr int L = 8, OB = conv2d_bwd_detail::kGwOc2;
    struct Cols {
        std::vector<i64> off;
        std::vector<std::int32_t> mask;
        std::vector<char> full;
    };
    struct GyTail {
        i64 nfull;     // output vectors with every pixel inside the row
        __m256i mask;  // the last one's pixels
    };
    static V loadu(const float* p) { return _mm256_loadu_ps(p); }
    static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static void resize(Cols& c, i64 entries, int sw) {
        c.off.resize(static_cast<std::size_t>(entries));
        c.mask.assign(static_cast<std::size_t>(entries * 8 * sw), 0);
        c.full.assign(static_cast<std::size_t>(entries), 0);
    }
    static void set(Cols& c, std::size_t e, i64 base, i64 lo, i64 hi, int sw) {
        const i64 ml = 8 * sw;  // mask lanes per entry
        c.off[e] = base;
        for (i64 l = lo; l < hi; ++l) c.mask[e * static_cast<std::size_t>(ml) + static_cast<std::size_t>(l)] = -1;
        c.full[e] = lo == 0 && hi == ml;
    }
    template <int SW>
    static V load_x(const Cols& cols, std::size_t e, const float* row, bool rin) {
        const float* p = row + cols.off[e];
        if (!rin) return _mm256_setzero_ps();
        if (SW == 1)
            return cols.full[e] ? _mm256_loadu_ps(p)
                                : checked::maskload_ps(
                                      p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols.mask.data() + e * 8)));
        __m256 a, b;
        if (cols.full[e]) {
            a = _mm256_loadu_ps(p);
            b = _mm256_loadu_ps(p + 8);
        } else {
            const __m256i* m = reinterpret_cast<const __m256i*>(cols.mask.data() + e * 16);
            a = checked::maskload_ps(p, _mm256_loadu_si256(m));
            b = checked::maskload_ps(p + 8, _mm256_loadu_si256(m + 1));
        }
        // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6]
        const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    static GyTail tail(i64 WO) {
        const i64 nfull = WO / 8;
        return {nfull, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(WO - 8 * nfull)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
    }
    static V load_gy(const GyTail& t, i64 v, i64 /*WO*/, const float* p) {
        return v < t.nfull ? _mm256_loadu_ps(p) : checked::maskload_ps(p, t.mask);
    }
};

}  // namespace

#include "convolve/conv2d_gw_vec_kernels.hpp"

}  // namespace avx2
}  // namespace medfuse
