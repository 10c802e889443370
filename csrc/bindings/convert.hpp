// Helpers shared by the register_*.cpp files: shapes and status -> exceptions.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace medfuse::bind {

namespace py = pybind11;

inline std::vector<std::int64_t> checked_shape(const py::array& a, const char* name,
                                               std::initializer_list<int> ndims) {
    bool ok = false;
    for (int n : ndims) ok = ok || a.ndim() == n;
    if (!ok) throw py::value_error(std::string(name) + " has an unsupported number of dimensions");
    std::vector<std::int64_t> shape(static_cast<std::size_t>(a.ndim()));
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        shape[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(a.shape(i));
        if (a.shape(i) <= 0) throw py::value_error(std::string(name) + " is empty");
    }
    return shape;
}

inline void raise_status(const Status& st, const char* name) {
    if (st.nonfinite > 0)
        throw py::value_error(std::string(name) + " contains NaN or infinity (" +
                              std::to_string(st.nonfinite) + " values); edges are undefined there");
}

inline int checked_threads(int threads) {
    if (threads < 1) throw py::value_error("threads must be >= 1");
    return threads;
}

}  // namespace medfuse::bind
