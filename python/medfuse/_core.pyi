# Stubs for the compiled extension medfuse._core (internal: use medfuse.*).
from typing import Any

import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, Any]: ...
def _parallel_probe(
    n_tasks: int,
    threads: int,
    inner: int,
    inner_threads: int,
    throw_at: int = -1,
    sleep_us: int = 0,
) -> tuple[list[int], bool, list[int]]: ...
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
def unsharp_mask_u8(
    image: npt.NDArray[np.uint8], kernels: list[npt.NDArray[np.float64]], border: int, amount: float, threshold: float,
    threads: int,
) -> npt.NDArray[np.uint8]: ...
def unsharp_mask_u16(
    image: npt.NDArray[np.uint16], kernels: list[npt.NDArray[np.float64]], border: int, amount: float, threshold: float,
    threads: int,
) -> npt.NDArray[np.uint16]: ...
def unsharp_mask_i16(
    image: npt.NDArray[np.int16], kernels: list[npt.NDArray[np.float64]], border: int, amount: float, threshold: float,
    threads: int,
) -> npt.NDArray[np.int16]: ...
def unsharp_mask_f32(
    image: npt.NDArray[np.float32], kernels: list[npt.NDArray[np.float64]], border: int, amount: float, threshold: float,
    threads: int,
) -> npt.NDArray[np.float32]: ...
def unsharp_mask_f64(
    image: npt.NDArray[np.float64], kernels: list[npt.NDArray[np.float64]], border: int, amount: float, threshold: float,
    threads: int,
) -> npt.NDArray[np.float64]: ...
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
def conv2d_f64(
    x: npt.NDArray[np.float64], weight: npt.NDArray[np.float64], bias: npt.NDArray[np.float64] | None,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int, threads: int,
) -> npt.NDArray[np.float64]: ...
def conv2d_backward_f32(
    x: npt.NDArray[np.float32], weight: npt.NDArray[np.float32], grad_out: npt.NDArray[np.float32],
    need_x: bool, need_w: bool, need_b: bool, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
    threads: int,
) -> tuple[Any, Any, Any]: ...
def conv2d_backward_f64(
    x: npt.NDArray[np.float64], weight: npt.NDArray[np.float64], grad_out: npt.NDArray[np.float64],
    need_x: bool, need_w: bool, need_b: bool, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
    threads: int,
) -> tuple[Any, Any, Any]: ...
# ---- histogram family (csrc/histogram, register_histogram.cpp) ----
def hist_keys_u8(x: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_] | None, lo: int, hi: int, shift: int, threads: int) -> npt.NDArray[np.int64]: ...
def hist_keys_u16(x: npt.NDArray[np.uint16], mask: npt.NDArray[np.bool_] | None, lo: int, hi: int, shift: int, threads: int) -> npt.NDArray[np.int64]: ...
def hist_keys_i16(x: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_] | None, lo: int, hi: int, shift: int, threads: int) -> npt.NDArray[np.int64]: ...
def hist_keys_i32(x: npt.NDArray[np.int32], mask: npt.NDArray[np.bool_] | None, lo: int, hi: int, shift: int, threads: int) -> npt.NDArray[np.int64]: ...
def hist_uniform_u8(x: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None, weights: npt.NDArray[np.float64] | None, lo_thr: float, hi_thr: float, lo_b: float, denom: float, edges: npt.NDArray[Any], threads: int) -> npt.NDArray[Any]: ...
hist_uniform_u16 = hist_uniform_u8
hist_uniform_i16 = hist_uniform_u8
hist_uniform_i32 = hist_uniform_u8
hist_uniform_f64 = hist_uniform_u8
hist_uniform_f32_f32_f32 = hist_uniform_u8
hist_uniform_f32_f32_f64 = hist_uniform_u8
hist_uniform_f32_f64_f64 = hist_uniform_u8
def hist_edges_u8(x: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None, weights: npt.NDArray[np.float64] | None, edges: npt.NDArray[np.float64], threads: int) -> npt.NDArray[Any]: ...
hist_edges_u16 = hist_edges_i16 = hist_edges_i32 = hist_edges_f32 = hist_edges_f64 = hist_edges_u8
def digitize_u8(x: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None, edges: npt.NDArray[np.float64], threads: int) -> npt.NDArray[np.int32]: ...
digitize_u16 = digitize_i16 = digitize_i32 = digitize_f32 = digitize_f64 = digitize_u8
def min_max_u8(x: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None, threads: int) -> tuple[Any, Any, int, int]: ...
min_max_u16 = min_max_i16 = min_max_i32 = min_max_f32 = min_max_f64 = min_max_u8
def window_u8(hu: npt.NDArray[Any], lo: float, scale: float, top: float, out_code: str, threads: int) -> npt.NDArray[Any]: ...
window_u16 = window_i16 = window_i32 = window_f32 = window_f64 = window_u8
def equalize_hist_u8(image: npt.NDArray[np.uint8], threads: int) -> npt.NDArray[np.uint8]: ...
def equalize_hist_u16(image: npt.NDArray[np.uint16], threads: int) -> npt.NDArray[np.uint16]: ...
def clahe_u8(image: npt.NDArray[np.uint8], clip_limit: float, tiles_y: int, tiles_x: int, threads: int) -> npt.NDArray[np.uint8]: ...
def clahe_u16(image: npt.NDArray[np.uint16], clip_limit: float, tiles_y: int, tiles_x: int, threads: int) -> npt.NDArray[np.uint16]: ...
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

# ---- morphology ------------------------------------------------------------
def label_u8(binary: npt.NDArray[np.uint8], rank: int, threads: int) -> tuple[npt.NDArray[np.int32], int]: ...
def fill_holes_u8(image: npt.NDArray[np.uint8], rank: int, threads: int) -> npt.NDArray[np.uint8]: ...
def binary_morph_u8(
    image: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], dilate: bool, border: int, iterations: int,
    threads: int,
) -> npt.NDArray[np.uint8]: ...

# ---- audio -----------------------------------------------------------------
def spectral_f32(
    y: npt.NDArray[np.float32], n_fft: int, hop: int, window: npt.NDArray[np.float64], mode: int, power: float,
    mel: npt.NDArray[np.float64] | None, mel_lo: npt.NDArray[np.int64] | None, mel_hi: npt.NDArray[np.int64] | None,
    dct: npt.NDArray[np.float64] | None, amin: float, ref_db: float, top_db: float, threads: int,
) -> npt.NDArray[Any]: ...
def spectral_f64(
    y: npt.NDArray[np.float64], n_fft: int, hop: int, window: npt.NDArray[np.float64], mode: int, power: float,
    mel: npt.NDArray[np.float64] | None, mel_lo: npt.NDArray[np.int64] | None, mel_hi: npt.NDArray[np.int64] | None,
    dct: npt.NDArray[np.float64] | None, amin: float, ref_db: float, top_db: float, threads: int,
) -> npt.NDArray[Any]: ...
