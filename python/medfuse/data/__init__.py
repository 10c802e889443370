"""Data integration: readers, the cohort, and the built-in synthetic data.

- :mod:`medfuse.data.io`: ``read_ct`` (DICOM series, NIfTI, .npy/.npz → a
  :class:`Volume` in HU with spacing), ``read_xray``, ``read_report``, ``read_audio`` (WAV/FLAC → mono float32).
- :mod:`medfuse.data.cohort`: :class:`Cohort` (a manifest joined by
  ``patient_id``, validated, missing modalities reported) and
  :func:`synthetic_cohort`, the default data, written as real files.
- :mod:`medfuse.data.datasets`: loaders for downloaded data sets —
  :func:`open_i` (Open-I / Indiana University chest X-rays) and
  :func:`dicom_folder` (DICOM studies + a CSV of labels) → a :class:`Cohort`.
- :mod:`medfuse.data.synthetic`: the generative model behind the cohort.
- :mod:`medfuse.data.phantoms`: chest CT and X-ray phantoms with known truth.
"""

from __future__ import annotations

from . import phantoms
from .cohort import MODALITIES, Cohort, CohortError, ManifestWarning, PatientRecord, synthetic_cohort
from .datasets import dicom_folder, open_i
from .io import MedfuseFileNotFoundError, MedfuseIOError, Volume, read_audio, read_ct, read_report, read_xray

__all__ = [
    "MODALITIES",
    "Cohort",
    "CohortError",
    "ManifestWarning",
    "MedfuseFileNotFoundError",
    "MedfuseIOError",
    "PatientRecord",
    "Volume",
    "dicom_folder",
    "open_i",
    "phantoms",
    "read_audio",
    "read_ct",
    "read_report",
    "read_xray",
    "synthetic_cohort",
]
