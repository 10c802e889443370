// Bindings for csrc/histogram: hist_keys_*, hist_uniform_*, hist_edges_*,
// digitize_*, min_max_*, window_*, equalize_hist_*, clahe_*.
// Arrays arrive C-contiguous in native byte order (checked, never converted);
// medfuse/histogram.py and medfuse/contrast.py do the planning.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "histogram/histogram.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

template <class T>
using carr = py::array_t<T, py::array::c_style>;

std::vector<py::ssize_t> shape_of(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// The optional bool mask (same shape as x) as a byte pointer, or nullptr.
const std::uint8_t* mask_ptr(const py::object& mask, const py::array& x, carr<bool>& keep) {
    if (mask.is_none()) return nullptr;
    if (!py::isinstance<carr<bool>>(mask)) throw py::type_error("mask must be a C-contiguous bool array");
    keep = py::reinterpret_borrow<carr<bool>>(mask);
    if (!(keep.flags() & py::array::c_style)) throw py::type_error("mask must be C-contiguous");
    if (shape_of(keep) != shape_of(x)) throw py::value_error("mask must have the shape of x");
    return reinterpret_cast<const std::uint8_t*>(keep.data());
}

const double* weights_ptr(const py::object& weights, const py::array& x, carr<double>& keep) {
    if (weights.is_none()) return nullptr;
    if (!py::isinstance<carr<double>>(weights)) throw py::type_error("weights must be a C-contiguous float64 array");
    keep = py::reinterpret_borrow<carr<double>>(weights);
    if (!(keep.flags() & py::array::c_style)) throw py::type_error("weights must be C-contiguous");
    if (shape_of(keep) != shape_of(x)) throw py::value_error("weights must have the shape of x");
    return keep.data();
}

// array_t<T> without conversion already refuses other dtypes and byte orders.
void check_native(const py::array& a, const char* name) {
    const char bo = a.dtype().byteorder();
    if (bo == '>') throw py::type_error(std::string(name) + " must be in native byte order");
}

template <class T>
py::array_t<std::int64_t> hist_keys_impl(carr<T> x, py::object mask, std::int64_t lo, std::int64_t hi, int shift,
                                         int threads) {
    checked_threads(threads);
    check_native(x, "x");
    if (hi < lo || shift < 0 || shift > 31) throw py::value_error("invalid key range");
    if (((hi - lo) >> shift) >= (std::int64_t(1) << 26)) throw py::value_error("too many keys");
    carr<bool> mk;
    const std::uint8_t* m = mask_ptr(mask, x, mk);
    const std::int64_t n_keys = ((hi - lo) >> shift) + 1;
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(n_keys));
    std::int64_t* o = out.mutable_data();
    for (std::int64_t k = 0; k < n_keys; ++k) o[k] = 0;
    const T* xp = x.data();
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    {
        py::gil_scoped_release nogil;  // raw pointers only below
        hist_keys<T>(xp, m, n, lo, hi, shift, o, threads);
    }
    return out;
}

template <class T, class B, class D>
py::array hist_uniform_impl(carr<T> x, py::object mask, py::object weights, double lo_thr, double hi_thr, double lo_b,
                            double denom, carr<B> edges, int threads) {
    checked_threads(threads);
    check_native(x, "x");
    if (edges.ndim() != 1 || edges.shape(0) < 2) throw py::value_error("edges must be 1D with at least 2 values");
    if (!(std::isfinite(denom) && denom > 0)) throw py::value_error("denom must be finite and > 0");
    const double tmin = static_cast<double>(std::numeric_limits<T>::lowest());
    const double tmax = static_cast<double>(std::numeric_limits<T>::max());
    if (!(lo_thr >= tmin && lo_thr <= tmax && hi_thr >= tmin && hi_thr <= tmax))
        throw py::value_error("lo_thr and hi_thr must be values of the data type");
    carr<bool> mk;
    carr<double> wk;
    const std::uint8_t* m = mask_ptr(mask, x, mk);
    const double* w = weights_ptr(weights, x, wk);
    const std::int64_t nbins = static_cast<std::int64_t>(edges.shape(0)) - 1;
    const T* xp = x.data();
    const B* ep = edges.data();
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    const T lo = static_cast<T>(lo_thr), hi = static_cast<T>(hi_thr);
    if (w) {
        py::array_t<double> out(static_cast<py::ssize_t>(nbins));
        double* o = out.mutable_data();
        for (std::int64_t k = 0; k < nbins; ++k) o[k] = 0.0;
        py::gil_scoped_release nogil;
        hist_uniform<T, B, D>(xp, m, w, n, lo, hi, static_cast<B>(lo_b), static_cast<D>(denom), ep, nbins, nullptr, o,
                              threads);
        return std::move(out);
    }
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(nbins));
    std::int64_t* o = out.mutable_data();
    for (std::int64_t k = 0; k < nbins; ++k) o[k] = 0;
    {
        py::gil_scoped_release nogil;
        hist_uniform<T, B, D>(xp, m, nullptr, n, lo, hi, static_cast<B>(lo_b), static_cast<D>(denom), ep, nbins, o,
                              nullptr, threads);
    }
    return std::move(out);
}

template <class T>
py::array hist_edges_impl(carr<T> x, py::object mask, py::object weights, carr<double> edges, int threads) {
    checked_threads(threads);
    check_native(x, "x");
    if (edges.ndim() != 1 || edges.shape(0) < 2) throw py::value_error("edges must be 1D with at least 2 values");
    const double* ep = edges.data();
    for (py::ssize_t i = 0; i < edges.shape(0); ++i) {
        if (std::isnan(ep[i])) throw py::value_error("edges must not contain NaN");
        if (i > 0 && ep[i] < ep[i - 1]) throw py::value_error("edges must be non-decreasing");
    }
    carr<bool> mk;
    carr<double> wk;
    const std::uint8_t* m = mask_ptr(mask, x, mk);
    const double* w = weights_ptr(weights, x, wk);
    const std::int64_t nbins = static_cast<std::int64_t>(edges.shape(0)) - 1;
    const T* xp = x.data();
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    if (w) {
        py::array_t<double> out(static_cast<py::ssize_t>(nbins));
        double* o = out.mutable_data();
        for (std::int64_t k = 0; k < nbins; ++k) o[k] = 0.0;
        py::gil_scoped_release nogil;
        hist_edges<T>(xp, m, w, n, ep, nbins, nullptr, o, threads);
        return std::move(out);
    }
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(nbins));
    std::int64_t* o = out.mutable_data();
    for (std::int64_t k = 0; k < nbins; ++k) o[k] = 0;
    {
        py::gil_scoped_release nogil;
        hist_edges<T>(xp, m, nullptr, n, ep, nbins, o, nullptr, threads);
    }
    return std::move(out);
}

template <class T>
py::array_t<std::int32_t> digitize_impl(carr<T> x, py::object mask, carr<double> edges, int threads) {
    checked_threads(threads);
    check_native(x, "x");
    if (edges.ndim() != 1 || edges.shape(0) < 1) throw py::value_error("edges must be 1D and non-empty");
    if (edges.shape(0) >= std::numeric_limits<std::int32_t>::max()) throw py::value_error("too many edges");
    const double* ep = edges.data();
    for (py::ssize_t i = 1; i < edges.shape(0); ++i)
        if (!(ep[i] >= ep[i - 1])) throw py::value_error("edges must be non-decreasing");
    carr<bool> mk;
    const std::uint8_t* m = mask_ptr(mask, x, mk);
    py::array_t<std::int32_t> out(shape_of(x));
    std::int32_t* o = out.mutable_data();
    const T* xp = x.data();
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    const std::int64_t ne = static_cast<std::int64_t>(edges.shape(0));
    {
        py::gil_scoped_release nogil;
        digitize<T>(xp, m, n, ep, ne, o, threads);
    }
    return out;
}

template <class T>
py::tuple min_max_impl(carr<T> x, py::object mask, int threads) {
    checked_threads(threads);
    check_native(x, "x");
    if (x.size() == 0) throw py::value_error("x is empty");
    carr<bool> mk;
    const std::uint8_t* m = mask_ptr(mask, x, mk);
    T mn{}, mx{};
    std::int64_t sel = 0, nan = 0;
    const T* xp = x.data();
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    {
        py::gil_scoped_release nogil;
        min_max<T>(xp, m, n, &mn, &mx, &sel, &nan, threads);
    }
    return py::make_tuple(mn, mx, sel, nan);
}

template <class T, class O>
py::array_t<O> window_typed(const carr<T>& x, double lo, double scale, double top, int threads) {
    py::array_t<O> out(shape_of(x));
    O* o = out.mutable_data();
    const T* xp = x.data();
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    std::int64_t bad = 0;
    {
        py::gil_scoped_release nogil;
        bad = window<T, O>(xp, n, lo, scale, top, o, threads);
    }
    if (bad > 0) throw py::value_error("hu contains NaN (" + std::to_string(bad) + " values)");
    return out;
}

template <class T>
py::array window_impl(carr<T> x, double lo, double scale, double top, const std::string& out_code, int threads) {
    checked_threads(threads);
    check_native(x, "hu");
    if (!(std::isfinite(lo) && std::isfinite(scale) && scale > 0 && std::isfinite(top) && top > 0))
        throw py::value_error("window parameters must be finite, scale and top > 0");
    if (out_code == "u8") return window_typed<T, std::uint8_t>(x, lo, scale, top, threads);
    if (out_code == "u16") return window_typed<T, std::uint16_t>(x, lo, scale, top, threads);
    if (out_code == "f32") return window_typed<T, float>(x, lo, scale, top, threads);
    if (out_code == "f64") return window_typed<T, double>(x, lo, scale, top, threads);
    throw py::value_error("out_code must be u8, u16, f32 or f64");
}

template <class T>
py::array_t<T> equalize_impl(carr<T> image, int threads) {
    checked_threads(threads);
    check_native(image, "image");
    if (image.size() == 0) throw py::value_error("image is empty");
    if (image.size() >= std::numeric_limits<int>::max()) throw py::value_error("image too large (2**31 pixels or more)");
    py::array_t<T> out(shape_of(image));
    T* o = out.mutable_data();
    const T* xp = image.data();
    const std::int64_t n = static_cast<std::int64_t>(image.size());
    {
        py::gil_scoped_release nogil;
        equalize_hist<T>(xp, n, o, threads);
    }
    return out;
}

template <class T>
py::array_t<T> clahe_impl(carr<T> image, double clip_limit, int tiles_y, int tiles_x, int threads) {
    checked_threads(threads);
    check_native(image, "image");
    const auto shape = checked_shape(image, "image", {2});
    if (tiles_y < 1 || tiles_x < 1 || tiles_y > 4096 || tiles_x > 4096)
        throw py::value_error("tile_grid values must be between 1 and 4096");
    if (!std::isfinite(clip_limit)) throw py::value_error("clip_limit must be finite");
    const std::int64_t H = shape[0], W = shape[1];
    const std::int64_t HE = H + tiles_y, WE = W + tiles_x;
    if (HE >= (std::int64_t(1) << 31) || WE >= (std::int64_t(1) << 31) ||
        (HE / tiles_y) * (WE / tiles_x) >= std::numeric_limits<int>::max())
        throw py::value_error("image too large for CLAHE tiles (tile area must be < 2**31)");
    const double levels = sizeof(T) == 1 ? 256.0 : 65536.0;
    const std::int64_t th = (H % tiles_y == 0 && W % tiles_x == 0) ? H / tiles_y : (H + tiles_y - H % tiles_y) / tiles_y;
    const std::int64_t tw = (H % tiles_y == 0 && W % tiles_x == 0) ? W / tiles_x : (W + tiles_x - W % tiles_x) / tiles_x;
    if (clip_limit * static_cast<double>(th * tw) / levels >= 2147483647.0)
        throw py::value_error("clip_limit too large for this tile size");
    py::array_t<T> out(shape_of(image));
    T* o = out.mutable_data();
    const T* xp = image.data();
    {
        py::gil_scoped_release nogil;
        clahe<T>(xp, H, W, clip_limit, tiles_y, tiles_x, o, threads);
    }
    return out;
}

template <class T>
void def_all(py::module_& m, const std::string& sfx) {
    m.def(("hist_edges_" + sfx).c_str(), &hist_edges_impl<T>, py::arg("x").noconvert(), py::arg("mask"),
          py::arg("weights"), py::arg("edges").noconvert(), py::arg("threads"),
          "Histogram over explicit edges (use medfuse.histogram).");
    m.def(("digitize_" + sfx).c_str(), &digitize_impl<T>, py::arg("x").noconvert(), py::arg("mask"),
          py::arg("edges").noconvert(), py::arg("threads"), "numpy.digitize as int32 (use medfuse.quantize).");
    m.def(("min_max_" + sfx).c_str(), &min_max_impl<T>, py::arg("x").noconvert(), py::arg("mask"),
          py::arg("threads"), "(min, max, selected, nan_count) of the selected values.");
    m.def(("window_" + sfx).c_str(), &window_impl<T>, py::arg("hu").noconvert(), py::arg("lo"), py::arg("scale"),
          py::arg("top"), py::arg("out_code"), py::arg("threads"), "CT windowing (use medfuse.window).");
}

}  // namespace

void register_histogram(py::module_& m) {
    const char* kdoc = "Integer key counts (use medfuse.histogram).";
    m.def("hist_keys_u8", &hist_keys_impl<std::uint8_t>, py::arg("x").noconvert(), py::arg("mask"), py::arg("lo"),
          py::arg("hi"), py::arg("shift"), py::arg("threads"), kdoc);
    m.def("hist_keys_u16", &hist_keys_impl<std::uint16_t>, py::arg("x").noconvert(), py::arg("mask"), py::arg("lo"),
          py::arg("hi"), py::arg("shift"), py::arg("threads"), kdoc);
    m.def("hist_keys_i16", &hist_keys_impl<std::int16_t>, py::arg("x").noconvert(), py::arg("mask"), py::arg("lo"),
          py::arg("hi"), py::arg("shift"), py::arg("threads"), kdoc);
    m.def("hist_keys_i32", &hist_keys_impl<std::int32_t>, py::arg("x").noconvert(), py::arg("mask"), py::arg("lo"),
          py::arg("hi"), py::arg("shift"), py::arg("threads"), kdoc);

    const char* udoc = "numpy.histogram uniform bins (use medfuse.histogram).";
#define MEDFUSE_DEF_UNIFORM(name, T, B, D)                                                                       \
    m.def(name, &hist_uniform_impl<T, B, D>, py::arg("x").noconvert(), py::arg("mask"), py::arg("weights"),      \
          py::arg("lo_thr"), py::arg("hi_thr"), py::arg("lo_b"), py::arg("denom"), py::arg("edges").noconvert(), \
          py::arg("threads"), udoc)
    MEDFUSE_DEF_UNIFORM("hist_uniform_u8", std::uint8_t, double, double);
    MEDFUSE_DEF_UNIFORM("hist_uniform_u16", std::uint16_t, double, double);
    MEDFUSE_DEF_UNIFORM("hist_uniform_i16", std::int16_t, double, double);
    MEDFUSE_DEF_UNIFORM("hist_uniform_i32", std::int32_t, double, double);
    MEDFUSE_DEF_UNIFORM("hist_uniform_f64", double, double, double);
    MEDFUSE_DEF_UNIFORM("hist_uniform_f32_f32_f32", float, float, float);
    MEDFUSE_DEF_UNIFORM("hist_uniform_f32_f32_f64", float, float, double);
    MEDFUSE_DEF_UNIFORM("hist_uniform_f32_f64_f64", float, double, double);
#undef MEDFUSE_DEF_UNIFORM

    def_all<std::uint8_t>(m, "u8");
    def_all<std::uint16_t>(m, "u16");
    def_all<std::int16_t>(m, "i16");
    def_all<std::int32_t>(m, "i32");
    def_all<float>(m, "f32");
    def_all<double>(m, "f64");

    m.def("equalize_hist_u8", &equalize_impl<std::uint8_t>, py::arg("image").noconvert(), py::arg("threads"),
          "cv2.equalizeHist (use medfuse.equalize_hist).");
    m.def("equalize_hist_u16", &equalize_impl<std::uint16_t>, py::arg("image").noconvert(), py::arg("threads"),
          "equalizeHist for uint16 (use medfuse.equalize_hist).");
    m.def("clahe_u8", &clahe_impl<std::uint8_t>, py::arg("image").noconvert(), py::arg("clip_limit"),
          py::arg("tiles_y"), py::arg("tiles_x"), py::arg("threads"), "cv2 CLAHE (use medfuse.clahe).");
    m.def("clahe_u16", &clahe_impl<std::uint16_t>, py::arg("image").noconvert(), py::arg("clip_limit"),
          py::arg("tiles_y"), py::arg("tiles_x"), py::arg("threads"), "cv2 CLAHE (use medfuse.clahe).");
}

}  // namespace medfuse::bind
