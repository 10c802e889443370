// Bindings for csrc/rnn: gru_forward_<dtype>, gru_backward_<dtype>.
//
// Every shape and length is re-checked here (the Python wrappers in
// medfuse.nn.functional check first, with messages naming the argument), so a
// direct call cannot read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bindings/convert.hpp"
#include "bindings/register.hpp"
#include "rnn/gru.hpp"

namespace py = pybind11;

namespace medfuse::bind {
namespace {

using i64 = std::int64_t;
template <class T>
using Arr = py::array_t<T, py::array::c_style>;
using Lengths = py::array_t<i64, py::array::c_style>;

void expect_shape(const py::array& a, const char* name, std::initializer_list<i64> dims) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
    py::ssize_t i = 0;
    for (i64 d : dims) {
        if (!ok) break;
        ok = a.shape(i++) == d;
    }
    if (!ok) throw py::value_error(std::string(name) + " has the wrong shape");
}

struct Dims {
    i64 batch, steps, hidden;
};

template <class T>
Dims check_common(const Arr<T>& w_hh, const std::optional<Arr<T>>& h0, const Lengths& lengths, i64 batch,
                  i64 steps) {
    if (w_hh.ndim() != 2 || w_hh.shape(0) != 3 * w_hh.shape(1) || w_hh.shape(1) < 1)
        throw py::value_error("w_hh must have shape (3 * hidden, hidden)");
    const i64 hidden = static_cast<i64>(w_hh.shape(1));
    if (batch < 1 || steps < 1) throw py::value_error("batch and steps must be >= 1");
    if (h0) expect_shape(*h0, "h0", {batch, hidden});
    expect_shape(lengths, "lengths", {batch});
    const i64* len = lengths.data();
    for (i64 b = 0; b < batch; ++b)
        if (len[b] < 1 || len[b] > steps) throw py::value_error("lengths must lie in [1, steps]");
    return {batch, steps, hidden};
}

template <class T>
py::tuple gru_forward_impl(Arr<T> gi, Arr<T> w_hh, Arr<T> b_hh, std::optional<Arr<T>> h0, Lengths lengths,
                           int threads) {
    checked_threads(threads);
    if (gi.ndim() != 3) throw py::value_error("gi must have shape (batch, steps, 3 * hidden)");
    const Dims dm = check_common(w_hh, h0, lengths, static_cast<i64>(gi.shape(0)), static_cast<i64>(gi.shape(1)));
    const i64 B = dm.batch, S = dm.steps, H = dm.hidden;
    expect_shape(gi, "gi", {B, S, 3 * H});
    expect_shape(b_hh, "b_hh", {3 * H});
    GruJob<T> job;
    job.batch = B;
    job.steps = S;
    job.hidden = H;
    job.gi = gi.data();
    job.w_hh = w_hh.data();
    job.b_hh = b_hh.data();
    job.h0 = h0 ? h0->data() : nullptr;
    job.lengths = lengths.data();
    Arr<T> out({B, S, H});
    Arr<T> hn({B, H});
    Arr<T> saved({B, S, 4 * H});
    job.out = out.mutable_data();
    job.hn = hn.mutable_data();
    job.saved = saved.mutable_data();
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        gru_forward(job, threads);
    }
    return py::make_tuple(out, hn, saved);
}

template <class T>
py::tuple gru_backward_impl(Arr<T> w_hh, std::optional<Arr<T>> h0, Lengths lengths, Arr<T> out, Arr<T> saved,
                            Arr<T> grad_out, Arr<T> grad_hn, bool need_dh0, int threads) {
    checked_threads(threads);
    if (out.ndim() != 3) throw py::value_error("out must have shape (batch, steps, hidden)");
    const Dims dm =
        check_common(w_hh, h0, lengths, static_cast<i64>(out.shape(0)), static_cast<i64>(out.shape(1)));
    const i64 B = dm.batch, S = dm.steps, H = dm.hidden;
    expect_shape(out, "out", {B, S, H});
    expect_shape(saved, "saved", {B, S, 4 * H});
    expect_shape(grad_out, "grad_out", {B, S, H});
    expect_shape(grad_hn, "grad_hn", {B, H});
    GruJob<T> job;
    job.batch = B;
    job.steps = S;
    job.hidden = H;
    job.w_hh = w_hh.data();
    job.h0 = h0 ? h0->data() : nullptr;
    job.lengths = lengths.data();
    job.out_in = out.data();
    job.saved_in = saved.data();
    job.grad_out = grad_out.data();
    job.grad_hn = grad_hn.data();
    Arr<T> dgi({B, S, 3 * H});
    Arr<T> dgh({B, S, 3 * H});
    job.dgi = dgi.mutable_data();
    job.dgh = dgh.mutable_data();
    py::object dh0 = py::none();
    if (need_dh0) {
        Arr<T> d({B, H});
        job.dh0 = d.mutable_data();
        dh0 = d;
    }
    {
        // Nothing below touches a Python object.
        py::gil_scoped_release nogil;
        gru_backward(job, threads);
    }
    return py::make_tuple(dgi, dgh, dh0);
}

template <class T>
void def_gru(py::module_& m, const char* fwd, const char* bwd) {
    m.def(fwd, &gru_forward_impl<T>, py::arg("gi").noconvert(), py::arg("w_hh").noconvert(),
          py::arg("b_hh").noconvert(), py::arg("h0").noconvert() = py::none(), py::arg("lengths").noconvert(),
          py::arg("threads") = 1,
          "GRU recurrence over a padded batch -> (out, h_n, saved) (use medfuse.nn.functional.gru).");
    m.def(bwd, &gru_backward_impl<T>, py::arg("w_hh").noconvert(), py::arg("h0").noconvert() = py::none(),
          py::arg("lengths").noconvert(), py::arg("out").noconvert(), py::arg("saved").noconvert(),
          py::arg("grad_out").noconvert(), py::arg("grad_hn").noconvert(), py::arg("need_dh0") = false,
          py::arg("threads") = 1, "GRU recurrence backward -> (dgi, dgh, dh0 or None).");
}

}  // namespace

void register_rnn(py::module_& m) {
    def_gru<float>(m, "gru_forward_f32", "gru_backward_f32");
    def_gru<double>(m, "gru_forward_f64", "gru_backward_f64");
}

}  // namespace medfuse::bind
