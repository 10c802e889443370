// Bindings for csrc/morphology: label_u8.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
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

}  // namespace

void register_morphology(py::module_& m) {
    m.def("label_u8", &label_u8, py::arg("binary").noconvert(), py::arg("rank"), py::arg("threads"),
          "Connected components of a C-contiguous 0/1 uint8 mask (use medfuse.label).");
}

}  // namespace medfuse::bind
