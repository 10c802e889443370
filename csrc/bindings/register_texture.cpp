// Bindings for csrc/texture: glcm_<dtype>, glcm_features_<dtype>.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "texture/glcm.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

template <class T> constexpr GlcmInput glcm_input_of();
template <> constexpr GlcmInput glcm_input_of<std::uint8_t>() { return GlcmInput::u8; }
template <> constexpr GlcmInput glcm_input_of<std::uint16_t>() { return GlcmInput::u16; }
template <> constexpr GlcmInput glcm_input_of<std::uint32_t>() { return GlcmInput::u32; }
template <> constexpr GlcmInput glcm_input_of<std::uint64_t>() { return GlcmInput::u64; }
template <> constexpr GlcmInput glcm_input_of<std::int8_t>() { return GlcmInput::i8; }
template <> constexpr GlcmInput glcm_input_of<std::int16_t>() { return GlcmInput::i16; }
template <> constexpr GlcmInput glcm_input_of<std::int32_t>() { return GlcmInput::i32; }
template <> constexpr GlcmInput glcm_input_of<std::int64_t>() { return GlcmInput::i64; }

using BoolArray = py::array_t<bool, py::array::c_style>;

constexpr std::int64_t kMaxVoxels = (std::int64_t{1} << 31) - 1;  // uint32 counts cannot overflow

template <class T>
py::array glcm_impl(py::array_t<T, py::array::c_style> image, py::object mask, std::int64_t levels,
                    py::array_t<std::int64_t, py::array::c_style> offsets, bool symmetric, bool normed,
                    int threads) {
    const auto shape = checked_shape(image, "image", {3});
    checked_threads(threads);
    if (levels < 1) throw py::value_error("levels must be >= 1");
    if (offsets.ndim() != 2 || offsets.shape(1) != 3 || offsets.shape(0) < 1)
        throw py::value_error("offsets must have shape (n, 3) with n >= 1");
    const std::int64_t n = offsets.shape(0);
    const std::int64_t N = shape[0] * shape[1] * shape[2];
    if (shape[0] > kMaxVoxels || shape[1] > kMaxVoxels || N > kMaxVoxels || N / shape[0] / shape[1] != shape[2])
        throw py::value_error("image has more than 2**31 - 1 voxels; uint32 counts could overflow");
    const std::int64_t* off = offsets.data();
    for (std::int64_t e = 0; e < 3 * n; ++e) {
        const std::int64_t lim = shape[static_cast<std::size_t>(e % 3)];
        if (off[e] < -lim || off[e] > lim) throw py::value_error("offsets must be clipped to the image size");
    }
    // Output (levels, levels, n): check the size product before allocating.
    const std::int64_t cap = std::numeric_limits<std::int64_t>::max() / 16;
    if (levels > 3037000499 || levels * levels > cap / n)
        throw py::value_error("levels**2 * n_offsets is too large");
    const std::uint8_t* mptr = nullptr;
    BoolArray marr;
    if (!mask.is_none()) {
        if (!py::isinstance<BoolArray>(mask)) throw py::type_error("mask must be a C-contiguous bool array");
        marr = mask.cast<BoolArray>();
        if (marr.ndim() != 3 || marr.shape(0) != shape[0] || marr.shape(1) != shape[1] || marr.shape(2) != shape[2])
            throw py::value_error("mask must have the image's shape");
        mptr = reinterpret_cast<const std::uint8_t*>(marr.data());
    }
    std::vector<py::ssize_t> oshape{static_cast<py::ssize_t>(levels), static_cast<py::ssize_t>(levels),
                                    static_cast<py::ssize_t>(n)};
    py::array out = normed ? py::array(py::array_t<double>(oshape)) : py::array(py::array_t<std::uint32_t>(oshape));

    GlcmJob job;
    job.image = image.data();
    job.dtype = glcm_input_of<T>();
    job.mask = mptr;
    job.depth = shape[0];
    job.height = shape[1];
    job.width = shape[2];
    job.levels = levels;
    job.offsets = off;
    job.n_offsets = n;
    job.symmetric = symmetric;
    job.normed = normed;
    if (normed)
        job.out_normed = static_cast<double*>(out.mutable_data());
    else
        job.out_counts = static_cast<std::uint32_t*>(out.mutable_data());
    GlcmStatus st;
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        st = glcm(job, threads);
    }
    if (st.out_of_range > 0)
        throw py::value_error("image has " + std::to_string(st.out_of_range) +
                              " values outside [0, levels) (levels=" + std::to_string(levels) + ")");
    if (st.in_mask == 0) throw py::value_error("mask is empty (no voxel selected)");
    return out;
}

template <class S>
py::tuple features_impl(py::array_t<S, py::array::c_style> P, bool want_skimage, bool want_radiomics,
                        bool want_entropy, int threads) {
    const auto shape = checked_shape(P, "P", {3});
    checked_threads(threads);
    if (shape[0] != shape[1]) throw py::value_error("P must have shape (levels, levels, n)");
    const std::int64_t L = shape[0], n = shape[2];
    if (L > 3037000499 || L * L > std::numeric_limits<std::int64_t>::max() / 8 / n)
        throw py::value_error("P is too large");
    py::array_t<double> ski({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(kGlcmSkimageProps)});
    py::array_t<double> rad({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(kGlcmRadiomics)});
    py::array_t<double> totals(static_cast<py::ssize_t>(n));
    py::array_t<bool> present(static_cast<py::ssize_t>(L));
    GlcmFeatureJob job;
    job.P = P.data();
    job.is_u32 = std::is_same<S, std::uint32_t>::value;
    job.levels = L;
    job.n = n;
    job.want_skimage = want_skimage;
    job.want_radiomics = want_radiomics;
    job.want_entropy = want_entropy;
    job.out_skimage = ski.mutable_data();
    job.out_radiomics = rad.mutable_data();
    job.out_totals = totals.mutable_data();
    job.present = reinterpret_cast<std::uint8_t*>(present.mutable_data());
    {
        py::gil_scoped_release nogil;
        glcm_features(job, threads);
    }
    return py::make_tuple(ski, rad, totals, present);
}

template <class T>
void def_glcm(py::module_& m, const char* name) {
    m.def(name, &glcm_impl<T>, py::arg("image").noconvert(), py::arg("mask"), py::arg("levels"),
          py::arg("offsets").noconvert(), py::arg("symmetric"), py::arg("normed"), py::arg("threads"),
          "GLCM of a C-contiguous (z, y, x) array of this dtype (use medfuse.glcm).");
}

}  // namespace

void register_texture(py::module_& m) {
    def_glcm<std::uint8_t>(m, "glcm_u8");
    def_glcm<std::uint16_t>(m, "glcm_u16");
    def_glcm<std::uint32_t>(m, "glcm_u32");
    def_glcm<std::uint64_t>(m, "glcm_u64");
    def_glcm<std::int8_t>(m, "glcm_i8");
    def_glcm<std::int16_t>(m, "glcm_i16");
    def_glcm<std::int32_t>(m, "glcm_i32");
    def_glcm<std::int64_t>(m, "glcm_i64");
    const char* fdoc = "Per-direction GLCM features of a (L, L, n) array (use medfuse.glcm_features).";
    m.def("glcm_features_u32", &features_impl<std::uint32_t>, py::arg("P").noconvert(),
          py::arg("want_skimage"), py::arg("want_radiomics"), py::arg("want_entropy"), py::arg("threads"), fdoc);
    m.def("glcm_features_f64", &features_impl<double>, py::arg("P").noconvert(), py::arg("want_skimage"),
          py::arg("want_radiomics"), py::arg("want_entropy"), py::arg("threads"), fdoc);
}

}  // namespace medfuse::bind
