"""Fuzzing the file readers (issue 9, item 2): medfuse.data.read_ct, read_xray
and read_report on mutated copies of a seed corpus of valid files
(tests/fuzz/corpus/, written by tests/fuzz/make_corpus.py) must return a
well-formed result or raise MedfuseIOError naming the file: never a raw
pydicom / nibabel / cv2 / NumPy exception, a crash or a hang.

The CI run mutates MEDFUSE_FUZZ_CASES files (default 3000, ~10 s) in a
subprocess (tests/fuzz/fuzz_readers.py) so that a crash of a decoder is
caught and the input that caused it reported. Longer and coverage-guided
(atheris) sessions: tests/fuzz/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pydicom")
pytest.importorskip("nibabel")

from medfuse.data import io as mio

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import fuzz_readers as fr

CASES = int(os.environ.get("MEDFUSE_FUZZ_CASES", "3000"))


def test_seed_corpus_is_valid():
    seeds = fr.seeds()
    assert {fr.suffix_of(p) for p in seeds} == set(fr.READERS_FOR)
    for p in seeds:
        fr.check_file(p)  # raises Finding on a breach
        name = fr.READERS_FOR[fr.suffix_of(p)][-1 if "xray" in p.name else 0]
        reader = fr._dataset_reader(name) if name in fr.DATASET_READERS else getattr(mio, name)
        reader(p)  # and the seeds really are readable (no MedfuseIOError)


@pytest.mark.parametrize("suffix", sorted(fr.READERS_FOR))
@pytest.mark.parametrize("content", [b"", b"\x00" * 300, b"garbage\xff\xfe" * 10], ids=["empty", "zeros", "garbage"])
def test_junk_files_raise_medfuse_error_with_path(tmp_path, suffix, content):
    p = tmp_path / f"junk{suffix}"
    p.write_bytes(content)
    fr.check_file(p)


def test_truncated_seed_files(tmp_path):
    for seed in fr.seeds():
        data = seed.read_bytes()
        for cut in sorted({1, len(data) // 3, len(data) // 2, len(data) - 1}):
            p = tmp_path / f"cut{fr.suffix_of(seed)}"
            p.write_bytes(data[:cut])
            fr.check_file(p)


def test_dicom_without_rows_is_medfuse_error(tmp_path):
    """Found by the fuzzer: pydicom stops at a corrupt element, read_ct then
    raised AttributeError ('FileDataset' object has no attribute 'Rows')."""
    import pydicom

    ds = pydicom.dcmread(fr.CORPUS / "ct_slice.dcm")
    del ds.Rows
    p = tmp_path / "norows.dcm"
    ds.save_as(p)
    with pytest.raises(mio.MedfuseIOError, match="norows.dcm") as err:
        mio.read_ct(p)
    assert err.value.path == str(p)
    with pytest.raises(mio.MedfuseIOError, match="norows.dcm"):
        mio.read_xray(p)


def test_bad_spacing_argument_stays_a_plain_value_error(tmp_path):
    with pytest.raises(ValueError, match="spacing") as err:
        mio.read_ct(fr.CORPUS / "ct.npy", spacing=(0, 1, 1))
    assert not isinstance(err.value, mio.MedfuseIOError)


def test_mutation_fuzzing(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_readers.py"), "mutate", "--cases", str(CASES), "--seed", "20261124",
         "--workdir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=max(120, CASES // 5),
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        current = tmp_path / "current.json"
        last = current.read_text() if current.exists() else "(unknown)"
        pytest.fail(f"fuzzer process died (exit {proc.returncode}) on input {last}\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cases"] == CASES
    assert not summary["findings"], json.dumps(summary["findings"][:3], indent=1)
