"""Fuzzing the file readers medfuse.data.read_ct / read_xray / read_report.

Contract (medfuse.data.io docstring, issue 9): whatever the bytes, a reader
returns a well-formed result (a Volume with a 3D int16 array, a 2D array, a
str) or raises medfuse.data.MedfuseIOError whose ``path`` is the file read and
whose message names it. Never a raw pydicom / nibabel / cv2 / NumPy
exception, never a crash, never a hang.

Two engines share ``check_file``:

- ``mutate``: a deterministic mutation fuzzer (bit flips, byte overwrites
  with interesting values, truncation, insertion, chunk duplication and
  deletion, splices of two seeds) over the seed corpus. No dependency; used
  by tests/test_fuzz_readers.py in CI.

      python tests/fuzz/fuzz_readers.py mutate --cases 20000 --seed 5

- ``atheris``: coverage-guided (libFuzzer via atheris, pip install atheris);
  the first input byte picks the file type, the rest is the file.

      python tests/fuzz/fuzz_readers.py atheris -max_total_time=600 /tmp/fuzz-corpus tests/fuzz/corpus-atheris

See tests/fuzz/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# suffix -> the readers that accept it
SUFFIXES = (".dcm", ".nii", ".nii.gz", ".npy", ".npz", ".png", ".jpg", ".tif", ".txt")
READERS_FOR = {
    ".dcm": ("read_ct", "read_xray"),
    ".nii": ("read_ct",),
    ".nii.gz": ("read_ct",),
    ".npy": ("read_ct", "read_xray"),
    ".npz": ("read_ct",),
    ".png": ("read_xray",),
    ".jpg": ("read_xray",),
    ".tif": ("read_xray",),
    ".txt": ("read_report",),
    ".wav": ("read_audio",),
    ".flac": ("read_audio",),
    ".xml": ("parse_open_i_report",),  # medfuse.data.datasets: one Open-I report
    ".tgz": ("open_i",),  # an Open-I report archive (gzip: mutations mostly hit the stream)
    ".tar": ("open_i",),  # uncompressed: mutations reach the tar headers and the XML inside
}
# readers of medfuse.data.datasets: a ValueError naming the file (CohortError is one) is their refusal
DATASET_READERS = ("parse_open_i_report", "open_i")


def _dataset_reader(name: str) -> Callable[[Path], Any]:
    from medfuse.data import datasets

    if name == "parse_open_i_report":
        return lambda p: datasets.parse_open_i_report(p.read_bytes(), os.fspath(p))
    return lambda p: datasets.open_i(p)
CASE_TIMEOUT = 10  # CPU seconds; a reader slower than this on a <100 KB file hangs


class Finding(Exception):
    """A reader broke its contract on an input."""


class _Timeout(BaseException):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def suffix_of(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


def _check_result(reader: str, out: Any) -> str | None:
    import numpy as np

    from medfuse.data import io as mio

    if reader == "read_ct":
        if not isinstance(out, mio.Volume) or out.array.ndim != 3 or out.array.dtype != np.int16:
            return f"read_ct returned {type(out).__name__} {getattr(getattr(out, 'array', None), 'shape', '')}"
        if len(out.spacing) != 3:
            return f"read_ct spacing {out.spacing!r}"
    elif reader == "read_xray":
        if not isinstance(out, np.ndarray) or out.ndim != 2:
            return f"read_xray returned {type(out).__name__} {getattr(out, 'shape', '')}"
    elif reader == "read_audio":
        if not (isinstance(out, tuple) and len(out) == 2):
            return f"read_audio returned {type(out).__name__}"
        x, rate = out
        if not isinstance(x, np.ndarray) or x.ndim != 1 or x.dtype != np.float32 or x.size == 0:
            return f"read_audio samples {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}"
        if not np.isfinite(x).all() or not isinstance(rate, int) or rate <= 0:
            return f"read_audio: non-finite samples or rate {rate!r}"
    elif reader == "parse_open_i_report":
        if not isinstance(out, dict) or not all(isinstance(out[k], str) for k in ("uid", "findings", "impression")):
            return f"parse_open_i_report returned {out!r:.200}"
        if not all(isinstance(v, str) for k in ("major", "automatic", "images") for v in out[k]):
            return "parse_open_i_report: non-str MeSH terms or image ids"
    elif reader == "open_i":
        from medfuse.data import Cohort

        if not isinstance(out, Cohort) or len(out) == 0 or set(out.labels) - {0, 1}:
            return f"open_i returned {out!r:.200}"
    elif not isinstance(out, str):
        return f"read_report returned {type(out).__name__}"
    return None


def check_file(path: Path) -> None:
    """Run every reader that accepts path's suffix; raise Finding on a contract breach."""
    from medfuse.data import io as mio

    for reader in READERS_FOR[suffix_of(path)]:
        fn: Callable[..., Any] = _dataset_reader(reader) if reader in DATASET_READERS else getattr(mio, reader)
        arg: Any = path  # read_report: a PathLike is always a path
        # CPU-time limit (SIGPROF), not wall time: a starved process on a busy
        # machine is not a hang, an endless loop burns CPU
        old = signal.signal(signal.SIGPROF, _on_alarm)
        signal.setitimer(signal.ITIMER_PROF, CASE_TIMEOUT)
        try:
            out = fn(arg)
        except _Timeout:
            raise Finding(f"{reader} hung (> {CASE_TIMEOUT} s of CPU)") from None
        except mio.MedfuseIOError as err:
            if err.path != os.fspath(path) or os.fspath(path) not in str(err):
                raise Finding(f"{reader}: MedfuseIOError does not name the path: {err!r}") from err
            continue
        except ValueError as err:
            if reader not in DATASET_READERS:
                tb = traceback.format_exc(limit=6)
                raise Finding(f"{reader} raised {type(err).__name__}: {err}\n{tb}") from err
            if os.fspath(path) not in str(err) and path.name not in str(err):
                raise Finding(f"{reader}: {type(err).__name__} does not name the file: {err!r}") from err
            continue
        except Exception as err:
            tb = traceback.format_exc(limit=6)
            raise Finding(f"{reader} raised {type(err).__name__}: {err}\n{tb}") from err
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, old)
        why = _check_result(reader, out)
        if why:
            raise Finding(why)


# ------------------------------------------------------------------ mutation

_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00", b"\xff\xff\xff\x7f",
                b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00", b"\x00\x00\x01\x00",
                b"\x40\x9c\x00\x00", b"nan", b"-1", b"1e308", b"\x00" * 8]


def mutate(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """1-4 random edits of data (other: a second seed for splicing)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        n = len(buf)
        if op == 0 and n:  # flip bits
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # interesting value
            v = rng.choice(_INTERESTING)
            i = rng.randrange(n)
            buf[i:i + len(v)] = v
        elif op == 2 and n:  # truncate
            del buf[rng.randrange(n):]
        elif op == 3:  # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 4 and n:  # duplicate a chunk
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 256))
            k = rng.randrange(n + 1)
            buf[k:k] = buf[i:j]
        elif op == 5 and n:  # delete a chunk
            i = rng.randrange(n)
            del buf[i:i + rng.randint(1, 64)]
        elif op == 6 and n:  # random bytes in place
            i = rng.randrange(n)
            buf[i:i + 8] = bytes(rng.randrange(256) for _ in range(8))
        elif op == 7 and other:  # splice with another seed
            i = rng.randrange(n + 1)
            j = rng.randrange(len(other))
            buf = buf[:i] + bytearray(other[j:])
    return bytes(buf)


def seeds(corpus: Path = CORPUS) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.is_file() and suffix_of(p) in READERS_FOR)


def run_mutation(cases: int, seed: int, workdir: Path, max_time: float | None = None) -> dict[str, Any]:
    """cases mutated files (or until max_time s); a summary dict (findings listed)."""
    import medfuse.data.io  # noqa: F401 - import once (pydicom, nibabel, cv2 load lazily below)

    rng = random.Random(seed)
    files = seeds()
    blobs = {p: p.read_bytes() for p in files}
    findings: list[dict[str, str]] = []
    t0 = time.perf_counter()
    done = 0
    current = workdir / "current.json"
    for i in range(cases):
        if max_time is not None and time.perf_counter() - t0 > max_time:
            break
        src = files[i % len(files)]
        data = mutate(blobs[src], rng, blobs[rng.choice(files)])
        path = workdir / f"case{suffix_of(src)}"
        path.write_bytes(data)
        # what we are about to run, for the parent if this process dies
        current.write_text(json.dumps({"seed_file": src.name, "case": i, "hex": data.hex()}))
        try:
            check_file(path)
        except Finding as f:
            keep = workdir / f"finding{len(findings)}{suffix_of(src)}"
            keep.write_bytes(data)
            findings.append({"seed_file": src.name, "case": str(i), "saved": str(keep), "what": str(f)[:1500]})
        done += 1
    current.unlink(missing_ok=True)
    return {"cases": done, "seconds": round(time.perf_counter() - t0, 1), "seed_files": len(files),
            "findings": findings}


# ------------------------------------------------------------------- atheris

def run_atheris(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        # the Python decoders whose branches guide the fuzzer (cv2 is C++)
        import nibabel  # noqa: F401
        import pydicom  # noqa: F401

        import medfuse.data.io  # noqa: F401
    tmp = Path(tempfile.mkdtemp(prefix="medfuse-atheris-"))

    def one_input(data: bytes) -> None:
        if not data:
            return
        path = tmp / f"case{SUFFIXES[data[0] % len(SUFFIXES)]}"
        path.write_bytes(data[1:])
        check_file(path)  # a Finding is uncaught: atheris reports it and saves the input

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def atheris_seed_corpus(out: Path) -> None:
    """The seed corpus in atheris' format (type byte + file bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    for p in seeds():
        (out / p.name).write_bytes(bytes([SUFFIXES.index(suffix_of(p))]) + p.read_bytes())


def _limit_memory(gib: float) -> None:
    try:
        import resource

        lim = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    except (ImportError, ValueError, OSError):
        pass


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "atheris":  # libFuzzer flags are not argparse's
        if "MEDFUSE_SANITIZE_RUN" not in os.environ:
            _limit_memory(float(os.environ.get("MEDFUSE_FUZZ_AS_GIB", "4")))
        run_atheris(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mutate")
    m.add_argument("--cases", type=int, default=1000)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--max-time", type=float, default=None)
    m.add_argument("--workdir", type=Path, default=None)
    m.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    sub.add_parser("atheris", help="coverage-guided; the remaining arguments go to libFuzzer")
    c = sub.add_parser("atheris-corpus")
    c.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "atheris-corpus":
        atheris_seed_corpus(args.out)
        return
    if "MEDFUSE_SANITIZE_RUN" not in os.environ:
        _limit_memory(float(os.environ.get("MEDFUSE_FUZZ_AS_GIB", "4")))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="medfuse-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    summary = run_mutation(args.cases, args.seed, workdir, args.max_time)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['cases']} cases in {summary['seconds']} s, {len(summary['findings'])} findings")
        for f in summary["findings"]:
            print("---", f["seed_file"], f["saved"], "\n", f["what"])
    sys.exit(1 if summary["findings"] else 0)


if __name__ == "__main__":
    main()
