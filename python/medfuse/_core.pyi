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

# ---- attention (csrc/attention) ----
def attention_f32(
    q: npt.NDArray[np.float32], k: npt.NDArray[np.float32], v: npt.NDArray[np.float32],
    q_off: npt.NDArray[np.int64], k_off: npt.NDArray[np.int64], v_off: npt.NDArray[np.int64],
    batch: int, lq: int, lk: int, d: int, dv: int,
    mask_b: npt.NDArray[np.uint8] | None = None, mask_f: npt.NDArray[np.float32] | None = None,
    mask_off: npt.NDArray[np.int64] | None = None, mask_rs: int = 0, mask_cs: int = 0,
    causal: bool = False, scale: float = 1.0, return_lse: bool = False, threads: int = 1,
) -> Any: ...
def attention_f64(
    q: npt.NDArray[np.float64], k: npt.NDArray[np.float64], v: npt.NDArray[np.float64],
    q_off: npt.NDArray[np.int64], k_off: npt.NDArray[np.int64], v_off: npt.NDArray[np.int64],
    batch: int, lq: int, lk: int, d: int, dv: int,
    mask_b: npt.NDArray[np.uint8] | None = None, mask_f: npt.NDArray[np.float64] | None = None,
    mask_off: npt.NDArray[np.int64] | None = None, mask_rs: int = 0, mask_cs: int = 0,
    causal: bool = False, scale: float = 1.0, return_lse: bool = False, threads: int = 1,
) -> Any: ...
def attention_backward_f32(
    q: npt.NDArray[np.float32], k: npt.NDArray[np.float32], v: npt.NDArray[np.float32],
    q_off: npt.NDArray[np.int64], k_off: npt.NDArray[np.int64], v_off: npt.NDArray[np.int64],
    out: npt.NDArray[np.float32], grad_out: npt.NDArray[np.float32], lse: npt.NDArray[np.float32],
    batch: int, lq: int, lk: int, d: int, dv: int,
    mask_b: npt.NDArray[np.uint8] | None = None, mask_f: npt.NDArray[np.float32] | None = None,
    mask_off: npt.NDArray[np.int64] | None = None, mask_rs: int = 0, mask_cs: int = 0,
    causal: bool = False, scale: float = 1.0, threads: int = 1,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def attention_backward_f64(
    q: npt.NDArray[np.float64], k: npt.NDArray[np.float64], v: npt.NDArray[np.float64],
    q_off: npt.NDArray[np.int64], k_off: npt.NDArray[np.int64], v_off: npt.NDArray[np.int64],
    out: npt.NDArray[np.float64], grad_out: npt.NDArray[np.float64], lse: npt.NDArray[np.float64],
    batch: int, lq: int, lk: int, d: int, dv: int,
    mask_b: npt.NDArray[np.uint8] | None = None, mask_f: npt.NDArray[np.float64] | None = None,
    mask_off: npt.NDArray[np.int64] | None = None, mask_rs: int = 0, mask_cs: int = 0,
    causal: bool = False, scale: float = 1.0, threads: int = 1,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
