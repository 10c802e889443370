"""A learned CT denoiser: a small residual CNN in the DnCNN style (torch).

The network predicts the noise of a low-dose CT slice and subtracts it
(Zhang et al.'s residual learning): ``depth`` 3x3 convolutions
(:class:`medfuse.nn.Conv2d`, medfuse's C++ conv2d operator) with
``channels`` feature maps and ReLU between them, zero padding so the output
has the input's shape. The shipped network is 7 layers of 16 channels (12k
parameters, about 6 GFLOP on a 512x512 slice). ``factor > 1`` runs the
convolutions at a reduced resolution, as FFDNet does: the slice is
rearranged into ``factor**2`` channels of a ``factor``-times smaller image
(``pixel_unshuffle``; no pixel is dropped) and the predicted noise is put
back with ``pixel_shuffle``, so the work per slice is ``factor**2`` times
smaller for the same widths (such networks train more slowly: their
filters are not shift-equivariant at full resolution). Inputs are HU divided
by 1000; with ``factor > 1`` a slice whose sides are not multiples of
``factor`` is padded (edge replicate) and cropped back.

* :func:`train_denoiser` trains it on synthetic pairs: slices of
  :func:`medfuse.data.phantoms.nodule_ct_phantom` and (every other volume)
  :func:`medfuse.data.phantoms.disease_ct_phantom` volumes with random
  findings, degraded by :func:`medfuse.restore.low_dose_ct` at random doses,
  scored against the noise-free reconstruction of the same pipeline.
  With ``data="nodules"`` it trains on faint ground-glass nodules instead,
  the squared error weighted toward the nodule's neighbourhood.
* :func:`load_denoiser` loads the weights shipped in
  ``medfuse/resources/dncnn_ct.safetensors`` (``kind="general"``, trained
  for PSNR), ``dncnn_ct_lesion.safetensors`` (``kind="lesion"``, fine-tuned
  on faint nodules at low dose), ``dncnn_ct_lowdose.safetensors``
  (``kind="lowdose"``: those fine-tuned at lower doses with the absolute
  error; with ``smooth=1.0``, a 1-pixel Gaussian after the network, the
  method for radiomics of faint nodules at low dose) or a file you trained,
  and returns a callable for :func:`medfuse.restore.denoise`.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..kernels._threads import get_num_threads, learner_threads
from ..kernels.convolve import gaussian
from ._torch import torch_threads
from .modules import Conv2d

__all__ = ["LESION_WEIGHTS", "LOWDOSE_WEIGHTS", "SHIPPED_WEIGHTS", "Denoiser", "DnCNN", "load_denoiser", "save_denoiser",
           "train_denoiser"]

SHIPPED_WEIGHTS = "dncnn_ct.safetensors"
LESION_WEIGHTS = "dncnn_ct_lesion.safetensors"
LOWDOSE_WEIGHTS = "dncnn_ct_lowdose.safetensors"
_SHIPPED = {"general": SHIPPED_WEIGHTS, "lesion": LESION_WEIGHTS, "lowdose": LOWDOSE_WEIGHTS}
_LOBES = ("RUL", "RML", "RLL", "LUL", "LLL")
HU_SCALE = 1000.0


_STRIP_MIN = 32  # rows per inference strip at least (see DnCNN.forward_strips)


class DnCNN(torch.nn.Module):
    """Residual denoiser: ``x - shuffle(body(unshuffle(x)))``, ``body`` = ``depth`` 3x3 conv layers."""

    def __init__(self, depth: int = 7, channels: int = 16, factor: int = 1) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2; got {depth!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer; got {channels!r}")
        if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= 8:
            raise ValueError(f"factor must be an integer in [1, 8]; got {factor!r}")
        self.depth, self.channels, self.factor = depth, channels, factor
        c0 = factor * factor
        layers: list[torch.nn.Module] = []
        for i in range(depth):
            cin = c0 if i == 0 else channels
            cout = c0 if i == depth - 1 else channels
            layers.append(Conv2d(cin, cout, 3, padding=1, bias=True))
            if i < depth - 1:
                layers.append(torch.nn.ReLU())
        self.body = torch.nn.Sequential(*layers)

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        """``self.body(x)`` with each ReLU fused into the convolution before it (the kernel's epilogue: one pass
        over the feature maps less per layer, 11 % of a 512 x 512 slice's time). The Sequential stays, so the
        weight names and saved files do not change."""
        mods = list(self.body)
        i = 0
        while i < len(mods):
            if i + 1 < len(mods) and isinstance(mods[i + 1], torch.nn.ReLU):
                x = mods[i](x, activation="relu")
                i += 2
            else:
                x = mods[i](x)
                i += 1
        return x

    def forward_strips(self, x: torch.Tensor, rows: int = 128) -> torch.Tensor:
        """``forward(x)`` computed in horizontal strips of ``rows`` output rows (inference).

        Each strip runs through every layer with ``depth`` extra rows on each side (the network's receptive
        radius: one row per 3x3 layer; more above so that strips start on even rows and span at least 32 rows,
        which keeps medfuse's Winograd 2x2 output tiles where they are on the whole slice), which are dropped:
        the kept rows are the full image's, bit for bit,
        and a strip's feature maps stay in cache (a 512 x 512 slice: 42 -> 34 ms at 1 thread). Full
        resolution (``factor`` 1) only; other factors run :meth:`forward`.
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be a positive integer; got {rows!r}")
        h = x.shape[-2]
        if self.factor != 1 or h <= rows:
            return self.forward(x)
        parts = [self._body(x[..., a:b, :])[..., r0 - a : r1 - a, :] for r0, r1, a, b in self._strips(h, rows)]
        return x - torch.cat(parts, dim=-2)

    def _strips(self, h: int, rows: int) -> list[tuple[int, int, int, int]]:
        """(kept rows r0:r1, computed rows a:b) of each inference strip."""
        halo = self.depth
        out = []
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            b = min(h, r1 + halo)
            # Strips start on an even row and span at least _STRIP_MIN rows (when the slice has them), so each
            # layer's medfuse.conv2d takes the path it takes on the whole slice (Winograd F(2x2, 3x3) from
            # 28 rows for >= 16 channels) with the same 2x2 output tiles: the same bits.
            a = max(0, min(r0 - halo, b - _STRIP_MIN))
            a -= a % 2
            out.append((r0, r1, a, b))
        return out

    def infer_numpy(self, x: npt.NDArray[np.float32], rows: int = 128,
                    buffers: list[npt.NDArray[np.float32]] | None = None) -> npt.NDArray[np.float32]:
        """:meth:`forward_strips` on a (1, C, H, W) float32 array, bit for bit, straight on medfuse's conv2d
        kernel with its feature maps in two reused buffers (``buffers``: a list the caller keeps between calls;
        grown as needed). Each layer's output in a fresh array cost a page fault and a zeroed page per 4 KiB
        written (about 130 MB per 512 x 512 slice, 10-25 ms on the Zen 4 measured); reused buffers do not.
        Full resolution (``factor`` 1) and zero-padded 3x3 layers only, as the shipped networks."""
        from ..kernels._ext import core

        if self.factor != 1:
            raise ValueError("infer_numpy runs factor-1 networks only; use forward")
        fn = core().conv2d_f32
        threads = get_num_threads()
        mods = list(self.body)
        layers = []
        i = 0
        while i < len(mods):
            conv = mods[i]
            assert isinstance(conv, Conv2d)
            relu = i + 1 < len(mods) and isinstance(mods[i + 1], torch.nn.ReLU)
            cb = conv.bias
            bias = None if cb is None else cb.detach().contiguous().numpy()
            layers.append((conv.weight.detach().contiguous().numpy(), bias, relu))
            i += 2 if relu else 1
        if buffers is None:
            buffers = []
        n, _, h, w = x.shape
        noise = np.empty_like(x)
        strips = self._strips(h, rows) if h > rows else [(0, h, 0, h)]
        need = max(n * wt.shape[0] * (b - a) * w for wt, _, _ in layers for _, _, a, b in strips)
        while len(buffers) < 2:
            buffers.append(np.empty(0, np.float32))
        for k in range(2):
            if buffers[k].size < need:
                buffers[k] = np.empty(need, np.float32)
        for r0, r1, a, b in strips:
            cur = x[:, :, a:b, :]
            if not cur.flags.c_contiguous:
                cur = np.ascontiguousarray(cur)
            for j, (wt, bias, relu) in enumerate(layers):
                out = buffers[j % 2][: n * wt.shape[0] * (b - a) * w].reshape(n, wt.shape[0], b - a, w)
                cur = fn(cur, wt, bias, 1, 1, 1, 1, 1, 1, 1, relu, threads, out=out)
            noise[:, :, r0:r1, :] = cur[:, :, r0 - a : r1 - a, :]
        return x - noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.factor
        if f == 1:
            return x - self._body(x)
        h, w = x.shape[-2:]
        ph, pw = (-h) % f, (-w) % f
        xp = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        noise = torch.nn.functional.pixel_shuffle(self._body(torch.nn.functional.pixel_unshuffle(xp, f)), f)
        return x - noise[..., :h, :w]


def _check_smooth(smooth: object) -> float:
    if (isinstance(smooth, (bool, np.bool_)) or not isinstance(smooth, numbers.Real)
            or not (math.isfinite(smooth) and 0 <= float(smooth) <= 10)):
        raise ValueError(f"smooth must be a number in [0, 10] (pixels); got {smooth!r}")
    return float(smooth)


# Feature-map buffers of Denoiser calls, one pair per Python thread (calls from several threads at once stay
# apart), reused from call to call.
_BUFFERS = threading.local()


def _plain_layers(model: DnCNN) -> bool:
    """Every conv a zero-padded 3x3 stride-1 medfuse Conv2d with padding 1 (the numpy path's assumption)."""
    return all(isinstance(m, torch.nn.ReLU) or (
        isinstance(m, Conv2d) and m.padding_mode == "zeros" and tuple(m.padding) == (1, 1)
        and tuple(m.stride) == (1, 1) and tuple(m.dilation) == (1, 1) and m.groups == 1
        and tuple(m.kernel_size) == (3, 3) and m.weight.dtype == torch.float32) for m in model.body)


@dataclass
class Denoiser:
    """A trained :class:`DnCNN` as a function of a 2D HU slice (float32 out).

    ``smooth`` > 0: the network's output is then filtered by a Gaussian of that standard deviation in pixels
    (:func:`medfuse.gaussian`, scipy.ndimage's taps and mirror edges), a fixed step after the network, not
    trained through. It is saved with the weights (:func:`save_denoiser`).
    """

    model: DnCNN
    smooth: float = 0.0

    def __post_init__(self) -> None:
        self.smooth = _check_smooth(self.smooth)

    def __call__(self, image: npt.ArrayLike) -> npt.NDArray[np.float32]:
        img = np.asarray(image)
        if img.ndim != 2 or img.size == 0 or img.dtype.kind not in "uif":
            raise ValueError(f"image must be a non-empty numeric 2D array (HU); got shape {img.shape}, {img.dtype}")
        x = img.astype(np.float32) / np.float32(HU_SCALE)
        if not np.isfinite(x).all():
            raise ValueError("image contains NaN or infinity")
        self.model.eval()
        if self.model.factor == 1 and _plain_layers(self.model):
            bufs = getattr(_BUFFERS, "bufs", None)
            if bufs is None:
                bufs = _BUFFERS.bufs = []
            y = self.model.infer_numpy(x[None, None], buffers=bufs)[0, 0]
        else:
            with torch_threads(get_num_threads()), torch.inference_mode():  # one big forward, all threads
                y = self.model.forward_strips(torch.from_numpy(x)[None, None])[0, 0].numpy()
        out = (y * np.float32(HU_SCALE)).astype(np.float32)
        return gaussian(out, self.smooth, out_dtype=np.float32) if self.smooth > 0 else out


def save_denoiser(denoiser: Denoiser | DnCNN, path: str | Path) -> None:
    """Write the weights (and the architecture and ``smooth`` in the metadata) as safetensors."""
    from safetensors.torch import save_file

    model = denoiser.model if isinstance(denoiser, Denoiser) else denoiser
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"depth": str(model.depth), "channels": str(model.channels), "factor": str(model.factor)}
    if isinstance(denoiser, Denoiser) and denoiser.smooth > 0:
        meta["smooth"] = repr(denoiser.smooth)
    save_file(tensors, str(path), metadata=meta)


def load_denoiser(path: str | Path | None = None, *, kind: str = "general", smooth: float | None = None) -> Denoiser:
    """A shipped denoiser (``path=None``) or one saved by :func:`save_denoiser`.

    ``kind`` picks the shipped weights: ``"general"`` (``dncnn_ct.safetensors``, trained for PSNR on
    nodule and disease phantoms at doses 0.05-0.5) or ``"lesion"`` (``dncnn_ct_lesion.safetensors``: the
    general weights fine-tuned on faint ground-glass nodules at doses 0.04-0.15 with the loss weighted
    toward the nodule's neighbourhood, for low-dose lesion work; see :func:`train_denoiser`) or ``"lowdose"``
    (``dncnn_ct_lowdose.safetensors``: the lesion weights fine-tuned at doses 0.03-0.12 with the absolute error,
    see :func:`train_denoiser`). ``smooth``: the Gaussian after the network (:class:`Denoiser`), in pixels;
    None keeps the file's (0 for the shipped files). ``load_denoiser(kind="lowdose", smooth=1.0)`` is the
    shipped method for radiomics of faint nodules at low dose (``benchmarks/eval_restore.py``): its PSNR is
    far below the network's alone, since the Gaussian also blurs the anatomy.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if kind not in _SHIPPED:
        raise ValueError(f"kind must be one of {', '.join(_SHIPPED)}; got {kind!r}")
    if smooth is not None:
        smooth = _check_smooth(smooth)
    if path is None:
        ref = resources.files("medfuse.resources").joinpath(_SHIPPED[kind])
        with resources.as_file(ref) as p:
            return load_denoiser(p, smooth=smooth)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"denoiser weights not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        depth, channels = int(meta["depth"]), int(meta["channels"])
        factor = int(meta.get("factor", "1"))  # files written before the factor existed: full resolution
        file_smooth = _check_smooth(float(meta.get("smooth", "0")))  # no smoothing unless saved with it
        state = load_file(str(p))
        model = DnCNN(depth, channels, factor)
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except (SafetensorError, KeyError, ValueError, TypeError, OSError, RuntimeError) as err:
        # not safetensors / unreadable, metadata without depth or channels or not integers, weights that do not fit
        raise ValueError(f"{p} is not a medfuse denoiser weights file: {err}") from err
    return Denoiser(model, file_smooth if smooth is None else smooth)


def _phantom_volume(v: int, shape: tuple[int, int, int], seed: int, rng: np.random.Generator) -> tuple[
        npt.NDArray[Any], float]:
    """Volume ``v`` of the training set (HU) and its pixel size: nodule phantoms (solid to ground glass) and,
    every other volume, a disease phantom with random findings."""
    from ..data.phantoms import disease_ct_phantom, nodule_ct_phantom

    nodule = {"diameter_mm": float(rng.uniform(4, 20)), "nodule_hu": float(rng.choice([-750, -600, -300, 30, 300])),
              "spiculation": float(rng.uniform(0, 0.6)), "lobulation": float(rng.uniform(0, 0.6))}
    vseed = seed * 1000 + v
    if v % 2 == 0:
        ph = nodule_ct_phantom(shape, seed=vseed, **nodule)  # type: ignore[arg-type]
        return ph.volume, ph.spacing[1]
    fib = float(rng.uniform(0.2, 0.7)) if rng.random() < 0.4 else 0.0
    dp = disease_ct_phantom(shape, seed=vseed, nodule=nodule if rng.random() < 0.5 else None,
                            n_cavities=int(rng.integers(0, 3)), tree_in_bud=bool(rng.random() < 0.4),
                            consolidation=bool(rng.random() < 0.4), n_granulomas=int(rng.integers(0, 3)),
                            effusion=bool(rng.random() < 0.4), fibrosis=fib, honeycombing=fib > 0 and rng.random() < 0.5,
                            traction_bronchiectasis=fib > 0 and rng.random() < 0.5)
    return dp.volume, dp.spacing[1]


def _training_pairs(
    n_volumes: int, slices: int, doses: tuple[float, float], shape: tuple[int, int, int], seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    from ..restore import low_dose_ct

    rng = np.random.default_rng(seed)
    noisy, clean = [], []
    for v in range(n_volumes):
        vol, px = _phantom_volume(v, shape, seed, rng)
        zs = rng.choice(shape[0], size=min(slices, shape[0]), replace=False)
        for z in zs:
            sl = vol[int(z)].astype(np.float32)
            ref = low_dose_ct(sl, None, pixel_mm=px)
            dose = float(np.exp(rng.uniform(np.log(doses[0]), np.log(doses[1]))))
            noisy.append(low_dose_ct(sl, dose, pixel_mm=px, seed=rng))
            clean.append(ref)
    return np.stack(noisy) / np.float32(HU_SCALE), np.stack(clean) / np.float32(HU_SCALE)


def _nodule_pairs(
    n_volumes: int, slices: int, doses: tuple[float, float], shape: tuple[int, int, int], seed: int,
    lesion_weight: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], list[tuple[int, int]]]:
    """The faint-nodule training set: :func:`medfuse.data.phantoms.nodule_ct_phantom` volumes (phantom seeds
    ``seed * 1000 + v``) with a ground-glass nodule of -800 to -550 HU, 4-10 mm (even ``v``) or none (odd
    ``v``: the same draw painted at lung density), in a random lobe, offset up to 8 mm; the ``slices`` slices
    nearest the nodule's centre, each at a dose drawn log-uniformly from ``doses``. Returns noisy, clean (HU /
    1000), the loss weights (1, and ``1 + lesion_weight`` within the nodule's radius + 2 pixels of its centre,
    present or not: a blob kept and a blob invented both count) and each slice's (row, column) centre."""
    from ..data.phantoms import HU_LUNG, nodule_ct_phantom
    from ..restore import low_dose_ct

    rng = np.random.default_rng(seed)
    noisy, clean, weights, centres = [], [], [], []
    yy, xx = np.ogrid[: shape[1], : shape[2]]
    for v in range(n_volumes):
        diameter, hu = float(rng.uniform(4, 10)), float(rng.uniform(-800, -550))
        lobe, offset = _LOBES[int(rng.integers(len(_LOBES)))], rng.uniform(-8, 8, 3)
        ph = nodule_ct_phantom(shape, seed=seed * 1000 + v, diameter_mm=diameter,
                               nodule_hu=hu if v % 2 == 0 else HU_LUNG, lobe=lobe,
                               offset_mm=(float(offset[0]), float(offset[1]), float(offset[2])))
        zc, cy, cx = ph.nodule_center
        px = ph.spacing[1]
        r = ph.nodule_radius_mm / px + 2.0
        w = (1.0 + lesion_weight * ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)).astype(np.float32)
        zs = sorted(range(shape[0]), key=lambda z: (abs(z - zc), z))[:slices]
        for z in zs:
            sl = ph.volume[z].astype(np.float32)
            dose = float(np.exp(rng.uniform(np.log(doses[0]), np.log(doses[1]))))
            clean.append(low_dose_ct(sl, None, pixel_mm=px))
            noisy.append(low_dose_ct(sl, dose, pixel_mm=px, seed=rng))
            weights.append(w)
            centres.append((round(cy), round(cx)))
    scale = np.float32(HU_SCALE)
    return np.stack(noisy) / scale, np.stack(clean) / scale, np.stack(weights), centres


def _fit(model: DnCNN, noisy: npt.NDArray[np.float32], clean: npt.NDArray[np.float32], *, patch: int, steps: int,
         batch: int, lr: float, seed: int, weights: npt.NDArray[np.float32] | None = None,
         centres: Sequence[tuple[int, int]] | None = None, loss: str = "mse") -> None:
    """Adam on random crops, flipped/transposed at random (cosine learning-rate decay).

    ``loss``: ``"mse"`` (squared errors) or ``"l1"`` (absolute errors). ``weights`` (one map per slice): the
    loss is the weighted mean of the errors. ``centres``: each
    crop is placed around its slice's centre, shifted by up to ``patch // 2 - 4`` pixels (clipped to the
    slice), instead of anywhere."""
    x_all, y_all = torch.from_numpy(noisy), torch.from_numpy(clean)
    w_all = None if weights is None else torch.from_numpy(weights)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    n, h, w = x_all.shape
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, n, (batch,), generator=gen)
        if centres is None:
            ys = torch.randint(0, h - patch + 1, (batch,), generator=gen).tolist()
            xs = torch.randint(0, w - patch + 1, (batch,), generator=gen).tolist()
        else:
            j = max(0, patch // 2 - 4)
            shift = torch.randint(-j, j + 1, (batch, 2), generator=gen).tolist()
            ys = [min(max(centres[i][0] + s[0] - patch // 2, 0), h - patch) for i, s in zip(idx.tolist(), shift)]
            xs = [min(max(centres[i][1] + s[1] - patch // 2, 0), w - patch) for i, s in zip(idx.tolist(), shift)]
        flips = torch.randint(0, 8, (batch,), generator=gen).tolist()
        xb: list[torch.Tensor] = []
        yb: list[torch.Tensor] = []
        wb: list[torch.Tensor] = []
        sources = ((x_all, xb), (y_all, yb)) if w_all is None else ((x_all, xb), (y_all, yb), (w_all, wb))
        for i, a, b, f in zip(idx, ys, xs, flips):
            for src, dst in sources:
                t = src[i, a : a + patch, b : b + patch]
                t = t.flip(0) if f & 1 else t
                t = t.flip(1) if f & 2 else t
                dst.append(t.T if f & 4 else t)
        pred, target = model(torch.stack(xb)[:, None]), torch.stack(yb)[:, None]
        err = (pred - target).abs() if loss == "l1" else (pred - target).square()
        if w_all is None:
            value = err.mean()
        else:
            wt = torch.stack(wb)[:, None]
            value = (wt * err).sum() / wt.sum()
        opt.zero_grad()
        value.backward()
        opt.step()
    model.eval()


def _as_tuple(value: object, name: str) -> tuple[float, ...]:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number or a sequence of numbers; got {value!r}")
    if isinstance(value, numbers.Real):
        return (float(value),)
    if isinstance(value, Sequence) and value and all(
            isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in value):
        return tuple(float(v) for v in value)
    raise ValueError(f"{name} must be a number or a non-empty sequence of numbers; got {value!r}")


def train_denoiser(
    *,
    depth: int = 7,
    channels: int = 16,
    factor: int = 1,
    n_volumes: int = 24,
    slices_per_volume: int = 8,
    doses: tuple[float, float] = (0.05, 0.5),
    shape: tuple[int, int, int] = (16, 128, 128),
    patch: int = 64,
    steps: int | Sequence[int] = 2000,
    batch: int = 16,
    lr: float | Sequence[float] = 2e-3,
    seed: int = 0,
    init: Denoiser | str | Path | None = None,
    path: str | Path | None = None,
    data: str = "mixed",
    lesion_weight: float = 0.0,
    loss: str = "mse",
    smooth: float = 0.0,
) -> Denoiser:
    """Train a :class:`DnCNN` on synthetic low-dose / normal-dose CT pairs.

    The shipped weights are ``train_denoiser()`` with these defaults (seed 0,
    ``medfuse.set_num_threads(1)``). torch trains at the learners' thread
    count (``learner_threads()``: 1 unless :func:`medfuse.set_learner_threads`
    raises it), medfuse's convolutions at :func:`medfuse.get_num_threads`
    (identical results for any count); the trained :class:`Denoiser` runs
    torch at :func:`medfuse.get_num_threads`.

    ``n_volumes`` phantoms (nodule phantoms and disease phantoms with random
    findings, alternately) x ``slices_per_volume`` slices, each degraded at a
    dose drawn log-uniformly from ``doses``; ``steps`` Adam steps on random
    ``patch``-sized crops (a multiple of ``factor``), flipped and transposed
    at random (``loss``). The learning rate decays from ``lr`` to 0 on a cosine;
    sequences ``steps`` and ``lr`` (same length) run one such cycle per
    entry, each with a fresh optimizer and the same crop sequence (warm
    restarts). Deterministic for a seed and thread count. ``init``: start from these weights (a :class:`Denoiser` or
    a weights file of the same depth, channels and factor) instead of a
    random initialisation. ``path``: also save the weights there.

    ``data``: ``"mixed"`` (the set above) or ``"nodules"``, the faint-nodule
    set: nodule phantoms (seeds ``seed * 1000 + v``) with a ground-glass
    nodule of -800 to -550 HU and 4-10 mm in every other volume (none in the
    others), the ``slices_per_volume`` slices nearest the nodule, crops placed
    around it, and the squared error weighted ``1 + lesion_weight`` within
    the nodule's radius + 2 pixels (present or absent; ``lesion_weight`` >= 0,
    for ``"nodules"`` only). The shipped ``kind="lesion"`` weights are
    ``train_denoiser(data="nodules", lesion_weight=20, n_volumes=100,
    slices_per_volume=3, doses=(0.04, 0.15), shape=(48, 128, 128), patch=48,
    steps=2000, lr=5e-4, seed=700, init=load_denoiser())`` at
    ``medfuse.set_learner_threads(2)`` (phantom seeds 700000-700099, none of
    ``benchmarks/eval_restore.py``'s).

    ``loss``: ``"mse"`` (squared errors) or ``"l1"`` (absolute errors), weighted
    alike. ``smooth``: the returned :class:`Denoiser`'s Gaussian after the
    network (pixels, saved with the weights; not used in training). The
    shipped ``kind="lowdose"`` weights are ``train_denoiser(data="nodules",
    lesion_weight=20, loss="l1", n_volumes=100, slices_per_volume=3,
    doses=(0.03, 0.12), shape=(48, 128, 128), patch=48, steps=2000, lr=5e-4,
    seed=702, init=load_denoiser(kind="lesion"))`` at
    ``medfuse.set_num_threads(1)`` and one learner thread (phantom seeds
    702000-702099).
    """
    DnCNN(depth, channels, factor)  # checks depth, channels and factor first
    st, rates = _as_tuple(steps, "steps"), _as_tuple(lr, "lr")
    if len(st) != len(rates):
        raise ValueError(f"steps and lr must have the same length (one per cycle); got {steps!r}, {lr!r}")
    cycles = list(zip(st, rates))
    if any(int(n) != n or n < 1 for n, _ in cycles) or any(not (math.isfinite(r) and r > 0) for _, r in cycles):
        raise ValueError(f"steps must be integers >= 1 and lr finite and > 0; got {steps!r}, {lr!r}")
    if batch < 1 or n_volumes < 1 or slices_per_volume < 1:
        raise ValueError("batch, n_volumes and slices_per_volume must be >= 1")
    if patch < 8 or patch > min(shape[1:]) or patch % factor:
        raise ValueError(f"patch must be a multiple of factor={factor} between 8 and the slice size; got {patch}")
    if not 0 < doses[0] <= doses[1]:
        raise ValueError(f"doses must be (low, high) with 0 < low <= high; got {doses}")
    if data not in ("mixed", "nodules"):
        raise ValueError(f"data must be 'mixed' or 'nodules'; got {data!r}")
    if (isinstance(lesion_weight, (bool, np.bool_)) or not isinstance(lesion_weight, numbers.Real)
            or not (math.isfinite(lesion_weight) and lesion_weight >= 0)):
        raise ValueError(f"lesion_weight must be a finite number >= 0; got {lesion_weight!r}")
    smooth = _check_smooth(smooth)
    if loss not in ("mse", "l1"):
        raise ValueError(f"loss must be 'mse' or 'l1'; got {loss!r}")
    if lesion_weight and data != "nodules":
        raise ValueError("lesion_weight needs data='nodules' (the mixed set has no lesion masks)")
    torch.manual_seed(seed)
    model = DnCNN(depth, channels, factor)  # initialised after the seed
    if init is not None:
        start = init.model if isinstance(init, Denoiser) else load_denoiser(init).model
        if (start.depth, start.channels, start.factor) != (depth, channels, factor):
            raise ValueError(f"init has depth, channels, factor {(start.depth, start.channels, start.factor)}; "
                             f"expected {(depth, channels, factor)}")
        model.load_state_dict(start.state_dict())
    weights: npt.NDArray[np.float32] | None = None
    centres: list[tuple[int, int]] | None = None
    if data == "nodules":
        noisy, clean, weights, centres = _nodule_pairs(n_volumes, slices_per_volume, doses, shape, seed,
                                                       float(lesion_weight))
    else:
        noisy, clean = _training_pairs(n_volumes, slices_per_volume, doses, shape, seed)
    with torch_threads(learner_threads()):  # training, like every learner (issue 20: no oversubscription)
        for n, rate in cycles:
            _fit(model, noisy, clean, patch=patch, steps=int(n), batch=batch, lr=float(rate), seed=seed,
                 weights=weights, centres=centres, loss=loss)
    den = Denoiser(model, smooth)
    if path is not None:
        save_denoiser(den, path)
    return den


def _describe(den: Denoiser) -> dict[str, Any]:
    return {"depth": den.model.depth, "channels": den.model.channels, "factor": den.model.factor,
            "parameters": sum(p.numel() for p in den.model.parameters())}
