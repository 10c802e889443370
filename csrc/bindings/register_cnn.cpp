// Bindings for the CNN layer (csrc/convolve/conv2d*): conv2d_f32.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <algorithm>
#include <optional>
#include <string>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "convolve/conv2d.hpp"
#include "convolve/conv2d_backward.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

using F32 = py::array_t<float, py::array::c_style>;

bool overlaps(const py::array& a, const py::array& b) {
    const auto* a0 = static_cast<const char*>(a.data());
    const auto* b0 = static_cast<const char*>(b.data());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

py::array_t<float> conv2d_impl(F32 x, F32 weight, std::optional<F32> bias, std::int64_t sh, std::int64_t sw,
                               std::int64_t ph, std::int64_t pw, std::int64_t dh, std::int64_t dw,
                               std::int64_t groups, bool relu, int threads, std::optional<py::array> out_arg) {
    const auto xs = checked_shape(x, "x", {4});
    const auto ws = checked_shape(weight, "weight", {4});
    checked_threads(threads);
    if (sh < 1 || sw < 1) throw py::value_error("stride must be >= 1");
    if (ph < 0 || pw < 0) throw py::value_error("padding must be >= 0");
    if (dh < 1 || dw < 1) throw py::value_error("dilation must be >= 1");
    const std::int64_t lim = std::int64_t(1) << 31;
    for (auto v : {sh, sw, ph, pw, dh, dw})
        if (v > lim) throw py::value_error("stride, padding and dilation must be < 2**31");
    if (groups < 1 || xs[1] % groups || ws[0] % groups)
        throw py::value_error("groups must divide the input and output channels");
    if (ws[1] * groups != xs[1]) throw py::value_error("weight and x have mismatched channels");
    if (bias && (bias->ndim() != 1 || bias->shape(0) != ws[0]))
        throw py::value_error("bias must have shape (C_out,)");
    Conv2dJob job;
    job.n = xs[0]; job.c = xs[1]; job.h = xs[2]; job.wd = xs[3];
    job.co = ws[0]; job.kh = ws[2]; job.kw = ws[3];
    job.sh = sh; job.sw = sw; job.ph = ph; job.pw = pw; job.dh = dh; job.dw = dw;
    job.groups = groups;
    job.relu = relu;
    const std::int64_t eh = job.h + 2 * ph - dh * (job.kh - 1) - 1;
    const std::int64_t ew = job.wd + 2 * pw - dw * (job.kw - 1) - 1;
    if (eh < 0 || ew < 0) throw py::value_error("weight is larger than the padded input");
    job.ho = eh / sh + 1;
    job.wo = ew / sw + 1;
    // Sizes: output elements and the packed K must fit comfortably.
    const std::int64_t K = ws[1] * job.kh * job.kw;
    if (K > lim || job.ho * job.wo > lim || job.n * job.co > lim / 4 ||
        (job.n * job.co) > (std::int64_t(1) << 40) / (job.ho * job.wo))
        throw py::value_error("conv2d output or reduction is too large");
    const std::vector<py::ssize_t> oshape = {static_cast<py::ssize_t>(job.n), static_cast<py::ssize_t>(job.co),
                                             static_cast<py::ssize_t>(job.ho), static_cast<py::ssize_t>(job.wo)};
    py::array_t<float> out;
    if (out_arg) {
        // A caller's buffer (reused between calls: no fresh pages to fault and zero): float32, C-contiguous,
        // writeable, the output's shape, sharing no memory with the inputs.
        const py::array& o = *out_arg;
        if (!py::isinstance<py::array_t<float>>(o) || !(o.flags() & py::array::c_style) || !o.writeable())
            throw py::type_error("out must be a writeable C-contiguous float32 array");
        if (o.ndim() != 4 || !std::equal(oshape.begin(), oshape.end(), o.shape()))
            throw py::value_error("out must have the output's shape (n, C_out, H_out, W_out)");
        if (overlaps(o, x) || overlaps(o, weight) || (bias && overlaps(o, *bias)))
            throw py::value_error("out must not share memory with x, weight or bias");
        out = py::reinterpret_borrow<py::array_t<float>>(o);
    } else {
        out = py::array_t<float>(oshape);
    }
    job.x = x.data();
    job.w = weight.data();
    job.bias = bias ? bias->data() : nullptr;
    job.y = out.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        conv2d_f32(job, threads);
    }
    return out;
}

// Shapes and parameters shared by the backward and float64 forward entry points.
template <class T>
Conv2dGradJob<T> grad_job(const py::array& x, const py::array& weight, std::int64_t sh, std::int64_t sw,
                          std::int64_t ph, std::int64_t pw, std::int64_t dh, std::int64_t dw, std::int64_t groups) {
    const auto xs = checked_shape(x, "x", {4});
    const auto ws = checked_shape(weight, "weight", {4});
    if (sh < 1 || sw < 1) throw py::value_error("stride must be >= 1");
    if (ph < 0 || pw < 0) throw py::value_error("padding must be >= 0");
    if (dh < 1 || dw < 1) throw py::value_error("dilation must be >= 1");
    const std::int64_t lim = std::int64_t(1) << 31;
    for (auto v : {sh, sw, ph, pw, dh, dw})
        if (v > lim) throw py::value_error("stride, padding and dilation must be < 2**31");
    if (groups < 1 || xs[1] % groups || ws[0] % groups)
        throw py::value_error("groups must divide the input and output channels");
    if (ws[1] * groups != xs[1]) throw py::value_error("weight and x have mismatched channels");
    Conv2dGradJob<T> job;
    job.n = xs[0]; job.c = xs[1]; job.h = xs[2]; job.wd = xs[3];
    job.co = ws[0]; job.kh = ws[2]; job.kw = ws[3];
    job.sh = sh; job.sw = sw; job.ph = ph; job.pw = pw; job.dh = dh; job.dw = dw;
    job.groups = groups;
    const std::int64_t eh = job.h + 2 * ph - dh * (job.kh - 1) - 1;
    const std::int64_t ew = job.wd + 2 * pw - dw * (job.kw - 1) - 1;
    if (eh < 0 || ew < 0) throw py::value_error("weight is larger than the padded input");
    job.ho = eh / sh + 1;
    job.wo = ew / sw + 1;
    if (ws[1] * job.kh * job.kw > lim || job.ho * job.wo > lim || job.n * job.co > lim / 4 ||
        job.n * job.c > lim / 4 || (job.n * job.co) > (std::int64_t(1) << 40) / (job.ho * job.wo))
        throw py::value_error("conv2d output or reduction is too large");
    return job;
}

template <class T>
py::tuple conv2d_backward_impl(py::array_t<T, py::array::c_style> x, py::array_t<T, py::array::c_style> weight,
                               py::array_t<T, py::array::c_style> grad_out, bool need_x, bool need_w, bool need_b,
                               std::int64_t sh, std::int64_t sw, std::int64_t ph, std::int64_t pw, std::int64_t dh,
                               std::int64_t dw, std::int64_t groups, int threads) {
    checked_threads(threads);
    Conv2dGradJob<T> job = grad_job<T>(x, weight, sh, sw, ph, pw, dh, dw, groups);
    const auto gs = checked_shape(grad_out, "grad_out", {4});
    if (gs[0] != job.n || gs[1] != job.co || gs[2] != job.ho || gs[3] != job.wo)
        throw py::value_error("grad_out must have the output's shape (N, C_out, H_out, W_out)");
    py::object gx = py::none(), gw = py::none(), gb = py::none();
    job.x = x.data();
    job.w = weight.data();
    job.gy = grad_out.data();
    if (need_x) {
        py::array_t<T> a({static_cast<py::ssize_t>(job.n), static_cast<py::ssize_t>(job.c),
                          static_cast<py::ssize_t>(job.h), static_cast<py::ssize_t>(job.wd)});
        job.gx = a.mutable_data();
        gx = a;
    }
    if (need_w) {
        py::array_t<T> a({static_cast<py::ssize_t>(weight.shape(0)), static_cast<py::ssize_t>(weight.shape(1)),
                          static_cast<py::ssize_t>(weight.shape(2)), static_cast<py::ssize_t>(weight.shape(3))});
        job.gw = a.mutable_data();
        gw = a;
    }
    if (need_b) {
        py::array_t<T> a({static_cast<py::ssize_t>(job.co)});
        job.gb = a.mutable_data();
        gb = a;
    }
    {
        py::gil_scoped_release nogil;
        if constexpr (sizeof(T) == 4)
            conv2d_backward_f32(job, threads);
        else
            conv2d_backward_f64(job, threads);
    }
    return py::make_tuple(gx, gw, gb);
}

py::array_t<double> conv2d_f64_impl(py::array_t<double, py::array::c_style> x,
                                    py::array_t<double, py::array::c_style> weight,
                                    std::optional<py::array_t<double, py::array::c_style>> bias, std::int64_t sh,
                                    std::int64_t sw, std::int64_t ph, std::int64_t pw, std::int64_t dh,
                                    std::int64_t dw, std::int64_t groups, int threads) {
    checked_threads(threads);
    Conv2dGradJob<double> job = grad_job<double>(x, weight, sh, sw, ph, pw, dh, dw, groups);
    if (bias && (bias->ndim() != 1 || bias->shape(0) != job.co))
        throw py::value_error("bias must have shape (C_out,)");
    py::array_t<double> out({static_cast<py::ssize_t>(job.n), static_cast<py::ssize_t>(job.co),
                             static_cast<py::ssize_t>(job.ho), static_cast<py::ssize_t>(job.wo)});
    job.x = x.data();
    job.w = weight.data();
    job.gy = bias ? bias->data() : nullptr;
    job.gx = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        conv2d_forward_f64(job, threads);
    }
    return out;
}

}  // namespace

void register_cnn(py::module_& m) {
    m.def("conv2d_f32", &conv2d_impl, py::arg("x").noconvert(), py::arg("weight").noconvert(),
          py::arg("bias").noconvert().none(true), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
          py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("relu"), py::arg("threads"),
          py::arg("out") = py::none(),
          "conv2d on C-contiguous float32 arrays (use medfuse.conv2d); `out`: a float32 C-contiguous array of "
          "the output's shape to write into (returned).");
    m.def("conv2d_f64", &conv2d_f64_impl, py::arg("x").noconvert(), py::arg("weight").noconvert(),
          py::arg("bias").noconvert().none(true), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
          py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("threads"),
          "Direct conv2d on C-contiguous float64 arrays (use medfuse.conv2d).");
    m.def("conv2d_backward_f32", &conv2d_backward_impl<float>, py::arg("x").noconvert(),
          py::arg("weight").noconvert(), py::arg("grad_out").noconvert(), py::arg("need_x"), py::arg("need_w"),
          py::arg("need_b"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"),
          py::arg("dw"), py::arg("groups"), py::arg("threads"),
          "conv2d gradients on C-contiguous float32 arrays (use medfuse.conv2d_backward).");
    m.def("conv2d_backward_f64", &conv2d_backward_impl<double>, py::arg("x").noconvert(),
          py::arg("weight").noconvert(), py::arg("grad_out").noconvert(), py::arg("need_x"), py::arg("need_w"),
          py::arg("need_b"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"),
          py::arg("dw"), py::arg("groups"), py::arg("threads"),
          "conv2d gradients on C-contiguous float64 arrays (use medfuse.conv2d_backward).");
}

}  // namespace medfuse::bind
