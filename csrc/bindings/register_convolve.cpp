// Bindings for csrc/convolve: correlate_<dtype>, sep_filter_<dtype>, unsharp_mask_<dtype>.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "convolve/filter.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

constexpr std::int64_t kMaxTaps = std::int64_t(1) << 20;

template <class T> constexpr PixelType pixel_of();
template <> constexpr PixelType pixel_of<std::uint8_t>() { return PixelType::u8; }
template <> constexpr PixelType pixel_of<std::uint16_t>() { return PixelType::u16; }
template <> constexpr PixelType pixel_of<std::int16_t>() { return PixelType::i16; }
template <> constexpr PixelType pixel_of<float>() { return PixelType::f32; }
template <> constexpr PixelType pixel_of<double>() { return PixelType::f64; }

// out_code: 0 float32, 1 float64, 2 the input's dtype (rounded, saturated).
template <class T>
FilterJob make_job(const py::array_t<T, py::array::c_style>& image, const std::vector<std::int64_t>& shape,
                   int border, double value, int out_code, bool f64, int threads) {
    if (border < 0 || border > 4) throw py::value_error("border code must be 0..4");
    if (out_code < 0 || out_code > 2) throw py::value_error("out_code must be 0, 1 or 2");
    if (!std::isfinite(value)) throw py::value_error("value must be finite");
    FilterJob job;
    job.in = image.data();
    job.in_type = pixel_of<T>();
    const int nd = static_cast<int>(shape.size());
    for (int i = 0; i < nd; ++i) job.shape[3 - nd + i] = shape[static_cast<std::size_t>(i)];
    job.out_type = out_code == 0 ? PixelType::f32 : (out_code == 1 ? PixelType::f64 : pixel_of<T>());
    job.f64 = f64;
    job.border = static_cast<Border>(border);
    job.value = value;
    job.threads = checked_threads(threads);
    return job;
}

py::array alloc_out(PixelType t, const std::vector<std::int64_t>& shape) {
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    switch (t) {
        case PixelType::u8: return py::array_t<std::uint8_t>(s);
        case PixelType::u16: return py::array_t<std::uint16_t>(s);
        case PixelType::i16: return py::array_t<std::int16_t>(s);
        case PixelType::f32: return py::array_t<float>(s);
        case PixelType::f64: default: return py::array_t<double>(s);
    }
}

void check_taps(const double* k, std::int64_t n, const char* name) {
    if (n < 1) throw py::value_error(std::string(name) + " is empty");
    if (n > kMaxTaps) throw py::value_error(std::string(name) + " has more than 2**20 taps");
    for (std::int64_t i = 0; i < n; ++i)
        if (!std::isfinite(k[i])) throw py::value_error(std::string(name) + " contains NaN or infinity");
}

// One 1D kernel per axis of an nd-dimensional image, checked, as sep_filter's
// taps (z, y, x; {1.0} on the axes a 2D image lacks).
struct AxisTaps {
    std::vector<double> v[3] = {{1.0}, {1.0}, {1.0}};
};

AxisTaps axis_taps(const std::vector<py::array_t<double, py::array::c_style>>& kernels, int nd) {
    if (static_cast<int>(kernels.size()) != nd) throw py::value_error("kernels must have one 1D kernel per axis");
    AxisTaps taps;
    for (int i = 0; i < nd; ++i) {
        const auto& k = kernels[static_cast<std::size_t>(i)];
        if (k.ndim() != 1) throw py::value_error("kernels must be 1-dimensional");
        check_taps(k.data(), static_cast<std::int64_t>(k.shape(0)), "kernels");
        taps.v[3 - nd + i].assign(k.data(), k.data() + k.shape(0));
    }
    return taps;
}

template <class T>
py::array correlate_impl(py::array_t<T, py::array::c_style> image, py::array_t<double, py::array::c_style> kernel,
                         int border, double value, int out_code, bool f64, int threads) {
    const auto shape = checked_shape(image, "image", {2, 3});
    const auto kshape = checked_shape(kernel, "kernel", {2, 3});
    if (kshape.size() != shape.size()) throw py::value_error("kernel must have the image's number of dimensions");
    std::int64_t ks[3] = {1, 1, 1};
    std::int64_t ntaps = 1;
    const int nd = static_cast<int>(kshape.size());
    for (int i = 0; i < nd; ++i) {
        const std::int64_t k = kshape[static_cast<std::size_t>(i)];
        if (k > kMaxTaps || ntaps * k > kMaxTaps) throw py::value_error("kernel has more than 2**20 taps");
        ntaps *= k;
        ks[3 - nd + i] = k;
    }
    check_taps(kernel.data(), ntaps, "kernel");
    FilterJob job = make_job(image, shape, border, value, out_code, f64, threads);
    py::array out = alloc_out(job.out_type, shape);
    job.out = out.mutable_data();
    const double* kp = kernel.data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        correlate(job, kp, ks);
    }
    return out;
}

template <class T>
py::array sep_filter_impl(py::array_t<T, py::array::c_style> image,
                          std::vector<py::array_t<double, py::array::c_style>> kernels, int border, double value,
                          int out_code, bool f64, int threads) {
    const auto shape = checked_shape(image, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    const AxisTaps taps = axis_taps(kernels, nd);
    FilterJob job = make_job(image, shape, border, value, out_code, f64, threads);
    py::array out = alloc_out(job.out_type, shape);
    job.out = out.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        sep_filter(job, taps.v);
    }
    return out;
}

// Unsharp mask: Gaussian blur (kernels: one 1D kernel per axis, float32 sums,
// float64 for float64 images) and unsharp_combine's formula. 2D: fused, one
// pass, no blurred image stored; 3D: the blur, then the combine.
template <class T>
py::array unsharp_mask_impl(py::array_t<T, py::array::c_style> image,
                            std::vector<py::array_t<double, py::array::c_style>> kernels, int border, double amount,
                            double threshold, int threads) {
    using B = typename std::conditional<std::is_same<T, double>::value, double, float>::type;
    const auto shape = checked_shape(image, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    const AxisTaps taps = axis_taps(kernels, nd);
    if (!std::isfinite(amount)) throw py::value_error("amount must be finite");
    if (!(threshold >= 0.0) || !std::isfinite(threshold)) throw py::value_error("threshold must be finite and >= 0");
    constexpr bool f64 = std::is_same<T, double>::value;
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    py::array_t<T> out(s);
    T* dst = out.mutable_data();
    const T* src = image.data();
    const std::int64_t n = static_cast<std::int64_t>(image.size());
    if (nd == 2) {
        FilterJob job = make_job(image, shape, border, 0.0, 2, f64, threads);
        job.unsharp = true;
        job.amount = amount;
        job.threshold = threshold;
        job.out = dst;
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        sep_filter(job, taps.v);
    } else {
        FilterJob job = make_job(image, shape, border, 0.0, f64 ? 1 : 0, f64, threads);
        py::array_t<B> blurred(s);
        job.out = blurred.mutable_data();
        const B* bl = blurred.data();
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        sep_filter(job, taps.v);
        unsharp_combine(src, bl, n, amount, threshold, dst, job.threads);
    }
    return std::move(out);
}

template <class T>
void def_all(py::module_& m, const std::string& sfx) {
    m.def(("unsharp_mask_" + sfx).c_str(), &unsharp_mask_impl<T>, py::arg("image").noconvert(), py::arg("kernels"),
          py::arg("border"), py::arg("amount"), py::arg("threshold"), py::arg("threads"),
          "Unsharp mask with the given Gaussian kernels (use medfuse.unsharp_mask).");
    m.def(("correlate_" + sfx).c_str(), &correlate_impl<T>, py::arg("image").noconvert(),
          py::arg("kernel").noconvert(), py::arg("border"), py::arg("value"), py::arg("out_code"), py::arg("f64"),
          py::arg("threads"), "Dense correlation (use medfuse.convolve).");
    m.def(("sep_filter_" + sfx).c_str(), &sep_filter_impl<T>, py::arg("image").noconvert(), py::arg("kernels"),
          py::arg("border"), py::arg("value"), py::arg("out_code"), py::arg("f64"), py::arg("threads"),
          "Separable correlation, one 1D kernel per axis (use medfuse.sep_filter).");
}

}  // namespace

void register_convolve(py::module_& m) {
    def_all<std::uint8_t>(m, "u8");
    def_all<std::uint16_t>(m, "u16");
    def_all<std::int16_t>(m, "i16");
    def_all<float>(m, "f32");
    def_all<double>(m, "f64");
}

}  // namespace medfuse::bind
