"""A learned CT denoiser: a small residual CNN in the DnCNN style (torch).

The network predicts the noise of a low-dose CT slice and subtracts it
(Zhang et al.'s residual learning): ``depth`` 3x3 convolutions
(:class:`medfuse.nn.Conv2d`, medfuse's C++ conv2d operator), ReLU between
them, ``channels`` feature maps, zero padding so the output has the input's
shape. Inputs are HU divided by 1000.

* :func:`train_denoiser` trains it on synthetic pairs: slices of
  :func:`medfuse.data.phantoms.nodule_ct_phantom` volumes, degraded by
  :func:`medfuse.restore.low_dose_ct` at random doses, scored against the
  noise-free reconstruction of the same pipeline.
* :func:`load_denoiser` loads the weights shipped in
  ``medfuse/resources/dncnn_ct.safetensors`` (or a file you trained) and
  returns a callable for :func:`medfuse.restore.denoise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..kernels._threads import get_num_threads
from .modules import Conv2d

__all__ = ["SHIPPED_WEIGHTS", "Denoiser", "DnCNN", "load_denoiser", "save_denoiser", "train_denoiser"]

SHIPPED_WEIGHTS = "dncnn_ct.safetensors"
HU_SCALE = 1000.0


class DnCNN(torch.nn.Module):
    """Residual denoiser: ``x - body(x)``, ``body`` = ``depth`` 3x3 conv layers."""

    def __init__(self, depth: int = 6, channels: int = 24) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2; got {depth!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer; got {channels!r}")
        self.depth, self.channels = depth, channels
        layers: list[torch.nn.Module] = []
        for i in range(depth):
            cin = 1 if i == 0 else channels
            cout = 1 if i == depth - 1 else channels
            layers.append(Conv2d(cin, cout, 3, padding=1, bias=True))
            if i < depth - 1:
                layers.append(torch.nn.ReLU())
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


@dataclass
class Denoiser:
    """A trained :class:`DnCNN` as a function of a 2D HU slice (float32 out)."""

    model: DnCNN

    def __call__(self, image: npt.ArrayLike) -> npt.NDArray[np.float32]:
        img = np.asarray(image)
        if img.ndim != 2 or img.size == 0 or img.dtype.kind not in "uif":
            raise ValueError(f"image must be a non-empty numeric 2D array (HU); got shape {img.shape}, {img.dtype}")
        x = img.astype(np.float32) / np.float32(HU_SCALE)
        if not np.isfinite(x).all():
            raise ValueError("image contains NaN or infinity")
        old = torch.get_num_threads()
        torch.set_num_threads(get_num_threads())
        try:
            self.model.eval()
            with torch.inference_mode():
                y = self.model(torch.from_numpy(x)[None, None])[0, 0].numpy()
        finally:
            torch.set_num_threads(old)
        return (y * np.float32(HU_SCALE)).astype(np.float32)


def save_denoiser(denoiser: Denoiser | DnCNN, path: str | Path) -> None:
    """Write the weights (and the architecture in the metadata) as safetensors."""
    from safetensors.torch import save_file

    model = denoiser.model if isinstance(denoiser, Denoiser) else denoiser
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"depth": str(model.depth), "channels": str(model.channels)})


def load_denoiser(path: str | Path | None = None) -> Denoiser:
    """The shipped denoiser (``path=None``) or one saved by :func:`save_denoiser`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if path is None:
        ref = resources.files("medfuse.resources").joinpath(SHIPPED_WEIGHTS)
        with resources.as_file(ref) as p:
            return load_denoiser(p)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"denoiser weights not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        depth, channels = int(meta["depth"]), int(meta["channels"])
        state = load_file(str(p))
    except (KeyError, ValueError, OSError, Exception) as err:  # safetensors raises its own error types
        raise ValueError(f"{p} is not a medfuse denoiser weights file: {err}") from err
    model = DnCNN(depth, channels)
    model.load_state_dict(state)
    return Denoiser(model)


def _training_pairs(
    n_volumes: int, slices: int, doses: tuple[float, float], shape: tuple[int, int, int], seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    from ..data.phantoms import nodule_ct_phantom
    from ..restore import low_dose_ct

    rng = np.random.default_rng(seed)
    noisy, clean = [], []
    for v in range(n_volumes):
        ph = nodule_ct_phantom(shape, seed=seed * 1000 + v, diameter_mm=float(rng.uniform(6, 20)))
        zs = rng.choice(shape[0], size=min(slices, shape[0]), replace=False)
        for z in zs:
            sl = ph.volume[int(z)].astype(np.float32)
            ref = low_dose_ct(sl, None, pixel_mm=ph.spacing[1])
            dose = float(np.exp(rng.uniform(np.log(doses[0]), np.log(doses[1]))))
            noisy.append(low_dose_ct(sl, dose, pixel_mm=ph.spacing[1], seed=rng))
            clean.append(ref)
    return np.stack(noisy) / np.float32(HU_SCALE), np.stack(clean) / np.float32(HU_SCALE)


def train_denoiser(
    *,
    depth: int = 6,
    channels: int = 24,
    n_volumes: int = 12,
    slices_per_volume: int = 6,
    doses: tuple[float, float] = (0.05, 0.5),
    shape: tuple[int, int, int] = (16, 128, 128),
    patch: int = 48,
    steps: int = 600,
    batch: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    path: str | Path | None = None,
) -> Denoiser:
    """Train a :class:`DnCNN` on synthetic low-dose / normal-dose CT pairs.

    The shipped weights are ``train_denoiser()`` with these defaults (seed 0).

    ``n_volumes`` phantoms x ``slices_per_volume`` slices, each degraded at a
    dose drawn log-uniformly from ``doses``; ``steps`` Adam steps on random
    ``patch``-sized crops (MSE, cosine learning-rate decay). Deterministic
    for a seed and thread count. ``path``: also save the weights there.
    """
    if steps < 1 or batch < 1 or patch < 8 or patch > min(shape[1:]):
        raise ValueError("steps and batch must be >= 1 and patch between 8 and the slice size")
    torch.manual_seed(seed)
    noisy, clean = _training_pairs(n_volumes, slices_per_volume, doses, shape, seed)
    x_all, y_all = torch.from_numpy(noisy), torch.from_numpy(clean)
    model = DnCNN(depth, channels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    old = torch.get_num_threads()
    torch.set_num_threads(get_num_threads())
    try:
        model.train()
        n, h, w = x_all.shape
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            idx = torch.randint(0, n, (batch,), generator=gen)
            ys = torch.randint(0, h - patch + 1, (batch,), generator=gen)
            xs = torch.randint(0, w - patch + 1, (batch,), generator=gen)
            xb = torch.stack([x_all[i, a : a + patch, b : b + patch] for i, a, b in zip(idx, ys, xs)])[:, None]
            yb = torch.stack([y_all[i, a : a + patch, b : b + patch] for i, a, b in zip(idx, ys, xs)])[:, None]
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(old)
    den = Denoiser(model)
    if path is not None:
        save_denoiser(den, path)
    return den


def _describe(den: Denoiser) -> dict[str, Any]:
    return {"depth": den.model.depth, "channels": den.model.channels,
            "parameters": sum(p.numel() for p in den.model.parameters())}
