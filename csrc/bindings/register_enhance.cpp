// Bindings for csrc/enhance: median_<dtype>, bilateral_<dtype>.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "enhance/bilateral.hpp"
#include "enhance/median.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

template <class T>
py::array_t<T> median_impl(py::array_t<T, py::array::c_style> image, std::vector<std::int64_t> size,
                           int border, int threads) {
    const auto shape = checked_shape(image, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    if (static_cast<int>(size.size()) != nd) throw py::value_error("size must have one value per axis");
    for (auto s : size)
        if (s < 1 || s % 2 == 0 || s > (std::int64_t(1) << 20))
            throw py::value_error("size values must be odd, >= 1 and <= 2**20");
    std::int64_t cnt = 1, padded = 1;
    for (int a = 0; a < nd; ++a) {
        const auto ua = static_cast<std::size_t>(a);
        cnt *= size[ua];
        padded *= shape[ua] + size[ua];
        if (cnt > (std::int64_t(1) << 31) || padded > (std::int64_t(1) << 34))
            throw py::value_error("size is too large: the window or the padded image would not fit in memory");
    }
    if (border != 0 && border != 1) throw py::value_error("border must be 0 (reflect101) or 1 (replicate)");
    checked_threads(threads);
    std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
    py::array_t<T> out(out_shape);
    const T* src = image.data();
    T* dst = out.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        median_filter<T>(src, nd, shape.data(), size.data(), static_cast<MedianBorder>(border), dst, threads);
    }
    return out;
}

template <class T>
void def_median(py::module_& m, const char* name) {
    m.def(name, &median_impl<T>, py::arg("image").noconvert(), py::arg("size"), py::arg("border"),
          py::arg("threads"), "Median filter on a C-contiguous array of this dtype (use medfuse.median).");
}

template <class T>
py::array_t<T> bilateral_impl(py::array_t<T, py::array::c_style> image, int radius, double sigma_color,
                              double sigma_space, int threads) {
    const auto shape = checked_shape(image, "image", {2});
    if (radius < 1 || radius > 1024) throw py::value_error("radius must be between 1 and 1024");
    if (!(std::isfinite(sigma_color) && sigma_color > 0)) throw py::value_error("sigma_color must be finite and > 0");
    if (!(std::isfinite(sigma_space) && sigma_space > 0)) throw py::value_error("sigma_space must be finite and > 0");
    checked_threads(threads);
    const std::int64_t h = shape[0], w = shape[1];
    if ((h + 2 * radius) > (std::int64_t(1) << 31) / (w + 2 * radius))
        throw py::value_error("image is too large for the padded copy");
    const T* src = image.data();
    py::array_t<T> out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w)});
    T* dst = out.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        if constexpr (std::is_same<T, float>::value)
            bilateral_f32(src, h, w, radius, sigma_color, sigma_space, dst, threads);
        else
            bilateral_u8(src, h, w, radius, sigma_color, sigma_space, dst, threads);
    }
    return out;
}

}  // namespace

void register_enhance(py::module_& m) {
    def_median<std::uint8_t>(m, "median_u8");
    def_median<std::uint16_t>(m, "median_u16");
    def_median<std::int16_t>(m, "median_i16");
    def_median<float>(m, "median_f32");
    const char* bdoc = "Bilateral filter, 2D (use medfuse.bilateral).";
    m.def("bilateral_u8", &bilateral_impl<std::uint8_t>, py::arg("image").noconvert(), py::arg("radius"),
          py::arg("sigma_color"), py::arg("sigma_space"), py::arg("threads"), bdoc);
    m.def("bilateral_f32", &bilateral_impl<float>, py::arg("image").noconvert(), py::arg("radius"),
          py::arg("sigma_color"), py::arg("sigma_space"), py::arg("threads"), bdoc);
}

}  // namespace medfuse::bind
