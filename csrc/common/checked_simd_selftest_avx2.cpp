// Test-only accesses through the AVX2 wrappers (gather without a mask,
// memory broadcasts), for tests/test_checked_simd.py (see
// checked_simd_selftest.hpp): they run on an AVX2-only CPU too. An empty
// translation unit outside the sanitizer build.
#include "common/checked_simd.hpp"

#if MEDFUSE_CHECKED_SIMD
#include <immintrin.h>

#include <string>

#include "common/checked_simd_selftest.hpp"

namespace medfuse {
namespace checked {

bool selftest_avx2(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes,
                   bool checked, double* out) {
    (void)lanes;  // every lane of these forms reads (the gather has no mask, a broadcast one element)
    if (op == "broadcast_sd") {
        double* buf = new double[static_cast<std::size_t>(n_alloc)]();
        *out = lane_sum<double>(checked ? broadcast_sd(buf + offset) : _mm256_broadcast_sd(buf + offset));
        delete[] buf;
        return true;
    }
    if (op != "i32gather_ps" && op != "broadcast_ss") return false;
    float* buf = new float[static_cast<std::size_t>(n_alloc)]();
    if (op == "i32gather_ps") {  // all 8 lanes, elements offset .. offset + 7
        const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(offset)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        *out = lane_sum<float>(checked ? i32gather_ps<4>(buf, idx) : _mm256_i32gather_ps(buf, idx, 4));
    } else {
        *out = lane_sum<float>(checked ? broadcast_ss(buf + offset) : _mm256_broadcast_ss(buf + offset));
    }
    delete[] buf;
    return true;
}

}  // namespace checked
}  // namespace medfuse

#endif  // MEDFUSE_CHECKED_SIMD
