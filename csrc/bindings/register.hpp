#pragma once
#include <pybind11/pybind11.h>

namespace medfuse::bind {
void register_edges(pybind11::module_& m);
void register_convolve(pybind11::module_& m);
void register_enhance(pybind11::module_& m);
void register_cnn(pybind11::module_& m);
void register_histogram(pybind11::module_& m);
void register_texture(pybind11::module_& m);
void register_attention(pybind11::module_& m);
void register_morphology(pybind11::module_& m);
void register_audio(pybind11::module_& m);
void register_denoise(pybind11::module_& m);
void register_rnn(pybind11::module_& m);
}  // namespace medfuse::bind
