"""Argument checks of the GRU recurrence, shared by the NumPy twin (medfuse.reference.rnn).

The torch operator (medfuse.nn.functional.gru) checks torch tensors with the same rules and messages.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["check_gru", "check_lengths"]


def check_lengths(lengths: npt.ArrayLike, batch: int, steps: int) -> npt.NDArray[np.int64]:
    """lengths as int64 (batch,), every entry in [1, steps]; ValueError / TypeError otherwise."""
    arr = np.asarray(lengths)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must hold integers; got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence); got {arr.shape}")
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(f"lengths must lie in [1, {steps}] (no empty sequences, none longer than the input); "
                         f"got min {arr.min()}, max {arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_gru(gi: npt.NDArray, w_hh: npt.NDArray, b_hh: npt.NDArray, h0: npt.NDArray | None,
              lengths: npt.ArrayLike) -> tuple[int, int, int, npt.NDArray[np.int64]]:
    """(batch, steps, hidden, lengths) of a GRU recurrence call, or a TypeError / ValueError naming the argument."""
    for a, name in ((gi, "gi"), (w_hh, "w_hh"), (b_hh, "b_hh")) + (() if h0 is None else ((h0, "h0"),)):
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be a float32 or float64 array; got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
        if a.dtype != gi.dtype:
            raise TypeError(f"{name} must have gi's dtype ({gi.dtype}); got {a.dtype}")
    if w_hh.ndim != 2 or w_hh.shape[1] < 1 or w_hh.shape[0] != 3 * w_hh.shape[1]:
        raise ValueError(f"w_hh must have shape (3 * hidden, hidden); got {w_hh.shape}")
    hidden = w_hh.shape[1]
    if gi.ndim != 3 or gi.shape[2] != 3 * hidden or gi.shape[0] < 1 or gi.shape[1] < 1:
        raise ValueError(f"gi must have shape (batch, steps, {3 * hidden}); got {gi.shape}")
    batch, steps = gi.shape[:2]
    if b_hh.shape != (3 * hidden,):
        raise ValueError(f"b_hh must have shape ({3 * hidden},); got {b_hh.shape}")
    if h0 is not None and h0.shape != (batch, hidden):
        raise ValueError(f"h0 must have shape ({batch}, {hidden}); got {h0.shape}")
    return batch, steps, hidden, check_lengths(lengths, batch, steps)
