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
