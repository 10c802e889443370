// Bindings for csrc/edges: canny_<dtype>, sobel_<dtype>.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "edges/canny.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<std::uint16_t>() { return DType::u16; }
template <> constexpr DType dtype_of<std::int16_t>() { return DType::i16; }
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }

template <class T>
py::array_t<std::uint8_t> canny_impl(py::array_t<T, py::array::c_style> image, int aperture, bool l2,
                                     bool exact_int, bool round16, double low_cmp, double high_cmp,
                                     std::vector<double> weights,
                                     std::vector<py::array_t<double, py::array::c_style | py::array::forcecast>> smooth,
                                     int threads) {
    const auto shape = checked_shape(image, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    if (aperture != 3 && aperture != 5 && aperture != 7)
        throw py::value_error("aperture_size must be 3, 5 or 7");
    if (static_cast<int>(weights.size()) != nd)
        throw py::value_error("weights must have one value per axis");
    if (!smooth.empty() && static_cast<int>(smooth.size()) != nd)
        throw py::value_error("smooth must be empty or have one kernel per axis");
    if (exact_int && (nd != 2 || !std::is_integral<T>::value))
        throw py::value_error("exact integer arithmetic applies to 2D integer images only");
    if (round16 && !(exact_int && std::is_same<T, std::uint8_t>::value && aperture == 7))
        throw py::value_error("round16 applies to uint8 with aperture 7 only");
    checked_threads(threads);
    if (!(std::isfinite(low_cmp) && std::isfinite(high_cmp) && low_cmp >= 0 && low_cmp <= high_cmp))
        throw py::value_error("thresholds must be finite with 0 <= low <= high");
    for (double w : weights)
        if (!(std::isfinite(w) && w > 0)) throw py::value_error("weights must be finite and > 0");

    std::vector<std::vector<double>> taps;
    for (auto& k : smooth) {
        if (k.ndim() != 1 || k.shape(0) < 1 || k.shape(0) % 2 == 0)
            throw py::value_error("smoothing kernels must be 1D with an odd length");
        taps.emplace_back(k.data(), k.data() + k.shape(0));
        for (double t : taps.back())
            if (!std::isfinite(t)) throw py::value_error("smoothing kernels must be finite");
    }

    CannyJob job;
    job.img = image.data();
    job.dtype = dtype_of<T>();
    job.ndim = nd;
    job.depth = nd == 3 ? shape[0] : 1;
    job.height = shape[static_cast<std::size_t>(nd - 2)];
    job.width = shape[static_cast<std::size_t>(nd - 1)];
    job.aperture = aperture;
    job.l2 = l2;
    job.exact_int = exact_int;
    job.round16 = round16;
    job.low_cmp = low_cmp;
    job.high_cmp = high_cmp;
    for (int i = 0; i < nd; ++i) job.weights[i + 3 - nd] = weights[static_cast<std::size_t>(i)];

    std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
    py::array_t<std::uint8_t> out(out_shape);
    job.out = out.mutable_data();
    Status st;
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        st = canny(job, taps, threads);
    }
    raise_status(st, "image");
    return out;
}

template <class T, class Out>
py::tuple sobel_impl(py::array_t<T, py::array::c_style> image, int aperture, int border, int threads) {
    const auto shape = checked_shape(image, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    if (aperture != 3 && aperture != 5 && aperture != 7)
        throw py::value_error("aperture_size must be 3, 5 or 7");
    if (border != 0 && border != 1) throw py::value_error("border must be 0 (replicate) or 1 (reflect101)");
    checked_threads(threads);
    std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
    std::vector<py::array_t<Out>> outs;
    std::vector<Out*> ptrs;
    // 2D float: both outputs views of one array, each placed at a chosen distance
    // from the input modulo 4 KiB (sobel_out_phase: 4 KiB aliasing).
    // One allocation of twice the size also keeps glibc from giving the memory
    // back to the system at every free (measured: a process where each call
    // faulted its two 1 MiB outputs in afresh, 850 us against 80 us).
    constexpr bool kPlaced = std::is_floating_point<T>::value && sizeof(T) == sizeof(Out);
    if (kPlaced && nd == 2) {
        const std::int64_t phase =
            sobel_out_phase(reinterpret_cast<std::uintptr_t>(image.data()),
                            static_cast<std::int64_t>(out_shape[1]) * static_cast<std::int64_t>(sizeof(T)),
                            aperture / 2 * static_cast<std::int64_t>(sizeof(Out)));
        constexpr py::ssize_t page = 4096 / static_cast<py::ssize_t>(sizeof(Out));  // elements
        const py::ssize_t stride = (out_shape[0] * out_shape[1] + page - 1) / page * page;
        py::array_t<Out> raw(2 * stride + page);
        const auto addr = reinterpret_cast<std::uintptr_t>(raw.mutable_data());
        const auto skip =
            static_cast<py::ssize_t>((static_cast<std::uintptr_t>(phase) + 4096 - addr % 4096) % 4096 / sizeof(Out));
        for (int i = 0; i < nd; ++i) {
            outs.emplace_back(out_shape, raw.mutable_data() + skip + i * stride, raw);
            ptrs.push_back(outs.back().mutable_data());
        }
    } else {
        for (int i = 0; i < nd; ++i) {
            outs.emplace_back(out_shape);
            ptrs.push_back(outs.back().mutable_data());
        }
    }
    const T* src = image.data();
    Status st;
    {
        py::gil_scoped_release nogil;
        st = sobel<T, Out>(src, nd, shape.data(), aperture, border, ptrs.data(), threads);
    }
    raise_status(st, "image");
    py::tuple result(nd);
    for (int i = 0; i < nd; ++i) result[static_cast<std::size_t>(i)] = outs[static_cast<std::size_t>(i)];
    return result;
}

template <class T>
void def_canny(py::module_& m, const char* name) {
    m.def(name, &canny_impl<T>, py::arg("image").noconvert(), py::arg("aperture"), py::arg("l2"),
          py::arg("exact_int"), py::arg("round16"), py::arg("low_cmp"), py::arg("high_cmp"),
          py::arg("weights"), py::arg("smooth"), py::arg("threads"),
          "Canny on a C-contiguous array of this dtype (use medfuse.canny).");
}

// Integer sobel: int32 output, except 3D 16-bit aperture 7 (int64).
template <class T>
py::tuple sobel_int(py::array_t<T, py::array::c_style> image, int aperture, int border, int threads) {
    if constexpr (!std::is_same<T, std::uint8_t>::value) {
        if (image.ndim() == 3 && aperture == 7)
            return sobel_impl<T, std::int64_t>(image, aperture, border, threads);
    }
    return sobel_impl<T, std::int32_t>(image, aperture, border, threads);
}

}  // namespace

void register_edges(py::module_& m) {
    def_canny<std::uint8_t>(m, "canny_u8");
    def_canny<std::uint16_t>(m, "canny_u16");
    def_canny<std::int16_t>(m, "canny_i16");
    def_canny<float>(m, "canny_f32");
    def_canny<double>(m, "canny_f64");

    const char* sdoc = "Sobel gradients per axis (use medfuse.sobel).";
    m.def("sobel_u8", &sobel_int<std::uint8_t>, py::arg("image").noconvert(), py::arg("aperture"),
          py::arg("border"), py::arg("threads"), sdoc);
    m.def("sobel_u16", &sobel_int<std::uint16_t>, py::arg("image").noconvert(), py::arg("aperture"),
          py::arg("border"), py::arg("threads"), sdoc);
    m.def("sobel_i16", &sobel_int<std::int16_t>, py::arg("image").noconvert(), py::arg("aperture"),
          py::arg("border"), py::arg("threads"), sdoc);
    m.def("sobel_f32", &sobel_impl<float, float>, py::arg("image").noconvert(), py::arg("aperture"),
          py::arg("border"), py::arg("threads"), sdoc);
    m.def("sobel_f64", &sobel_impl<double, double>, py::arg("image").noconvert(), py::arg("aperture"),
          py::arg("border"), py::arg("threads"), sdoc);
}

}  // namespace medfuse::bind
