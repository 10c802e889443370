# Stubs for the compiled extension medfuse._core (internal: use medfuse.*).
from typing import Any

import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, Any]: ...
def canny_u8(
    image: npt.NDArray[np.uint8], aperture: int, l2: bool, exact_int: bool, round16: bool,
    low_cmp: float, high_cmp: float, weights: list[float], smooth: list[npt.NDArray[np.float64]],
    threads: int,
) -> npt.NDArray[np.uint8]: ...
def canny_u16(
    image: npt.NDArray[np.uint16], aperture: int, l2: bool, exact_int: bool, round16: bool,
    low_cmp: float, high_cmp: float, weights: list[float], smooth: list[npt.NDArray[np.float64]],
    threads: int,
) -> npt.NDArray[np.uint8]: ...
def canny_i16(
    image: npt.NDArray[np.int16], aperture: int, l2: bool, exact_int: bool, round16: bool,
    low_cmp: float, high_cmp: float, weights: list[float], smooth: list[npt.NDArray[np.float64]],
    threads: int,
) -> npt.NDArray[np.uint8]: ...
def canny_f32(
    image: npt.NDArray[np.float32], aperture: int, l2: bool, exact_int: bool, round16: bool,
    low_cmp: float, high_cmp: float, weights: list[float], smooth: list[npt.NDArray[np.float64]],
    threads: int,
) -> npt.NDArray[np.uint8]: ...
def canny_f64(
    image: npt.NDArray[np.float64], aperture: int, l2: bool, exact_int: bool, round16: bool,
    low_cmp: float, high_cmp: float, weights: list[float], smooth: list[npt.NDArray[np.float64]],
    threads: int,
) -> npt.NDArray[np.uint8]: ...
def sobel_u8(image: npt.NDArray[np.uint8], aperture: int, border: int, threads: int) -> tuple[npt.NDArray[np.int32], ...]: ...
def sobel_u16(image: npt.NDArray[np.uint16], aperture: int, border: int, threads: int) -> tuple[npt.NDArray[np.integer[Any]], ...]: ...
def sobel_i16(image: npt.NDArray[np.int16], aperture: int, border: int, threads: int) -> tuple[npt.NDArray[np.integer[Any]], ...]: ...
def sobel_f32(image: npt.NDArray[np.float32], aperture: int, border: int, threads: int) -> tuple[npt.NDArray[np.float32], ...]: ...
def sobel_f64(image: npt.NDArray[np.float64], aperture: int, border: int, threads: int) -> tuple[npt.NDArray[np.float64], ...]: ...

# ---- convolve (csrc/convolve) ------------------------------------------------
# out_code: 0 float32, 1 float64, 2 the image's dtype (rounded, saturated);
# border: 0 reflect101, 1 reflect, 2 replicate, 3 constant, 4 wrap.
def correlate_u8(
    image: npt.NDArray[np.uint8], kernel: npt.NDArray[np.float64], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def sep_filter_u8(
    image: npt.NDArray[np.uint8], kernels: list[npt.NDArray[np.float64]], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def correlate_u16(
    image: npt.NDArray[np.uint16], kernel: npt.NDArray[np.float64], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def sep_filter_u16(
    image: npt.NDArray[np.uint16], kernels: list[npt.NDArray[np.float64]], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def correlate_i16(
    image: npt.NDArray[np.int16], kernel: npt.NDArray[np.float64], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def sep_filter_i16(
    image: npt.NDArray[np.int16], kernels: list[npt.NDArray[np.float64]], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def correlate_f32(
    image: npt.NDArray[np.float32], kernel: npt.NDArray[np.float64], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def sep_filter_f32(
    image: npt.NDArray[np.float32], kernels: list[npt.NDArray[np.float64]], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def correlate_f64(
    image: npt.NDArray[np.float64], kernel: npt.NDArray[np.float64], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
def sep_filter_f64(
    image: npt.NDArray[np.float64], kernels: list[npt.NDArray[np.float64]], border: int, value: float, out_code: int,
    f64: bool, threads: int,
) -> npt.NDArray[Any]: ...
# ---- enhance (median, bilateral) and cnn (conv2d) ----------------------------
def median_u8(image: npt.NDArray[np.uint8], size: list[int], border: int, threads: int) -> npt.NDArray[np.uint8]: ...
def median_u16(image: npt.NDArray[np.uint16], size: list[int], border: int, threads: int) -> npt.NDArray[np.uint16]: ...
def median_i16(image: npt.NDArray[np.int16], size: list[int], border: int, threads: int) -> npt.NDArray[np.int16]: ...
def median_f32(image: npt.NDArray[np.float32], size: list[int], border: int, threads: int) -> npt.NDArray[np.float32]: ...
def bilateral_u8(
    image: npt.NDArray[np.uint8], radius: int, sigma_color: float, sigma_space: float, threads: int
) -> npt.NDArray[np.uint8]: ...
def bilateral_f32(
    image: npt.NDArray[np.float32], radius: int, sigma_color: float, sigma_space: float, threads: int
) -> npt.NDArray[np.float32]: ...
def conv2d_f32(
    x: npt.NDArray[np.float32], weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32] | None,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int, relu: bool, threads: int,
) -> npt.NDArray[np.float32]: ...
