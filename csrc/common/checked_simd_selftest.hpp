// Test-only: deliberate masked / indexed accesses through the
// common/checked_simd.hpp wrappers (or the raw intrinsics), for
// tests/test_checked_simd.py. Compiled only in the sanitizer build
// (MEDFUSE_CHECKED_SIMD) of an x86 target: the AVX2 wrappers in
// checked_simd_selftest_avx2.cpp, the AVX-512 ones in
// checked_simd_selftest_avx512.cpp (when the AVX-512 paths are built); bound
// as medfuse._core._checked_simd_selftest only there.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace medfuse {
namespace checked {

// Allocates n_alloc elements on the heap (float, or double for *_pd / *_sd)
// and runs `op` on it: masked loads/stores with p = buffer + offset and the
// lanes in `lanes`; gathers with lane l reading element offset + l (lanes as
// mask); broadcasts read element `offset`. checked=false calls the raw
// intrinsic (invisible to ASan). Returns a value computed from what was read,
// so nothing is optimised away. Throws std::invalid_argument for an unknown
// op, or one whose ISA this build or CPU lacks.
double selftest(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes, bool checked);

// Per ISA: runs op if it is one of that file's ops (*out = the result) and
// returns true; false for another op.
bool selftest_avx2(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes,
                   bool checked, double* out);
bool selftest_avx512(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes,
                     bool checked, double* out);

namespace {  // each ISA's file gets its own copy (never merged across -m flags)

// The sum of the lanes of a vector V of elements E (in lane order).
template <class E, class V>
double lane_sum(V v) {
    E t[sizeof(V) / sizeof(E)];
    std::memcpy(t, &v, sizeof v);
    double s = 0.0;
    for (E x : t) s += static_cast<double>(x);
    return s;
}

}  // namespace

}  // namespace checked
}  // namespace medfuse
