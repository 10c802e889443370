"""The test suite's own hygiene (issue 25): the thread-leak check and the Dask
clean-up that conftest.py applies to every test and module, and the Dask
port collision that made the Dask tests depend on what else runs on the machine."""

from __future__ import annotations

import socket
import threading

import pytest

import hygiene


def test_leaked_threads_finds_new_non_daemon_threads():
    before = set(threading.enumerate())
    stop = threading.Event()
    daemon = threading.Thread(target=stop.wait, daemon=True, name="hygiene-daemon")
    worker = threading.Thread(target=stop.wait, name="hygiene-worker")
    daemon.start()
    worker.start()
    try:
        assert hygiene.leaked_threads(before) == [worker]
    finally:
        stop.set()
        worker.join()
        daemon.join()
    assert hygiene.leaked_threads(before) == []


def test_close_dask_closes_what_a_test_left_open():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    client = distributed.Client(cluster)
    assert client.status == "running"
    closed = hygiene.close_dask()
    assert len(closed) == 2, closed
    assert client.status == "closed" and cluster.status.name == "closed"
    assert hygiene.close_dask() == []


def test_dask_local_cluster_with_the_default_port_taken():
    """dashboard_address=":0" (tests/test_cli.py, medfuse.extract's local
    cluster) starts while port 8787 is taken; the default (None) would warn,
    and under filterwarnings=error fail, whenever another Dask runs here."""
    distributed = pytest.importorskip("distributed")
    blocker = socket.socket()
    try:
        try:
            blocker.bind(("0.0.0.0", 8787))
            blocker.listen()
        except OSError:
            pass  # already taken by someone else: the same condition
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                      dashboard_address=":0") as cluster:
            with distributed.Client(cluster) as client:
                assert client.submit(sum, [1, 2, 3]).result() == 6
    finally:
        blocker.close()


_ABORTING_TEST = '''
import ctypes, os, threading

def test_dies():
    libc = ctypes.CDLL(None)
    libc.write(2, b"free(): corrupted unsorted chunks (stand-in for glibc)\\n", 55)
    os.abort()
'''


def test_abort_message_is_kept(tmp_path):
    """With the project's pytest configuration, what C code writes to fd 2
    just before the interpreter aborts reaches the terminal (not lost with
    pytest's capture), and faulthandler names the test that was running."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "test_abort_here.py").write_text(_ABORTING_TEST)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.path.join(root, "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "-q", str(tmp_path / "test_abort_here.py")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"},
    )
    assert run.returncode == -6, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    assert "free(): corrupted unsorted chunks" in run.stderr
    assert "Fatal Python error: Aborted" in run.stderr
    assert "test_dies" in run.stderr


def test_extract_process_pool_does_not_fork():
    """medfuse.extract's process workers are spawned: a fork would copy the
    locks held by the parent's other threads (the test suite's Dask event
    loop, pyarrow's pools) into children that can never release them."""
    from medfuse import extract

    pool, close = extract._executor("processes", 1, None)
    try:
        assert pool._mp_context.get_start_method() == "spawn"
    finally:
        close()


def _pinned_property(calls):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=7, database=None)
    @given(st.integers())
    def prop(x):
        calls.append(x)

    return prop


def test_stress_profile_scales_pinned_example_counts():
    """Under the stress profile a test that pins max_examples=7 draws 5x as
    many (35); under the default profile it keeps its 7 (issue 25: the
    stress job must enlarge every property)."""
    from types import SimpleNamespace

    from hypothesis import settings


    before = settings.default
    try:
        for profile, expected in (("default", 7), ("stress", 35)):
            settings.load_profile(profile)
            calls: list = []
            prop = _pinned_property(calls)
            item = SimpleNamespace(obj=prop)
            hygiene.scale_pinned_examples([item, item])  # a shared function is scaled once
            prop()
            assert len(calls) == expected, (profile, len(calls))
    finally:
        settings.register_profile("_restored", before)
        settings.load_profile("_restored")


_OVERFLOW_ONE_BYTE = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.malloc.restype = ctypes.c_void_p\n"
    "libc.free.argtypes = [ctypes.c_void_p]\n"
    "p = libc.malloc(13)\n"
    "c = p - 16  # the chunk header, 16 bytes before the block on x86-64\n"
    "magic = ((c >> 3) ^ (c >> 11)) & 0xFF  # glibc malloc-check.c magicbyte(): the check byte at p[13]\n"
    "magic = 2 if magic == 1 else magic\n"
    "print('active' if ctypes.c_ubyte.from_address(p + 13).value == magic else 'inactive', flush=True)\n"
    "ctypes.memset(p + 13, magic ^ 0x5A, 1)  # one byte past the block\n"
    "libc.free(p)\n"
    "print('undetected', flush=True)\n"
)


def _malloc_debug_lib():
    import glob

    found = sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")
                   + glob.glob("/lib64/libc_malloc_debug.so.0") + glob.glob("/usr/lib64/libc_malloc_debug.so.0"))
    return found[0] if found else None


def test_stress_malloc_check_catches_a_one_byte_heap_overflow():
    """.ci/stress with STRESS_MALLOC_CHECK=1 preloads glibc's malloc debug
    library: a write one byte past a block then aborts at its free(), in any
    code (the optimised build, NumPy, OpenCV), which ASan cannot promise for
    code it did not instrument. Without the preload MALLOC_CHECK_=3 is silently
    ignored since glibc 2.34 (what an earlier hunt for this issue relied on),
    and with it the checks are only on where the interpreter did not allocate
    before the library initialised (so the job prints whether they are)."""
    import os
    import re
    import subprocess
    import sys

    lib = _malloc_debug_lib()
    if lib is None:
        pytest.skip("glibc's libc_malloc_debug.so.0 is not installed")
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CHECK_", "PYTHONMALLOC")}
    # PYTHONMALLOC=malloc: nothing but glibc between the test and the block.
    base["PYTHONMALLOC"] = "malloc"
    # The probe needs only ctypes: run it in this interpreter and, where the
    # checks stay off in it (a Python linked against a shared libpython, e.g.
    # pyenv: libpython's initialisers allocate before the debug library's
    # run), in the system Python, where they are on. Skipped only when no
    # interpreter here has them; .ci/stress then refuses STRESS_MALLOC_CHECK=1.
    import shutil

    checked = None
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]):
        if not py or not os.path.exists(py):
            continue
        run = subprocess.run([py, "-c", _OVERFLOW_ONE_BYTE], capture_output=True, text=True, timeout=60,
                             env=dict(base, LD_PRELOAD=lib, MALLOC_CHECK_="3"))
        if not run.stdout.startswith("inactive"):
            checked = run
            break
    if checked is None:
        pytest.skip("glibc's malloc check is not active in any interpreter found here")
    assert checked.stdout.startswith("active"), checked.stdout
    assert checked.returncode == -6, (checked.returncode, checked.stdout, checked.stderr[-2000:])
    assert "undetected" not in checked.stdout
    assert "free()" in checked.stderr

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".ci", "stress")) as f:
        script = f.read()
    assert "libc_malloc_debug.so.0" in script and "MALLOC_CHECK_=3" in script
    # Where the checks would be off, the job stops instead of running unchecked.
    refusal = re.search(r'if \[ "\$active" != 1 \]; then\n(.*?)\n  fi\n', script, re.S)
    assert refusal and "exit 1" in refusal.group(1), "stress must refuse an unchecked run"


def test_no_test_can_take_scipys_heap_corrupting_morphology_path():
    """scipy.ndimage's repeat-until-stable binary morphology (iterations < 1, and binary_fill_holes /
    binary_propagation, which use it) corrupts the heap in scipy 1.17.1 for some inputs; the suite then aborted later
    inside medfuse (issue 25). conftest.py installs tests/scipy_safe.py's guard: any such call fails at the call,
    also scipy's internal ones; single steps still work (the references repeat them)."""
    import numpy as np
    import scipy.ndimage as ndi
    from scipy.ndimage import _morphology

    from scipy_safe import UnsafeScipyCall, steps, until_stable

    x = np.zeros((7, 7), bool)
    x[3, 3] = True
    for call in (lambda: ndi.binary_dilation(x, iterations=0), lambda: ndi.binary_erosion(x, None, -1),
                 lambda: ndi.binary_closing(x, iterations=0), lambda: ndi.binary_opening(x, iterations=-2),
                 lambda: ndi.binary_fill_holes(x), lambda: ndi.binary_propagation(x),
                 lambda: _morphology.binary_dilation(x, iterations=0)):
        with pytest.raises(UnsafeScipyCall, match="iterations != 1"):
            call()
    with pytest.raises(UnsafeScipyCall):
        ndi.binary_dilation(x, iterations=2)  # the same coordinate-list path (scipy issue 11400)
    grown = steps(ndi.binary_dilation, x, 2)
    assert grown.sum() == 13
    assert until_stable(ndi.binary_dilation, x, mask=np.ones_like(x)).all()
