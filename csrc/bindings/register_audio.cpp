// Bindings for csrc/audio: spectral_f32 / spectral_f64 (STFT, power
// spectrogram, mel spectrogram, MFCC of padded (batch, length) signals).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "audio/spectral.hpp"
#include "bindings/convert.hpp"
#include "bindings/register.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

using i64 = std::int64_t;
using F64 = py::array_t<double, py::array::c_style>;
using I64 = py::array_t<std::int64_t, py::array::c_style>;

constexpr i64 kMaxNfft = i64{1} << 22;
constexpr i64 kMaxOut = i64{1} << 34;  // elements (x 8 or 16 bytes): refuse before allocating


template <class T, class C>
py::array run(py::array_t<T, py::array::c_style> x, i64 n_fft, i64 hop, const F64& window, int mode,
              double power, const py::object& mel_o, const py::object& lo_o, const py::object& hi_o,
              const py::object& dct_o, double amin, double ref_db, double top_db, int threads) {
    const auto shape = checked_shape(x, "y", {2});
    checked_threads(threads);
    if (n_fft < 1 || n_fft > kMaxNfft) throw py::value_error("n_fft must be between 1 and 2**22");
    if (hop < 1) throw py::value_error("hop_length must be >= 1");
    if (mode < 0 || mode > 3) throw py::value_error("mode must be 0..3");
    if (window.ndim() != 1 || window.shape(0) != n_fft) throw py::value_error("window must have n_fft values");
    const i64 batch = shape[0], len = shape[1];
    if (len < n_fft) throw py::value_error("the padded signal is shorter than n_fft");
    const i64 n_frames = 1 + (len - n_fft) / hop, n_freq = n_fft / 2 + 1;
    const SpecMode sm = static_cast<SpecMode>(mode);

    std::vector<C> win(static_cast<std::size_t>(n_fft));
    for (i64 i = 0; i < n_fft; ++i) win[static_cast<std::size_t>(i)] = static_cast<C>(window.data()[i]);
    std::vector<C> mel, dct;
    std::vector<i64> lo, hi, off;
    i64 n_mels = 0, n_mfcc = 0;
    if (sm == SpecMode::mel || sm == SpecMode::mfcc) {
        const F64 m = mel_o.cast<F64>();
        const I64 l = lo_o.cast<I64>(), h = hi_o.cast<I64>();
        if (m.ndim() != 2 || m.shape(1) != n_freq || m.shape(0) < 1)
            throw py::value_error("mel filters must have shape (n_mels, 1 + n_fft // 2)");
        n_mels = m.shape(0);
        if (l.size() != n_mels || h.size() != n_mels) throw py::value_error("mel_lo / mel_hi need n_mels values");
        for (i64 i = 0; i < n_mels; ++i)
            if (l.data()[i] < 0 || h.data()[i] > n_freq || l.data()[i] > h.data()[i])
                throw py::value_error("mel_lo / mel_hi out of range");
        // Only the bands [lo, hi) are read: pack them.
        lo.assign(l.data(), l.data() + n_mels);
        hi.assign(h.data(), h.data() + n_mels);
        for (i64 i = 0; i < n_mels; ++i) {
            off.push_back(static_cast<i64>(mel.size()));
            for (i64 k = lo[static_cast<std::size_t>(i)]; k < hi[static_cast<std::size_t>(i)]; ++k)
                mel.push_back(static_cast<C>(m.data()[i * n_freq + k]));
        }
    }
    if (sm == SpecMode::mfcc) {
        const F64 d = dct_o.cast<F64>();
        if (d.ndim() != 2 || d.shape(1) != n_mels || d.shape(0) < 1)
            throw py::value_error("dct must have shape (n_mfcc, n_mels)");
        n_mfcc = d.shape(0);
        for (i64 i = 0; i < d.size(); ++i) dct.push_back(static_cast<C>(d.data()[i]));
        if (!(amin > 0.0)) throw py::value_error("amin must be > 0");
    }
    const i64 rows = sm == SpecMode::mel ? n_mels : sm == SpecMode::mfcc ? n_mfcc : n_freq;
    if (n_frames > kMaxOut / rows / batch) throw py::value_error("the output would be too large");

    py::array out;
    if (sm == SpecMode::complex_out)
        out = py::array_t<std::complex<T>>({batch, rows, n_frames});
    else
        out = py::array_t<T>({batch, rows, n_frames});
    std::vector<C> db;
    if (sm == SpecMode::mfcc) db.resize(static_cast<std::size_t>(batch * n_mels * n_frames));

    SpecJob<T, C> job;
    job.x = x.data();
    job.batch = batch;
    job.len = len;
    job.n_fft = n_fft;
    job.hop = hop;
    job.n_frames = n_frames;
    job.n_freq = n_freq;
    job.window = win.data();
    job.mode = sm;
    job.power = power;
    job.mel = mel.data();
    job.mel_off = off.data();
    job.mel_lo = lo.data();
    job.mel_hi = hi.data();
    job.n_mels = n_mels;
    job.amin = amin;
    job.ref_db = ref_db;
    job.top_db = top_db;
    job.dct = dct.data();
    job.n_mfcc = n_mfcc;
    job.db = db.data();
    job.out = static_cast<T*>(out.mutable_data());
    SpecStatus st;
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        const std::shared_ptr<const FftPlan<C>> plan = cached_fft_plan<C>(n_fft);
        st = spectral(job, *plan, threads);
    }
    if (st == SpecStatus::bad_input) throw py::value_error("y contains NaN or infinity; spectra are undefined there");
    if (st == SpecStatus::overflow) {
        // as medfuse.kernels._audio_plan.finite_result words it
        double top = 0.0;
        for (i64 i = 0; i < batch * len; ++i) {
            const double v = std::fabs(static_cast<double>(x.data()[i]));
            top = v > top ? v : top;
        }
        char num[64];
        std::snprintf(num, sizeof num, "%.3g", top);
        const bool f32 = sizeof(T) == 4;
        const std::string type = sm == SpecMode::complex_out ? (f32 ? "complex64" : "complex128") : (f32 ? "float32" : "float64");
        throw py::value_error("the spectrum of y overflows " + type + " (max |y| = " + num + "); " +
                              (f32 ? "pass float64 samples or scale y down" : "scale y down"));
    }
    return out;
}

py::array spectral_f32(py::array_t<float, py::array::c_style> x, i64 n_fft, i64 hop, const F64& window, int mode,
                       double power, const py::object& mel, const py::object& lo, const py::object& hi,
                       const py::object& dct, double amin, double ref_db, double top_db, int threads) {
    // float32 computes in float32 for power-of-two n_fft; other lengths go
    // through Bluestein, whose chirps need float64 to keep 1e-5 accuracy.
    if (n_fft >= 1 && (n_fft & (n_fft - 1)) == 0)
        return run<float, float>(x, n_fft, hop, window, mode, power, mel, lo, hi, dct, amin, ref_db, top_db, threads);
    return run<float, double>(x, n_fft, hop, window, mode, power, mel, lo, hi, dct, amin, ref_db, top_db, threads);
}

py::array spectral_f64(py::array_t<double, py::array::c_style> x, i64 n_fft, i64 hop, const F64& window, int mode,
                       double power, const py::object& mel, const py::object& lo, const py::object& hi,
                       const py::object& dct, double amin, double ref_db, double top_db, int threads) {
    return run<double, double>(x, n_fft, hop, window, mode, power, mel, lo, hi, dct, amin, ref_db, top_db, threads);
}

// Test probe of the FFT plan cache (tests/test_audio.py): fetches the plan of
// n_fft through the cache, in double (compute type of float64 and of float32
// when double_precision) or float, and returns (bytes of that plan, bytes the
// cache holds, the cached n_fft values) while the plan is still in use.
py::tuple fft_plan_cache_probe(i64 n_fft, bool double_precision) {
    if (n_fft < 1 || n_fft > (i64(1) << 22)) throw py::value_error("n_fft must be between 1 and 2**22");
    auto run = [&](auto tag) {
        using C = decltype(tag);
        i64 plan_bytes = 0;
        FftPlanCacheStats st;
        {
            py::gil_scoped_release nogil;
            const std::shared_ptr<const FftPlan<C>> plan = cached_fft_plan<C>(n_fft);
            plan_bytes = fft_plan_bytes(*plan);
            st = fft_plan_cache_stats<C>();
        }
        return py::make_tuple(plan_bytes, st.bytes, st.sizes);
    };
    return double_precision ? run(double()) : run(float());
}

}  // namespace

void register_audio(py::module_& m) {
    m.def("_fft_plan_cache_probe", &fft_plan_cache_probe, py::arg("n_fft"), py::arg("double_precision"),
          "Test probe of the FFT plan cache (internal).");
    const char* doc = "Short-time spectra of padded (batch, length) signals (use medfuse.stft / mfcc ...).";
    m.def("spectral_f32", &spectral_f32, py::arg("y").noconvert(), py::arg("n_fft"), py::arg("hop"),
          py::arg("window").noconvert(), py::arg("mode"), py::arg("power"), py::arg("mel"), py::arg("mel_lo"),
          py::arg("mel_hi"), py::arg("dct"), py::arg("amin"), py::arg("ref_db"), py::arg("top_db"),
          py::arg("threads"), doc);
    m.def("spectral_f64", &spectral_f64, py::arg("y").noconvert(), py::arg("n_fft"), py::arg("hop"),
          py::arg("window").noconvert(), py::arg("mode"), py::arg("power"), py::arg("mel"), py::arg("mel_lo"),
          py::arg("mel_hi"), py::arg("dct"), py::arg("amin"), py::arg("ref_db"), py::arg("top_db"),
          py::arg("threads"), doc);
}

}  // namespace medfuse::bind
