// Bindings for csrc/morphology: label_u8, fill_holes_u8, binary_morph_u8.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "morphology/binary.hpp"
#include "morphology/label.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

py::tuple label_u8(py::array_t<std::uint8_t, py::array::c_style> mask, int rank, int threads) {
    const auto shape = checked_shape(mask, "binary", {2, 3});
    const int nd = static_cast<int>(shape.size());
    if (rank < 1 || rank > nd) throw py::value_error("connectivity rank must be between 1 and ndim");
    checked_threads(threads);
    LabelJob job;
    job.mask = mask.data();
    job.depth = nd == 3 ? shape[0] : 1;
    job.height = shape[static_cast<std::size_t>(nd - 2)];
    job.width = shape[static_cast<std::size_t>(nd - 1)];
    job.rank = rank;
    std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
    py::array_t<std::int32_t> out(out_shape);  // the input exists, so its size product fits
    job.out = out.mutable_data();
    std::int64_t count = 0;
    {
        py::gil_scoped_release nogil;
        count = label(job, threads);
    }
    return py::make_tuple(out, count);
}

py::array_t<std::uint8_t> fill_holes_u8(py::array_t<std::uint8_t, py::array::c_style> mask, int rank, int threads) {
    const auto shape = checked_shape(mask, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    if (rank < 1 || rank > nd) throw py::value_error("connectivity rank must be between 1 and ndim");
    checked_threads(threads);
    std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
    py::array_t<std::uint8_t> out(out_shape);
    const std::int64_t depth = nd == 3 ? shape[0] : 1;
    {
        py::gil_scoped_release nogil;
        fill_holes(mask.data(), depth, shape[static_cast<std::size_t>(nd - 2)], shape[static_cast<std::size_t>(nd - 1)],
                   nd, rank, out.mutable_data(), threads);
    }
    return out;
}

py::array_t<std::uint8_t> binary_morph_u8(py::array_t<std::uint8_t, py::array::c_style> image,
                                          py::array_t<std::int64_t, py::array::c_style> offsets, bool dilate,
                                          int border, std::int64_t iterations, int threads) {
    const auto shape = checked_shape(image, "image", {2, 3});
    const int nd = static_cast<int>(shape.size());
    if (offsets.ndim() != 2 || offsets.shape(1) != 3 || offsets.shape(0) < 1)
        throw py::value_error("offsets must have shape (n >= 1, 3)");
    if (border != 0 && border != 1) throw py::value_error("border_value must be 0 or 1");
    checked_threads(threads);
    const std::int64_t* off = offsets.data();
    for (py::ssize_t k = 0; k < offsets.shape(0); ++k) {
        if (nd == 2 && off[3 * k] != 0) throw py::value_error("offsets of a 2D image must have dz = 0");
        for (int a = 0; a < 3; ++a)
            if (off[3 * k + a] < -(std::int64_t{1} << 40) || off[3 * k + a] > (std::int64_t{1} << 40))
                throw py::value_error("structure is too large");
    }
    MorphJob job;
    job.in = image.data();
    job.depth = nd == 3 ? shape[0] : 1;
    job.height = shape[static_cast<std::size_t>(nd - 2)];
    job.width = shape[static_cast<std::size_t>(nd - 1)];
    job.offsets = off;
    job.n_offsets = static_cast<std::int64_t>(offsets.shape(0));
    job.dilate = dilate;
    job.border = static_cast<std::uint8_t>(border);
    job.iterations = iterations;
    std::vector<py::ssize_t> out_shape(shape.begin(), shape.end());
    py::array_t<std::uint8_t> out(out_shape);
    job.out = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        binary_morph(job, threads);
    }
    return out;
}

}  // namespace

void register_morphology(py::module_& m) {
    m.def("label_u8", &label_u8, py::arg("binary").noconvert(), py::arg("rank"), py::arg("threads"),
          "Connected components of a C-contiguous 0/1 uint8 mask (use medfuse.label).");
    m.def("fill_holes_u8", &fill_holes_u8, py::arg("image").noconvert(), py::arg("rank"), py::arg("threads"),
          "Binary hole filling of a C-contiguous 0/1 uint8 mask (use medfuse.fill_holes).");
    m.def("binary_morph_u8", &binary_morph_u8, py::arg("image").noconvert(), py::arg("offsets").noconvert(),
          py::arg("dilate"), py::arg("border"), py::arg("iterations"), py::arg("threads"),
          "Binary erosion (AND) or dilation (OR) over offsets (use medfuse.binary_erode/dilate).");
}

}  // namespace medfuse::bind
