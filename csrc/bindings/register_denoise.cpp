// Bindings for csrc/denoise: nlm_<dtype> (non-local means).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "denoise/nlm.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

template <class T>
py::array_t<T> nlm_impl(py::array_t<T, py::array::c_style> image, int patch_radius, int search_radius,
                        py::array_t<float, py::array::c_style> lut, float scale, int threads) {
    const auto shape = checked_shape(image, "image", {2});
    if (patch_radius < 0 || patch_radius > 7) throw py::value_error("patch_radius must be between 0 and 7");
    if (search_radius < 0 || search_radius > 32) throw py::value_error("search_radius must be between 0 and 32");
    if (lut.ndim() != 1 || lut.shape(0) < 2) throw py::value_error("lut must be 1-dimensional with >= 2 entries");
    if (!(std::isfinite(scale) && scale >= 0)) throw py::value_error("scale must be finite and >= 0");
    checked_threads(threads);
    const std::int64_t h = shape[0], w = shape[1];
    const int R = patch_radius + search_radius;
    if ((h + 2 * R) > (std::int64_t(1) << 31) / (w + 2 * R)) throw py::value_error("image is too large");
    const int bins = static_cast<int>(lut.shape(0) - 1);
    const float* tab = lut.data();
    for (int i = 0; i <= bins; ++i)
        if (!(std::isfinite(tab[i]) && tab[i] >= 0)) throw py::value_error("lut must be finite and >= 0");
    if (tab[bins] != 0.f || !(tab[0] > 0.f)) throw py::value_error("lut must start > 0 and end with 0");
    const T* src = image.data();
    if constexpr (std::is_same<T, float>::value) {
        for (std::int64_t i = 0; i < h * w; ++i)
            if (!std::isfinite(src[i])) throw py::value_error("image contains NaN or infinity");
    }
    py::array_t<T> out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w)});
    T* dst = out.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        if constexpr (std::is_same<T, float>::value)
            nlm_f32(src, h, w, patch_radius, search_radius, tab, bins, scale, dst, threads);
        else
            nlm_u8(src, h, w, patch_radius, search_radius, tab, bins, scale, dst, threads);
    }
    return out;
}

}  // namespace

void register_denoise(py::module_& m) {
    const char* doc = "Non-local means, 2D (use medfuse.nl_means).";
    m.def("nlm_u8", &nlm_impl<std::uint8_t>, py::arg("image").noconvert(), py::arg("patch_radius"),
          py::arg("search_radius"), py::arg("lut").noconvert(), py::arg("scale"), py::arg("threads"), doc);
    m.def("nlm_f32", &nlm_impl<float>, py::arg("image").noconvert(), py::arg("patch_radius"),
          py::arg("search_radius"), py::arg("lut").noconvert(), py::arg("scale"), py::arg("threads"), doc);
}

}  // namespace medfuse::bind
