// Test-only dispatcher of medfuse._core._checked_simd_selftest (see
// checked_simd_selftest.hpp): each op runs in the file built for its ISA,
// and only on a CPU that has that ISA. An empty translation unit outside the
// sanitizer build of an x86 target.
#include "common/checked_simd.hpp"

#if MEDFUSE_CHECKED_SIMD && defined(MEDFUSE_HAVE_AVX2)
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/checked_simd_selftest.hpp"
#include "common/cpu.hpp"

namespace medfuse {
namespace checked {

double selftest(const std::string& op, std::int64_t n_alloc, std::int64_t offset, std::uint32_t lanes, bool checked) {
    const std::vector<std::string> supported = isa_supported();
    auto require = [&](const char* isa) {
        if (std::find(supported.begin(), supported.end(), isa) == supported.end())
            throw std::invalid_argument("selftest: op '" + op + "' needs the " + isa + " path (this build or CPU lacks it)");
    };
    double out = 0.0;
    if (op == "i32gather_ps" || op == "broadcast_ss" || op == "broadcast_sd") {
        require("avx2");
        selftest_avx2(op, n_alloc, offset, lanes, checked, &out);
        return out;
    }
    if (op == "mask_storeu_ps" || op == "maskz_loadu_ps" || op == "mask_i32gather_ps" || op == "mask_i32gather_pd") {
        require("avx512");
#if defined(MEDFUSE_HAVE_AVX512)
        selftest_avx512(op, n_alloc, offset, lanes, checked, &out);
#endif
        return out;
    }
    throw std::invalid_argument("selftest: unknown op '" + op + "'");
}

}  // namespace checked
}  // namespace medfuse

#endif
