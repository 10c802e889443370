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

# ---- texture (csrc/texture, register_texture.cpp) ----
def glcm_u8(
    image: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_u16(
    image: npt.NDArray[np.uint16], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_u32(
    image: npt.NDArray[np.uint32], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_u64(
    image: npt.NDArray[np.uint64], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_i8(
    image: npt.NDArray[np.int8], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_i16(
    image: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_i32(
    image: npt.NDArray[np.int32], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_i64(
    image: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_] | None, levels: int,
    offsets: npt.NDArray[np.int64], symmetric: bool, normed: bool, threads: int,
) -> npt.NDArray[Any]: ...
def glcm_features_u32(
    P: npt.NDArray[np.uint32], want_skimage: bool, want_radiomics: bool, want_entropy: bool, threads: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]: ...
def glcm_features_f64(
    P: npt.NDArray[np.float64], want_skimage: bool, want_radiomics: bool, want_entropy: bool, threads: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]: ...
