#include "common/cpu.hpp"

#include <cstdlib>
#include <cstring>

namespace medfuse {
namespace {

bool cpu_has(Isa isa) {
    switch (isa) {
        case Isa::baseline:
            return true;
#if defined(MEDFUSE_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
        case Isa::avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("bmi2");
#endif
#if defined(MEDFUSE_HAVE_AVX512) && (defined(__GNUC__) || defined(__clang__))
        case Isa::avx512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("bmi2");
#endif
        default:
            return false;
    }
}

bool compiled(Isa isa) {
    switch (isa) {
        case Isa::baseline:
            return true;
#ifdef MEDFUSE_HAVE_AVX2
        case Isa::avx2:
            return true;
#endif
#ifdef MEDFUSE_HAVE_AVX512
        case Isa::avx512:
            return true;
#endif
        default:
            return false;
    }
}

struct Choice {
    Isa isa = Isa::baseline;
    std::string error;
};

Choice choose() {
    Choice c;
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::baseline}) {
        if (compiled(isa) && cpu_has(isa)) {
            c.isa = isa;
            break;
        }
    }
    const char* req = std::getenv("MEDFUSE_SIMD");
    if (req == nullptr || *req == '\0') return c;
    for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512}) {
        if (std::strcmp(req, isa_name(isa)) != 0) continue;
        if (!compiled(isa)) {
            c.error = std::string("MEDFUSE_SIMD=") + req + ": not compiled into this build";
        } else if (!cpu_has(isa)) {
            c.error = std::string("MEDFUSE_SIMD=") + req + ": not supported by this CPU";
        } else {
            c.isa = isa;
        }
        return c;
    }
    c.error = std::string("MEDFUSE_SIMD=") + req + ": expected baseline, avx2 or avx512";
    return c;
}

const Choice& choice() {
    static const Choice c = choose();  // thread-safe initialisation, then read-only
    return c;
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::avx2:
            return "avx2";
        case Isa::avx512:
            return "avx512";
        default:
            return "baseline";
    }
}

std::vector<std::string> isa_compiled() {
    std::vector<std::string> out;
    for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512})
        if (compiled(isa)) out.emplace_back(isa_name(isa));
    return out;
}

std::vector<std::string> isa_supported() {
    std::vector<std::string> out;
    for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512})
        if (compiled(isa) && cpu_has(isa)) out.emplace_back(isa_name(isa));
    return out;
}

Isa active_isa() { return choice().isa; }
std::string simd_request_error() { return choice().error; }

}  // namespace medfuse
