// Bindings for the CNN layer (csrc/convolve/conv2d*): conv2d_f32.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "convolve/conv2d.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

using F32 = py::array_t<float, py::array::c_style>;

py::array_t<float> conv2d_impl(F32 x, F32 weight, std::optional<F32> bias, std::int64_t sh, std::int64_t sw,
                               std::int64_t ph, std::int64_t pw, std::int64_t dh, std::int64_t dw,
                               std::int64_t groups, bool relu, int threads) {
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
    py::array_t<float> out({static_cast<py::ssize_t>(job.n), static_cast<py::ssize_t>(job.co),
                            static_cast<py::ssize_t>(job.ho), static_cast<py::ssize_t>(job.wo)});
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

}  // namespace

void register_cnn(py::module_& m) {
    m.def("conv2d_f32", &conv2d_impl, py::arg("x").noconvert(), py::arg("weight").noconvert(),
          py::arg("bias").noconvert().none(true), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
          py::arg("dh"), py::arg("dw"), py::arg("groups"), py::arg("relu"), py::arg("threads"),
          "conv2d on C-contiguous float32 arrays (use medfuse.conv2d).");
}

}  // namespace medfuse::bind
