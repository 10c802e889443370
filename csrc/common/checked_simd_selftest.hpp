// Test-only: deliberate masked / indexed accesses through the
// common/checked_simd.hpp wrappers (or the raw intrinsics), for
// tests/test_checked_simd.py. Compiled only in the sanitizer build with the
// AVX-512 paths (checked_simd_selftest_avx512.cpp); bound as
// medfuse._core._checked_simd_selftest only there.
#pragma once
#include <cstdint>
#include <string>

namespace medfuse {
namespace checked {

// Allocates n_alloc elements on the heap (float, or double for *_pd) and
// runs `op` on it: masked loads/stores with p = buffer + offset and the lanes
// in `lanes`; gathers with lane l reading element offset + l (lanes as mask).
// checked=false calls the raw intrinsic (invisible to ASan). Returns a value
// computed from what was read, so nothing is optimised away. Throws
// std::invalid_argument for an unknown op.
double selftest(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes, bool checked);

}  // namespace checked
}  // namespace medfuse
