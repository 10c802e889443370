// Bindings for csrc/attention: attention_<dtype>, attention_backward_<dtype>.
//
// The Python wrapper (medfuse/attention.py) broadcasts batch dimensions by
// passing, per flattened batch element, the element offset of each operand's
// (L, d) matrix inside its C-contiguous buffer. Every offset is re-checked
// here against the buffer size, so a direct call cannot read out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "attention/attention.hpp"
#include "bindings/convert.hpp"
#include "bindings/register.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

using i64 = std::int64_t;
using Offsets = py::array_t<i64, py::array::c_style>;

i64 mul(i64 a, i64 b, const char* what) {
    if (a < 0 || b < 0) throw py::value_error(std::string(what) + ": negative size");
    if (a != 0 && b > std::numeric_limits<i64>::max() / a)
        throw py::value_error(std::string(what) + " is too large");
    return a * b;
}

template <class A>
const i64* checked_offsets(const Offsets& off, i64 batch, const A& arr, i64 extent, const char* name) {
    if (off.ndim() != 1 || off.shape(0) != batch)
        throw py::value_error(std::string(name) + " offsets must have one entry per batch element");
    const i64 size = static_cast<i64>(arr.size());
    const i64* p = off.data();
    for (i64 b = 0; b < batch; ++b)
        if (p[b] < 0 || p[b] > size - extent)
            throw py::value_error(std::string(name) + " offset out of range");
    return p;
}

struct Dims {
    i64 batch, lq, lk, d, dv;
};

Dims check_dims(i64 batch, i64 lq, i64 lk, i64 d, i64 dv) {
    if (batch < 1 || lq < 1 || lk < 1 || d < 1 || dv < 1)
        throw py::value_error("batch, lq, lk, d and dv must be >= 1");
    mul(mul(batch, lq, "output"), std::max(d, dv), "output");
    mul(mul(batch, lk, "output"), std::max(d, dv), "output");
    return {batch, lq, lk, d, dv};
}

template <class T>
void fill_common(AttnJob<T>& job, const Dims& dm, const py::array_t<T, py::array::c_style>& q,
                 const py::array_t<T, py::array::c_style>& k, const py::array_t<T, py::array::c_style>& v,
                 const Offsets& q_off, const Offsets& k_off, const Offsets& v_off,
                 const std::optional<py::array_t<std::uint8_t, py::array::c_style>>& mask_b,
                 const std::optional<py::array_t<T, py::array::c_style>>& mask_f,
                 const std::optional<Offsets>& mask_off, i64 mask_rs, i64 mask_cs, bool causal,
                 double scale) {
    if (!std::isfinite(scale)) throw py::value_error("scale must be finite");
    job.batch = dm.batch;
    job.lq = dm.lq;
    job.lk = dm.lk;
    job.d = dm.d;
    job.dv = dm.dv;
    job.q = q.data();
    job.k = k.data();
    job.v = v.data();
    job.q_off = checked_offsets(q_off, dm.batch, q, mul(dm.lq, dm.d, "q"), "q");
    job.k_off = checked_offsets(k_off, dm.batch, k, mul(dm.lk, dm.d, "k"), "k");
    job.v_off = checked_offsets(v_off, dm.batch, v, mul(dm.lk, dm.dv, "v"), "v");
    job.causal = causal;
    job.scale = static_cast<T>(scale);
    if (mask_b && mask_f) throw py::value_error("pass either a bool mask or an additive mask");
    if (mask_b || mask_f) {
        if (!mask_off) throw py::value_error("mask offsets are required with a mask");
        if (!((mask_rs == 0 || mask_rs == (mask_cs ? dm.lk : 1)) && (mask_cs == 0 || mask_cs == 1)))
            throw py::value_error("mask strides must be 0 (broadcast) or dense");
        const i64 extent = (dm.lq - 1) * mask_rs + (dm.lk - 1) * mask_cs + 1;
        if (mask_b) {
            job.mask_kind = MaskKind::boolean;
            job.mask_b = mask_b->data();
            job.mask_off = checked_offsets(*mask_off, dm.batch, *mask_b, extent, "mask");
        } else {
            job.mask_kind = MaskKind::additive;
            job.mask_f = mask_f->data();
            job.mask_off = checked_offsets(*mask_off, dm.batch, *mask_f, extent, "mask");
        }
        job.mask_rs = mask_rs;
        job.mask_cs = mask_cs;
    }
}

template <class T>
py::object attention_impl(py::array_t<T, py::array::c_style> q, py::array_t<T, py::array::c_style> k,
                          py::array_t<T, py::array::c_style> v, Offsets q_off, Offsets k_off,
                          Offsets v_off, i64 batch, i64 lq, i64 lk, i64 d, i64 dv,
                          std::optional<py::array_t<std::uint8_t, py::array::c_style>> mask_b,
                          std::optional<py::array_t<T, py::array::c_style>> mask_f,
                          std::optional<Offsets> mask_off, i64 mask_rs, i64 mask_cs, bool causal,
                          double scale, bool return_lse, int threads) {
    checked_threads(threads);
    const Dims dm = check_dims(batch, lq, lk, d, dv);
    AttnJob<T> job;
    fill_common(job, dm, q, k, v, q_off, k_off, v_off, mask_b, mask_f, mask_off, mask_rs, mask_cs,
                causal, scale);
    py::array_t<T> out({dm.batch, dm.lq, dm.dv});
    job.out = out.mutable_data();
    py::array_t<T> lse;
    if (return_lse) {
        lse = py::array_t<T>({dm.batch, dm.lq});
        job.lse = lse.mutable_data();
    }
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        attention_forward(job, threads);
    }
    if (return_lse) return py::make_tuple(out, lse);
    return std::move(out);
}

template <class T>
py::tuple attention_backward_impl(
    py::array_t<T, py::array::c_style> q, py::array_t<T, py::array::c_style> k,
    py::array_t<T, py::array::c_style> v, Offsets q_off, Offsets k_off, Offsets v_off,
    py::array_t<T, py::array::c_style> out, py::array_t<T, py::array::c_style> grad_out,
    py::array_t<T, py::array::c_style> lse, i64 batch, i64 lq, i64 lk, i64 d, i64 dv,
    std::optional<py::array_t<std::uint8_t, py::array::c_style>> mask_b,
    std::optional<py::array_t<T, py::array::c_style>> mask_f, std::optional<Offsets> mask_off,
    i64 mask_rs, i64 mask_cs, bool causal, double scale, int threads) {
    checked_threads(threads);
    const Dims dm = check_dims(batch, lq, lk, d, dv);
    AttnJob<T> job;
    fill_common(job, dm, q, k, v, q_off, k_off, v_off, mask_b, mask_f, mask_off, mask_rs, mask_cs,
                causal, scale);
    const i64 n_out = dm.batch * dm.lq * dm.dv;
    if (static_cast<i64>(out.size()) != n_out) throw py::value_error("out must have batch * lq * dv elements");
    if (static_cast<i64>(grad_out.size()) != n_out)
        throw py::value_error("grad_out must have batch * lq * dv elements");
    if (static_cast<i64>(lse.size()) != dm.batch * dm.lq) throw py::value_error("lse must have batch * lq elements");
    job.o = out.data();
    job.dout = grad_out.data();
    job.lse_in = lse.data();
    py::array_t<T> dq({dm.batch, dm.lq, dm.d});
    py::array_t<T> dk({dm.batch, dm.lk, dm.d});
    py::array_t<T> dvo({dm.batch, dm.lk, dm.dv});
    py::array_t<T> delta({dm.batch, dm.lq});
    job.dq = dq.mutable_data();
    job.dk = dk.mutable_data();
    job.dv_out = dvo.mutable_data();
    job.delta = delta.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        attention_backward(job, threads);
    }
    return py::make_tuple(dq, dk, dvo);
}

template <class T>
void def_attention(py::module_& m, const char* fwd, const char* bwd) {
    m.def(fwd, &attention_impl<T>, py::arg("q").noconvert(), py::arg("k").noconvert(),
          py::arg("v").noconvert(), py::arg("q_off").noconvert(), py::arg("k_off").noconvert(),
          py::arg("v_off").noconvert(), py::arg("batch"), py::arg("lq"), py::arg("lk"), py::arg("d"),
          py::arg("dv"), py::arg("mask_b").noconvert() = py::none(),
          py::arg("mask_f").noconvert() = py::none(), py::arg("mask_off").noconvert() = py::none(),
          py::arg("mask_rs") = 0, py::arg("mask_cs") = 0, py::arg("causal") = false,
          py::arg("scale") = 1.0, py::arg("return_lse") = false, py::arg("threads") = 1,
          "Fused attention on flat C-contiguous buffers (use medfuse.attention).");
    m.def(bwd, &attention_backward_impl<T>, py::arg("q").noconvert(), py::arg("k").noconvert(),
          py::arg("v").noconvert(), py::arg("q_off").noconvert(), py::arg("k_off").noconvert(),
          py::arg("v_off").noconvert(), py::arg("out").noconvert(), py::arg("grad_out").noconvert(),
          py::arg("lse").noconvert(), py::arg("batch"), py::arg("lq"), py::arg("lk"), py::arg("d"),
          py::arg("dv"), py::arg("mask_b").noconvert() = py::none(),
          py::arg("mask_f").noconvert() = py::none(), py::arg("mask_off").noconvert() = py::none(),
          py::arg("mask_rs") = 0, py::arg("mask_cs") = 0, py::arg("causal") = false,
          py::arg("scale") = 1.0, py::arg("threads") = 1,
          "Fused attention backward -> (dq, dk, dv) per batch element (use medfuse.attention_backward).");
}

}  // namespace

void register_attention(py::module_& m) {
    def_attention<float>(m, "attention_f32", "attention_backward_f32");
    def_attention<double>(m, "attention_f64", "attention_backward_f64");
}

}  // namespace medfuse::bind
