"""scipy.ndimage morphology references that avoid scipy's heap-corrupting path (issue 25).

scipy 1.17.1's repeat-until-stable binary morphology (``iterations < 1``, which
``binary_fill_holes`` and ``binary_propagation`` use inside) corrupts the heap
for some inputs, and so does ``iterations > 1`` (the same coordinate-list
code, NI_BinaryErosion2: seen with structures larger than the image, as in
scipy issue 11400); the suite then aborted later, inside whichever kernel freed
memory next. Tests build their references from single scipy steps instead
(:func:`steps`, :func:`until_stable`), and :func:`install_guard` (run by
both conftest.py files) makes any call that would take either path fail the
test at the call, whoever makes it.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

_GUARDED = ("binary_erosion", "binary_dilation", "binary_opening", "binary_closing", "binary_propagation",
            "binary_fill_holes")


def until_stable(step, x, **kw):
    """``step(x, iterations=1, **kw)`` repeated until the result stops changing (scipy's ``iterations=0``)."""
    cur = x
    while True:
        nxt = step(cur, iterations=1, **kw)
        if np.array_equal(nxt, cur):
            return nxt
        cur = nxt


def steps(step, x, n, **kw):
    """``step(x, iterations=1, **kw)`` applied ``n`` times (scipy's ``iterations=n``, without its n != 1 path)."""
    for _ in range(n):
        x = step(x, iterations=1, **kw)
    return x


def fill_holes_reference(x, structure):
    """Background components not touching the image border are holes (scipy.ndimage.label, not binary_fill_holes)."""
    x = np.asarray(x) != 0
    lab, _ = ndimage.label(~x, structure=structure)
    edge = np.zeros(x.shape, bool)
    for ax in range(x.ndim):
        idx = [slice(None)] * x.ndim
        for end in (0, -1):
            idx[ax] = end
            edge[tuple(idx)] = True
    outside = np.unique(lab[edge & ~x])
    return x | ((lab > 0) & ~np.isin(lab, outside))


class UnsafeScipyCall(AssertionError):
    pass


def _refusing(name, fn):
    @functools.wraps(fn)
    def call(*args, **kw):
        iterations = kw.get("iterations", args[2] if len(args) > 2 and name in _ITERATING else 1)
        if name in ("binary_fill_holes", "binary_propagation") or iterations != 1:
            raise UnsafeScipyCall(
                f"scipy.ndimage.{name}(iterations={iterations}) takes scipy's coordinate-list (iterations != 1) path, which corrupts "
                "the heap (issue 25): use tests/scipy_safe.py's steps / until_stable / fill_holes_reference")
        return fn(*args, **kw)

    call.__medfuse_guard__ = True
    return call


# binary_erosion/dilation/opening/closing(input, structure=None, iterations=1, ...)
_ITERATING = ("binary_erosion", "binary_dilation", "binary_opening", "binary_closing")


def unguarded(name):
    """scipy.ndimage's own ``name`` with the guard lifted while it runs (scipy's internal calls included), for a
    benchmark that times it on purpose (the fill-holes anchors)."""
    from scipy.ndimage import _morphology

    def call(*args, **kw):
        saved = {(mod, n): getattr(mod, n) for n in _GUARDED for mod in (ndimage, _morphology)}
        try:
            for (mod, n), fn in saved.items():
                setattr(mod, n, getattr(fn, "__wrapped__", fn))
            return getattr(ndimage, name)(*args, **kw)
        finally:
            for (mod, n), fn in saved.items():
                setattr(mod, n, fn)

    return call


def install_guard():
    """Replace the guarded functions in ``scipy.ndimage`` and in the module that defines them (so scipy's own
    internal calls, e.g. binary_closing -> binary_dilation, are guarded too). Idempotent."""
    from scipy.ndimage import _morphology

    for name in _GUARDED:
        for mod in (ndimage, _morphology):
            fn = getattr(mod, name)
            if not getattr(fn, "__medfuse_guard__", False):
                setattr(mod, name, _refusing(name, fn))
