// medfuse._core: the pybind11 module. Creates the module and registers each
// kernel family; argument checks and GIL handling live in register_*.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/register.hpp"
#include "common/checked_simd.hpp"
#include "common/cpu.hpp"
#if MEDFUSE_CHECKED_SIMD && defined(MEDFUSE_HAVE_AVX2)
#include "common/checked_simd_selftest.hpp"
#endif
#include "common/parallel.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
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

#if defined(__linux__)
long os_thread_id() { return static_cast<long>(syscall(SYS_gettid)); }
#else
long os_thread_id() { return static_cast<long>(std::hash<std::thread::id>()(std::this_thread::get_id())); }
#endif

// Test probe of parallel_for (tests/test_pool.py): task i computes
// i*i + sum_j i*j over an inner parallel_for of `inner` tasks, sleeping
// `sleep_us` first (inner tasks: `inner_sleep_us`); task `throw_at` throws.
// Returns (results, every inner loop ran on its task's thread, OS thread ids
// that ran outer tasks).
py::tuple parallel_probe(std::int64_t n_tasks, int threads, std::int64_t inner, int inner_threads,
                         std::int64_t throw_at, int sleep_us, int inner_sleep_us) {
    if (n_tasks < 0 || inner < 0 || threads < 1 || inner_threads < 1 || sleep_us < 0 || inner_sleep_us < 0)
        throw std::invalid_argument("_parallel_probe: counts must be >= 0 and thread counts >= 1");
    std::vector<std::int64_t> out(static_cast<std::size_t>(n_tasks), -1);
    std::atomic<bool> nested_serial{true};
    std::mutex ids_mutex;
    std::set<long> ids;
    {
        py::gil_scoped_release release;
        medfuse::parallel_for(n_tasks, threads, [&](std::int64_t i) {
            if (sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
            const long me = os_thread_id();
            {
                std::lock_guard<std::mutex> lock(ids_mutex);
                ids.insert(me);
            }
            if (i == throw_at) throw std::runtime_error("_parallel_probe: task " + std::to_string(i) + " failed");
            std::vector<std::int64_t> part(static_cast<std::size_t>(inner), 0);
            medfuse::parallel_for(inner, inner_threads, [&](std::int64_t j) {
                if (inner_sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(inner_sleep_us));
                if (os_thread_id() != me) nested_serial = false;
                part[static_cast<std::size_t>(j)] = i * j;
            });
            std::int64_t s = i * i;
            for (std::int64_t v : part) s += v;
            out[static_cast<std::size_t>(i)] = s;
        });
    }
    return py::make_tuple(out, nested_serial.load(), std::vector<long>(ids.begin(), ids.end()));
}

}  // namespace

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "medfuse C++ kernels (internal; use the functions in medfuse)";
    m.def("build_info", &build_info, "What was compiled in and which SIMD path is active.");
#if MEDFUSE_CHECKED_SIMD && defined(MEDFUSE_HAVE_AVX2)
    // Sanitizer build only: deliberate masked/indexed accesses for
    // tests/test_checked_simd.py (see common/checked_simd_selftest.hpp).
    m.def("_checked_simd_selftest", &medfuse::checked::selftest, py::arg("op"), py::arg("n_alloc"),
          py::arg("offset"), py::arg("lanes"), py::arg("checked"));
#endif
    m.def("_parallel_probe", &parallel_probe, py::arg("n_tasks"), py::arg("threads"), py::arg("inner"),
          py::arg("inner_threads"), py::arg("throw_at") = -1, py::arg("sleep_us") = 0, py::arg("inner_sleep_us") = 0,
          "Test probe of the worker pool (internal).");
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
    medfuse::bind::register_rnn(m);
}
