// Runtime choice of the SIMD code path.
//
// The choice is made once per process: the best path the CPU supports among
// those compiled in, unless MEDFUSE_SIMD=baseline|avx2|avx512 asks for
// another (tests use it to run every path). Asking for a path the CPU or the
// build lacks falls back to the best available one; simd_request_error()
// then says why.
#pragma once
#include <string>
#include <vector>

namespace medfuse {

enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
std::vector<std::string> isa_compiled();   // paths built into this binary
std::vector<std::string> isa_supported();  // compiled paths this CPU can run
Isa active_isa();                          // the path kernels use
std::string simd_request_error();          // non-empty if MEDFUSE_SIMD was not honoured

}  // namespace medfuse
