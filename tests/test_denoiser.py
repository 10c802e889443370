"""medfuse.nn.denoiser: the learned DnCNN-style CT denoiser (torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medfuse import restore as R
from medfuse.data import phantoms
from medfuse.nn import denoiser as D


@pytest.fixture(scope="module")
def held_out():
    ph = phantoms.nodule_ct_phantom((12, 128, 128), seed=777)
    sl = ph.volume[6].astype(np.float32)
    ref = R.low_dose_ct(sl, None, pixel_mm=ph.spacing[1])
    return ref, R.low_dose_ct(sl, 0.1, pixel_mm=ph.spacing[1], seed=5)


def test_shipped_weights_denoise_held_out_ct(held_out):
    ref, low = held_out
    den = D.load_denoiser()
    out = R.denoise(low, den)
    assert out.dtype == np.float32 and out.shape == low.shape
    assert R.psnr(ref, out, data_range=1500) > R.psnr(ref, low, data_range=1500) + 2.0
    assert R.ssim(ref, out, data_range=1500) > R.ssim(ref, low, data_range=1500)


@pytest.mark.parametrize("factor", [1, 2])
def test_fused_relu_body_equals_the_sequential(held_out, factor):
    """forward fuses each ReLU into the convolution before it; the Sequential (conv, ReLU, ...) is the reference,
    in values and in the weight gradients."""
    torch.manual_seed(4)
    model = D.DnCNN(depth=4, channels=8, factor=factor)
    x = torch.from_numpy(held_out[1][:34, :30].copy() / 1000.0)[None, None]
    h = torch.nn.functional.pixel_unshuffle(x, factor) if factor > 1 else x
    np.testing.assert_array_equal(model._body(h).detach().numpy(), model.body(h).detach().numpy())
    grads = []
    for body in (model._body, model.body):
        model.zero_grad()
        body(h).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 7, 16, 50])
def test_strips_equal_the_whole_slice(held_out, rows):
    """Inference in strips (each with the receptive radius of extra rows) gives the whole slice's result exactly."""
    torch.manual_seed(5)
    model = D.DnCNN(depth=5, channels=8)
    x = torch.from_numpy(held_out[1][:61, :37].copy() / 1000.0)[None, None]
    with torch.inference_mode():
        np.testing.assert_array_equal(model.forward_strips(x, rows=rows).numpy(), model(x).numpy())
    tall = np.vstack([held_out[1]] * 3)[:300]  # 300 rows: the shipped denoiser runs 3 strips of 128
    den = D.load_denoiser()
    with torch.inference_mode():
        whole = den.model(torch.from_numpy(tall / np.float32(1000.0))[None, None])[0, 0].numpy() * np.float32(1000.0)
    np.testing.assert_array_equal(den(tall), whole.astype(np.float32))
    # 16 channels: medfuse.conv2d runs Winograd F(2x2, 3x3) from 28 x 28 (2x2 output tiles), so strips must start
    # on even rows and not shrink below it; strips starting on odd rows and a short last strip (261 rows)
    for hh in (300, 261):
        xt = torch.from_numpy(tall[:hh] / np.float32(1000.0))[None, None]
        with torch.inference_mode():
            np.testing.assert_array_equal(den.model.forward_strips(xt, rows=rows + 40).numpy(), den.model(xt).numpy())


def test_space_to_depth_pads_and_crops(held_out):
    # factor 2 on odd sides: the slice is edge-padded at the bottom/right to even sides, run, and cropped
    # back; compared with doing that by hand (a misaligned crop shifts the noise estimate)
    torch.manual_seed(3)
    den = D.Denoiser(D.DnCNN(depth=3, channels=6, factor=2))
    low = held_out[1]
    for h, w in [(127, 125), (66, 99), (3, 1)]:
        x = low[:h, :w]
        padded = np.pad(x, ((0, h % 2), (0, w % 2)), mode="edge")
        out = den(x)
        assert out.shape == (h, w)
        np.testing.assert_allclose(out, den(padded)[:h, :w], rtol=0, atol=1e-3)
    # shifting the input by the factor shifts the output (interior)
    a, b = den(low[:64, :64]), den(low[2:66, 2:66])
    np.testing.assert_allclose(a[8:56, 8:56], b[6:54, 6:54], rtol=0, atol=1e-3)


def test_full_resolution_weights_without_factor_load(tmp_path, held_out):
    # files written before the space-to-depth factor existed hold only depth and channels
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = D.DnCNN(depth=3, channels=4, factor=1)
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"depth": "3", "channels": "4"})
    den = D.load_denoiser(path)
    assert den.model.factor == 1
    np.testing.assert_array_equal(den(held_out[1]), D.Denoiser(model)(held_out[1]))


def test_training_learns_and_is_deterministic(tmp_path, held_out):
    ref, low = held_out
    kw = dict(depth=3, channels=8, factor=1, n_volumes=2, slices_per_volume=2, shape=(8, 128, 128), patch=40, steps=150,
              lr=5e-3, batch=4, seed=1)
    a = D.train_denoiser(path=tmp_path / "w.safetensors", **kw)
    assert R.psnr(ref, a(low), data_range=1500) > R.psnr(ref, low, data_range=1500) + 1.0
    b = D.load_denoiser(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(a(low), b(low))
    c = D.train_denoiser(**kw)
    np.testing.assert_array_equal(a(low), c(low))
    # continued training starts from the given weights (a second cycle at a lower rate keeps what was learned)
    short = {**kw, "steps": 30, "lr": 1e-3}
    d = D.train_denoiser(init=tmp_path / "w.safetensors", **short)
    assert R.psnr(ref, d(low), data_range=1500) > R.psnr(ref, low, data_range=1500) + 1.0
    # ... and really from them: its weights stay near a's, while the same short run from scratch ends far away
    def distance(m):
        sa, sm = a.model.state_dict(), m.model.state_dict()
        return float(sum((sm[k] - sa[k]).square().sum() for k in sa).sqrt() / sum(v.square().sum() for v in sa.values()).sqrt())

    fresh = D.train_denoiser(**short)
    assert distance(d) < 0.2 * distance(fresh), (distance(d), distance(fresh))
    with pytest.raises(ValueError, match="init"):
        D.train_denoiser(init=a, **{**kw, "channels": 4})


def test_numpy_inference_is_the_torch_forward_bit_for_bit(held_out):
    """Denoiser calls run DnCNN.infer_numpy (medfuse's conv2d kernel into two reused buffers): the torch
    forward_strips result bit for bit, for one strip and several, at 1 and 2 threads, from two Python threads at
    once (each has its own buffers), and with buffers grown between calls of different sizes."""
    import threading

    import medfuse

    den = D.load_denoiser()
    tall = np.vstack([held_out[1]] * 3)
    old = medfuse.get_num_threads()
    try:
        for shape in ((300, 128), (261, 97), (20, 33), (128, 128)):
            img = np.ascontiguousarray(tall[: shape[0], : shape[1]])
            x = torch.from_numpy(img / np.float32(1000.0))[None, None]
            with torch.inference_mode():
                want = (den.model.forward_strips(x)[0, 0].numpy() * np.float32(1000.0)).astype(np.float32)
            for n in (1, 2):
                medfuse.set_num_threads(n)
                np.testing.assert_array_equal(den(img), want)
    finally:
        medfuse.set_num_threads(old)
    imgs = [np.ascontiguousarray(tall[:200 + 20 * i, :90]) for i in range(4)]
    serial = [den(im) for im in imgs]
    results: dict[int, list[np.ndarray]] = {}

    def run(k: int) -> None:
        results[k] = [den(im) for im in (imgs if k == 0 else imgs[::-1])]

    workers = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for a, b in zip(results[0], serial):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[1], serial[::-1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="factor-1"):
        D.DnCNN(depth=3, channels=4, factor=2).infer_numpy(np.zeros((1, 1, 8, 8), np.float32))


def test_torch_threads_training_at_learner_threads_inference_at_num_threads(monkeypatch, held_out):
    """Training runs torch at learner_threads() (1 by default: issue 20), applying the denoiser at
    get_num_threads(); torch's own setting comes back after both."""
    import medfuse
    from medfuse.nn._torch import torch_threads

    seen = []
    fit = D._fit
    monkeypatch.setattr(D, "_fit", lambda *a, **k: (seen.append(torch.get_num_threads()), fit(*a, **k))[1])
    forward = D.DnCNN.forward
    monkeypatch.setattr(D.DnCNN, "forward", lambda self, x: (seen.append(torch.get_num_threads()), forward(self, x))[1])
    infer = D.DnCNN.infer_numpy  # inference: medfuse's kernels at get_num_threads(), torch not involved
    monkeypatch.setattr(D.DnCNN, "infer_numpy",
                        lambda self, x, **k: (seen.append(medfuse.get_num_threads()), infer(self, x, **k))[1])
    old, old_learner, old_torch = medfuse.get_num_threads(), medfuse.get_learner_threads(), torch.get_num_threads()
    try:
        medfuse.set_num_threads(3)
        torch.set_num_threads(2)
        for learner in (1, 2):
            medfuse.set_learner_threads(learner)
            seen.clear()
            den = D.train_denoiser(depth=3, channels=4, n_volumes=1, slices_per_volume=1, shape=(8, 32, 32), patch=16,
                                   steps=1, batch=1)
            train = list(seen)
            seen.clear()
            den(held_out[1][:16, :16])
            assert train and set(train) == {learner}, train  # one _fit per cycle + its forwards
            assert seen == [3] and torch.get_num_threads() == 2
    finally:
        medfuse.set_num_threads(old)
        medfuse.set_learner_threads(old_learner)
        torch.set_num_threads(old_torch)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError, match="inner"), torch_threads(3):
            assert torch.get_num_threads() == 3
            raise RuntimeError("inner")
        assert torch.get_num_threads() == 1  # restored on error too
    assert torch.get_num_threads() == old_torch
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n must be"), torch_threads(bad):
            pass


def test_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights"):
        D.load_denoiser(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a medfuse denoiser"):
        D.load_denoiser(bad)
    # safetensors files that are not denoisers: no or bad metadata, weights of another shape
    from safetensors.torch import save_file

    w = {k: v.contiguous() for k, v in D.DnCNN(depth=3, channels=4).state_dict().items()}
    for meta in (None, {"depth": "three", "channels": "4"}, {"depth": "3", "channels": "5"}):
        save_file(w, str(bad), metadata=meta)
        with pytest.raises(ValueError, match="not a medfuse denoiser"):
            D.load_denoiser(bad)
    den = D.load_denoiser()
    with pytest.raises(ValueError, match="NaN"):
        den(np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="2D"):
        den(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="depth"):
        D.DnCNN(depth=1)
    for bad in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match="factor"):
            D.DnCNN(factor=bad)
    with pytest.raises(ValueError, match="patch"):
        D.train_denoiser(factor=4, patch=42, steps=1)
    for steps, lr in [((10, 10), 1e-3), (0, 1e-3), (10, -1.0), (10.5, 1e-3), ((), ()), (True, 1e-3)]:
        with pytest.raises(ValueError, match="steps"):
            D.train_denoiser(steps=steps, lr=lr)
    with pytest.raises(ValueError, match="doses"):
        D.train_denoiser(doses=(0.0, 0.5), steps=1)
    with pytest.raises(ValueError, match="kind"):
        D.load_denoiser(kind="sharp")
    with pytest.raises(ValueError, match="data"):
        D.train_denoiser(data="lungs", steps=1)
    for lw in (-1.0, float("nan"), True, "5"):
        with pytest.raises(ValueError, match="lesion_weight"):
            D.train_denoiser(data="nodules", lesion_weight=lw, steps=1)
    with pytest.raises(ValueError, match="lesion_weight needs data='nodules'"):
        D.train_denoiser(lesion_weight=5.0, steps=1)
    for loss in ("l2", "L1", None):
        with pytest.raises(ValueError, match="loss"):
            D.train_denoiser(loss=loss, steps=1)


def test_nodule_pairs_weight_the_nodule_neighbourhood():
    """The faint-nodule set: weights 1 and 1 + lesion_weight, the heavy ones a disc (nodule radius + 2 pixels,
    4-10 mm nodules on 2.8 mm pixels: 2.7-3.8 pixels) around the slice's centre; slices nearest the centre."""
    noisy, clean, w, centres = D._nodule_pairs(2, 3, (0.05, 0.1), (12, 128, 128), seed=3, lesion_weight=4.0)
    assert noisy.shape == clean.shape == w.shape == (6, 128, 128) and len(centres) == 6
    assert noisy.dtype == clean.dtype == w.dtype == np.float32
    assert set(np.unique(w)) == {1.0, 5.0}
    for k, (cy, cx) in enumerate(centres):
        heavy = np.argwhere(w[k] == 5.0)
        assert w[k][cy, cx] == 5.0
        assert np.pi * 2.7**2 * 0.8 < len(heavy) < np.pi * 3.8**2 * 1.2, len(heavy)
        np.testing.assert_allclose(heavy.mean(axis=0), (cy, cx), atol=0.6)
    assert centres[0] == centres[1] == centres[2] and centres[3] == centres[4] == centres[5]  # one per volume
    # HU / 1000 around lung density, and noisy differs from clean by the low-dose noise only
    assert -1.1 < float(np.median(clean)) < 0.1
    assert 0.01 < float(np.std(noisy - clean)) < 0.2


def test_weighted_loss_is_a_weighted_mean():
    """One Adam step: constant weights give plain MSE's step (a weighted mean, not a sum); weights that favour
    a region give another step."""
    rng = np.random.default_rng(0)
    clean = rng.normal(0, 0.05, (3, 32, 32)).astype(np.float32)
    noisy = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    centres = [(16, 16)] * 3

    def step(weights):
        torch.manual_seed(0)
        model = D.DnCNN(depth=3, channels=4)
        D._fit(model, noisy, clean, patch=16, steps=1, batch=2, lr=1e-2, seed=0, weights=weights, centres=centres)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    plain = step(None)
    torch.testing.assert_close(step(np.full(clean.shape, 3.0, np.float32)), plain, rtol=1e-5, atol=1e-7)
    spot = np.ones(clean.shape, np.float32)
    spot[:, 14:18, 14:18] = 50.0
    assert float((step(spot) - plain).abs().max()) > 1e-4


def test_l1_loss_is_the_mean_absolute_error():
    """loss='l1': one Adam step equals a hand-written step on the (weighted) mean absolute error of the same crops,
    and differs from the squared-error step."""
    rng = np.random.default_rng(1)
    clean = rng.normal(0, 0.05, (3, 32, 32)).astype(np.float32)
    noisy = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    weights = np.ones(clean.shape, np.float32)
    weights[:, 12:20, 12:20] = 7.0

    def step(loss, w=None):
        torch.manual_seed(0)
        model = D.DnCNN(depth=3, channels=4)
        D._fit(model, noisy, clean, patch=32, steps=1, batch=1, lr=1e-2, seed=0, weights=w, loss=loss)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    def by_hand(w):
        # the one crop is the whole slice; replay _fit's draws (slice, then flip code) to transform it alike
        gen = torch.Generator().manual_seed(0)
        i = int(torch.randint(0, 3, (1,), generator=gen))
        torch.randint(0, 1, (1,), generator=gen), torch.randint(0, 1, (1,), generator=gen)
        f = int(torch.randint(0, 8, (1,), generator=gen))

        def tf(a):
            t = torch.from_numpy(a[i])
            t = t.flip(0) if f & 1 else t
            t = t.flip(1) if f & 2 else t
            return (t.T if f & 4 else t)[None, None]

        torch.manual_seed(0)
        model = D.DnCNN(depth=3, channels=4)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        wt = tf(w)
        ((wt * (model(tf(noisy)) - tf(clean)).abs()).sum() / wt.sum()).backward()
        opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    torch.testing.assert_close(step("l1", weights), by_hand(weights), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(step("l1"), by_hand(np.ones_like(weights)), rtol=1e-5, atol=1e-7)
    assert float((step("l1") - step("mse")).abs().max()) > 1e-4


def test_l1_training_learns_and_is_deterministic(held_out):
    ref, low = held_out
    kw = dict(depth=3, channels=8, data="nodules", lesion_weight=5.0, loss="l1", n_volumes=2, slices_per_volume=3,
              doses=(0.05, 0.15), shape=(12, 128, 128), patch=40, steps=150, lr=5e-3, batch=4, seed=2)
    a = D.train_denoiser(**kw)
    assert R.psnr(ref, a(low), data_range=1500) > R.psnr(ref, low, data_range=1500) + 1.0
    np.testing.assert_array_equal(a(low), D.train_denoiser(**kw)(low))


def test_lesion_training_learns_and_is_deterministic(held_out):
    ref, low = held_out
    kw = dict(depth=3, channels=8, data="nodules", lesion_weight=5.0, n_volumes=2, slices_per_volume=3,
              doses=(0.05, 0.15), shape=(12, 128, 128), patch=40, steps=150, lr=5e-3, batch=4, seed=2)
    a = D.train_denoiser(**kw)
    assert R.psnr(ref, a(low), data_range=1500) > R.psnr(ref, low, data_range=1500) + 1.0
    np.testing.assert_array_equal(a(low), D.train_denoiser(**kw)(low))


def test_shipped_lesion_weights_load_and_denoise(held_out):
    ref, low = held_out
    den, general = D.load_denoiser(kind="lesion"), D.load_denoiser()
    assert (den.model.depth, den.model.channels, den.model.factor) == (7, 16, 1)
    out = R.denoise(low, den)
    assert R.psnr(ref, out, data_range=1500) > R.psnr(ref, low, data_range=1500) + 2.0
    assert not np.array_equal(out, R.denoise(low, general))  # really another file


def test_shipped_lowdose_weights_load_and_denoise(held_out):
    """kind='lowdose': the same network with its own weights; smooth=1 adds the 1-pixel Gaussian after it."""
    ref, low = held_out
    den, lesion = D.load_denoiser(kind="lowdose"), D.load_denoiser(kind="lesion")
    assert (den.model.depth, den.model.channels, den.model.factor, den.smooth) == (7, 16, 1, 0.0)
    out = R.denoise(low, den)
    assert R.psnr(ref, out, data_range=1500) > R.psnr(ref, low, data_range=1500) + 2.0
    assert not np.array_equal(den.model.body[0].weight.detach(), lesion.model.body[0].weight.detach())
    smoothed = D.load_denoiser(kind="lowdose", smooth=1.0)
    assert smoothed.smooth == 1.0
    np.testing.assert_array_equal(smoothed(low), R.denoise(out, "gaussian", sigma=1.0))
    with pytest.raises(ValueError, match="smooth"):
        D.load_denoiser(kind="lowdose", smooth=-1.0)


def test_smooth_is_a_gaussian_after_the_network(tmp_path, held_out):
    """Denoiser(model, smooth) = scipy.ndimage.gaussian_filter (mirror edges, truncate 4) of the network's output;
    save/load keeps smooth, files without it load with 0; bad values are refused by name."""
    ndimage = pytest.importorskip("scipy.ndimage")
    _, low = held_out
    torch.manual_seed(3)
    model = D.DnCNN(depth=3, channels=4)
    plain, smoothed = D.Denoiser(model), D.Denoiser(model, 1.5)
    np.testing.assert_allclose(smoothed(low), ndimage.gaussian_filter(plain(low).astype(np.float64), 1.5,
                                                                       mode="mirror", truncate=4.0), atol=2e-3)
    assert float(np.abs(smoothed(low) - plain(low)).max()) > 10.0
    D.save_denoiser(smoothed, tmp_path / "s.safetensors")
    D.save_denoiser(plain, tmp_path / "p.safetensors")
    assert D.load_denoiser(tmp_path / "s.safetensors").smooth == 1.5
    assert D.load_denoiser(tmp_path / "p.safetensors").smooth == 0.0
    np.testing.assert_array_equal(D.load_denoiser(tmp_path / "s.safetensors")(low), smoothed(low))
    for bad in (-1.0, float("nan"), 11.0, True, "1"):
        with pytest.raises(ValueError, match="smooth"):
            D.Denoiser(model, bad)
        with pytest.raises(ValueError, match="smooth"):
            D.train_denoiser(smooth=bad, steps=1)
    from safetensors.torch import save_file

    w = {k: v.contiguous() for k, v in model.state_dict().items()}
    for s in ("-1", "one", "inf"):
        save_file(w, str(tmp_path / "b.safetensors"), metadata={"depth": "3", "channels": "4", "smooth": s})
        with pytest.raises(ValueError, match="not a medfuse denoiser"):
            D.load_denoiser(tmp_path / "b.safetensors")


def test_lesion_weights_keep_more_of_a_faint_nodule():
    """What the lesion weights are for: at dose 0.05 the general denoiser flattens much of a faint (-700 HU,
    7 mm) nodule; the lesion weights keep more of its contrast (centre minus a ring 4-6 pixels out) on held-out
    phantoms (seeds not in their training set)."""
    general, lesion = D.load_denoiser(), D.load_denoiser(kind="lesion")
    gains = []
    for k in range(6):
        ph = phantoms.nodule_ct_phantom((24, 128, 128), seed=990_000 + k, diameter_mm=7.0, nodule_hu=-700.0)
        z, cy, cx = ph.nodule_center
        low = R.low_dose_ct(ph.volume[round(z)].astype(np.float32), 0.05, pixel_mm=ph.spacing[1], seed=k)
        yy, xx = np.ogrid[:128, :128]
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        inner, ring = d2 <= 1.5**2, (d2 >= 4**2) & (d2 <= 6**2)
        contrast = [float(im[inner].mean() - im[ring].mean()) for im in (lesion(low), general(low))]
        gains.append(contrast[0] - contrast[1])
    assert sum(g > 0 for g in gains) >= 5 and np.mean(gains) > 3.0, gains
