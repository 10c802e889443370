"""The C++ kernels' Python wrappers, one module per family.

Each wrapper (``edges``, ``histogram``, ``texture``, ``convolve``, ``enhance``,
``contrast``, ``morphology``, ``attention``, ``cnn``) validates its arguments,
normalises arrays and calls ``medfuse._core``; the argument checks it shares
with its NumPy twin in :mod:`medfuse.reference` live beside it in
``_<family>_plan``. The public names are re-exported at the top level
(``medfuse.canny`` …); this package imports nothing by itself, so the twins
can import the plans without loading the wrappers.
"""
