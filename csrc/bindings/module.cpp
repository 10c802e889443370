// medfuse._core: the pybind11 module. Creates the module and registers each
// kernel family; argument checks and GIL handling live in register_*.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/register.hpp"
#include "common/checked_simd.hpp"
#include "common/cpu.hpp"
#if MEDFUSE_CHECKED_SIMD && defined(MEDFUSE_HAVE_AVX512)
#include "common/checked_simd_selftest.hpp"
#endif

namespace py = pybind11;

#ifndef MEDFUSE_VERSION
#define MEDFUSE_VERSION "unknown"
#endif

namespace {

std::string compiler() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
    return "msvc " + std::to_string(_MSC_VER);
#else
    return "unknown";
#endif
}

py::dict build_info() {
    py::dict d;
    d["core_version"] = MEDFUSE_VERSION;
    d["compiler"] = compiler();
    d["build_type"] = MEDFUSE_BUILD_TYPE;
    d["native"] = static_cast<bool>(MEDFUSE_NATIVE_BUILD);
    d["simd_compiled"] = medfuse::isa_compiled();
    d["simd_supported"] = medfuse::isa_supported();
    d["simd_active"] = std::string(medfuse::isa_name(medfuse::active_isa()));
    d["simd_request_error"] = medfuse::simd_request_error();
    d["hardware_threads"] = std::thread::hardware_concurrency();
    d["checked_simd"] = medfuse::checked::enabled;  // masked/indexed accesses checked by ASan (sanitizer build)
    return d;
}

}  // namespace

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "medfuse C++ kernels (internal; use the functions in medfuse)";
    m.def("build_info", &build_info, "What was compiled in and which SIMD path is active.");
#if MEDFUSE_CHECKED_SIMD && defined(MEDFUSE_HAVE_AVX512)
    // Sanitizer build only: deliberate masked/indexed accesses for
    // tests/test_checked_simd.py (see common/checked_simd_selftest.hpp).
    m.def("_checked_simd_selftest", &medfuse::checked::selftest, py::arg("op"), py::arg("n_alloc"),
          py::arg("offset"), py::arg("lanes"), py::arg("checked"));
#endif
    medfuse::bind::register_edges(m);
    medfuse::bind::register_convolve(m);
    medfuse::bind::register_enhance(m);
    medfuse::bind::register_cnn(m);
    medfuse::bind::register_histogram(m);
    medfuse::bind::register_texture(m);
    medfuse::bind::register_attention(m);
    medfuse::bind::register_morphology(m);
    medfuse::bind::register_audio(m);
    medfuse::bind::register_denoise(m);
}
