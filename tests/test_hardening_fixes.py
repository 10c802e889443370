"""Regression tests for the bugs the hardening suites (issue 9) found."""

from __future__ import annotations

import numpy as np
import pytest

import medfuse
from medfuse import reference as ref


def test_window_keeps_a_0d_shape():
    """np.ascontiguousarray turned a 0-d input into shape (1,)."""
    out = medfuse.window(np.int16(40), 40, 400)
    assert out.shape == ()
    assert int(out) == int(medfuse.window(np.array([40], np.int16), 40, 400)[0])


def test_quantize_keeps_a_0d_shape():
    out = medfuse.quantize(np.array(7, np.uint8), levels=4)
    assert out.shape == () and out.dtype == np.int32
    assert int(out) == int(medfuse.quantize(np.array([7], np.uint8), levels=4)[0])


def test_regionprops_with_huge_sparse_label_values():
    """Labels near 2**63 made np.bincount raise OverflowError (and 10**9
    would have allocated 8 GB of per-label slots)."""
    lab = np.zeros((5, 6), np.int64)
    lab[1, 1] = 2**63 - 1
    lab[2:4, 2:5] = 10**12
    lab[0, 5] = 3
    got = medfuse.regionprops_basic(lab)
    small = lab.copy()
    small[lab == 2**63 - 1] = 7
    small[lab == 10**12] = 5
    want = medfuse.regionprops_basic(small)
    assert got["label"].tolist() == [3, 10**12, 2**63 - 1]
    for key in want:
        if key != "label":
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    np.testing.assert_array_equal(ref.regionprops_basic(lab)["label"], got["label"])


@pytest.mark.parametrize(
    "call, what",
    [
        (lambda img: medfuse.histogram(img, bins=10**15), "bins"),
        (lambda img: medfuse.glcm(img.astype(np.uint16), list(range(1, 65)), [0.0], 65536), "glcm"),
        (lambda img: medfuse.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32),
                                    padding=10**9), "conv2d"),
    ],
    ids=["histogram", "glcm", "conv2d"],
)
def test_impossible_outputs_are_memory_errors_naming_the_request(call, what):
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    with pytest.raises((MemoryError, ValueError), match=what):
        call(img)


def test_tiny_sigma_is_the_zero_limit_or_a_value_error():
    """sigma = 1e-300 made gaussian_taps divide by sigma**2 == 0.0 (ZeroDivisionError)."""
    img = np.arange(30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_array_equal(medfuse.gaussian(img, 1e-300), medfuse.gaussian(img, 0.0))
    np.testing.assert_array_equal(ref.gaussian(img, 1e-300), medfuse.gaussian(img, 0.0))
    with pytest.raises(ValueError, match="sigma"):
        medfuse.filter_bank(img, kind="log", sigmas=(1e-300,))


def test_contiguous_copies_misaligned_views():
    from medfuse.kernels._validate import contiguous

    buf = np.zeros(4 * 12 + 1, np.uint8)
    x = np.ndarray((3, 4), dtype=np.float32, buffer=buf.data, offset=1)
    x[...] = np.arange(12).reshape(3, 4)
    assert x.flags.c_contiguous and not x.flags.aligned
    y = contiguous(x)
    assert y.flags.aligned and y.flags.c_contiguous
    np.testing.assert_array_equal(y, x)
    z = np.arange(6.0)
    assert contiguous(z) is z  # aligned contiguous input: no copy


@pytest.mark.parametrize("name", ["canny", "conv2d", "attention", "gaussian", "histogram", "glcm", "label",
                                  "median", "bilateral", "window", "binary_dilate", "filter_bank"])
def test_misaligned_input_gives_the_aligned_result(name):
    """UBSan found misaligned float loads in conv2d (and the other kernels take
    the same path): a view at an odd byte offset is now copied first."""
    import hostile_cases as hc
    from test_concurrency import assert_same

    kernel = hc.KERNELS[name]
    case = kernel.valid_case(name, 3)
    want = kernel.call(medfuse, *hc.build_call(case)[1:])
    case["array"]["layout"] = "misaligned"
    _, x, p = hc.build_call(case)
    assert x.dtype.itemsize == 1 or not x.flags.aligned
    assert_same(want, kernel.call(medfuse, x, p), name)


def test_huge_sigma_is_a_value_error_not_overflow():
    """sigma = 1e308 (truncate * sigma = inf) made int() raise OverflowError in gaussian_taps."""
    img = np.zeros((5, 6), np.float32)
    for call in (lambda: medfuse.gaussian(img, 1e308), lambda: medfuse.filter_bank(img, sigmas=(1e308,)),
                 lambda: medfuse.unsharp_mask(img, 1e308, 1.0)):
        with pytest.raises(ValueError, match="sigma"):
            call()
