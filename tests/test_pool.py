"""The persistent worker pool behind every kernel's threads (issue 22).

Through ``medfuse._core._parallel_probe`` (a parallel_for whose tasks record
the OS thread that ran them, run an inner parallel_for and may throw) and
through kernels whose small images now split across threads: results equal
for 1..4 threads, from several Python threads at once, nested calls serial
(unless the outer loop has a single task and threads >= 2),
exceptions rethrown, threads reused, and a forked child that does not wait on
the parent's threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import images
import medfuse
import medfuse.reference as ref
from medfuse import _core


def _expected(n: int, inner: int) -> list[int]:
    return [i * i + i * (inner * (inner - 1) // 2) for i in range(n)]


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 9])
@pytest.mark.parametrize("n_tasks", [0, 1, 2, 7, 64])
def test_probe_results_and_thread_bound(threads: int, n_tasks: int) -> None:
    out, nested_serial, ids = _core._parallel_probe(n_tasks, threads, 5, 4)
    assert out == _expected(n_tasks, 5)
    if threads == 1 or n_tasks >= 2:  # one task with threads >= 2: see test_single_task_...
        assert nested_serial, "a parallel_for inside a task must run on the task's thread"
    # never more threads than asked for (nor than tasks)
    assert len(ids) <= max(1, min(threads, n_tasks))


def test_probe_uses_helpers_when_tasks_block() -> None:
    # Tasks that sleep leave the caller busy: idle helpers must pick up work
    # (100 ms of tasks: time for a helper to wake even on a loaded machine).
    _, _, ids = _core._parallel_probe(50, 2, 0, 1, sleep_us=2000)
    assert len(ids) == 2


def test_single_task_leaves_its_threads_to_a_nested_loop() -> None:
    """An outer loop serial only because it has one task (a batch of one) does
    not make the loop inside it serial; a budget of one thread or a threaded
    outer loop does. Inner tasks sleep (80 ms in all) so a helper has time to
    wake and take some even on a loaded machine."""
    out, nested_serial, ids = _core._parallel_probe(1, 2, 40, 2, inner_sleep_us=2000)
    assert out == _expected(1, 40) and len(ids) == 1
    assert not nested_serial, "the inner loop of a single outer task should use its 2 threads"
    # threads=1 never uses another thread, nested or not
    out, nested_serial, _ = _core._parallel_probe(1, 1, 40, 2, inner_sleep_us=2000)
    assert out == _expected(1, 40) and nested_serial
    # inside a threaded outer loop the inner loop stays on its task's thread
    out, nested_serial, _ = _core._parallel_probe(2, 2, 20, 2, inner_sleep_us=2000)
    assert out == _expected(2, 20) and nested_serial


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("throw_at", [0, 5, 31])
def test_probe_exception_is_rethrown_and_pool_survives(threads: int, throw_at: int) -> None:
    with pytest.raises(RuntimeError, match=f"task {throw_at} failed"):
        _core._parallel_probe(32, threads, 3, 2, throw_at=throw_at)
    out, _, _ = _core._parallel_probe(32, threads, 3, 2)
    assert out == _expected(32, 3)


@pytest.mark.parametrize("bad", [dict(n_tasks=-1), dict(threads=0), dict(inner_threads=0), dict(sleep_us=-1),
                                 dict(inner_sleep_us=-1)])
def test_probe_refuses_bad_counts(bad: dict[str, int]) -> None:
    kw = dict(n_tasks=4, threads=2, inner=2, inner_threads=2) | bad
    with pytest.raises(ValueError, match="thread counts"):
        _core._parallel_probe(**kw)


def test_probe_from_many_python_threads() -> None:
    """Eight callers at once (GIL released), each with its own thread count."""
    barrier = threading.Barrier(8)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=60)
            for k in range(20):
                out, nested, _ = _core._parallel_probe(50 + t, 1 + (t + k) % 4, 3, 2, sleep_us=k % 2 * 50)
                assert nested
                assert out == _expected(50 + t, 3)
            results[t] = out
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a caller never returned (deadlock)"
    assert not errors, errors
    assert sorted(results) == list(range(8))


_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from medfuse import _core

    # Persistent: 40 calls with 3 threads run on at most 2 helper threads.
    me = os.getpid()  # the caller's thread id on Linux is its pid
    helpers = set()
    for _ in range(40):
        out, _, ids = _core._parallel_probe(24, 3, 0, 1, sleep_us=300)
        helpers.update(i for i in ids if i != me)
    # Fork with the pool started: the child must get its own threads.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        # 24 tasks of 5 ms: time enough for a new helper to start even on a loaded machine
        out, _, ids = _core._parallel_probe(24, 3, 4, 2, sleep_us=5000)
        os.write(w, json.dumps([out, len(ids)]).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    _, status = os.waitpid(pid, 0)
    child_out, child_threads = json.loads(data)
    print(json.dumps({"helpers": len(helpers), "child_out": child_out,
                      "child_threads": child_threads, "status": status}))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threads_are_reused_and_fork_child_gets_a_new_pool() -> None:
    import json

    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 1 <= res["helpers"] <= 2, res  # a new thread per call would give up to 40 ids
    assert res["status"] == 0
    assert res["child_out"] == _expected(24, 4)
    assert 2 <= res["child_threads"] <= 3, res  # 1: the child's pool never started a helper


_IDLE_SCRIPT = textwrap.dedent(
    """
    import time
    from medfuse import _core
    for i in range(2000):  # calls back to back, then short pauses: the helpers' spin grows to its longest
        _core._parallel_probe(8, 3, 0, 1)
        if i % 4 == 0:
            time.sleep(0.0003)
    time.sleep(0.05)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(0.5)
    print(time.process_time() - cpu0, time.perf_counter() - wall0)
    """
)


def test_idle_helpers_stop_spinning() -> None:
    """Helpers spin for a next job (longer while calls come in quick
    succession) and then block: a process idle for half a second uses almost
    no CPU, however busy it was before (a helper spinning through it uses
    half a second: mutation-checked)."""
    proc = subprocess.run(
        [sys.executable, "-c", _IDLE_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    cpu, wall = map(float, proc.stdout.split())
    assert wall >= 0.5
    assert cpu < 0.1, f"{cpu:.3f} s of CPU in {wall:.3f} s idle: helpers kept spinning"


# ---- kernels whose small images now split across threads ----------------------------------


def _kernel_results(x: np.ndarray) -> list[np.ndarray]:
    out = [
        medfuse.median(x, 3),
        medfuse.median(x, 5, border="replicate"),
        medfuse.canny(x, 20, 60),
        medfuse.canny(x, 20, 60, sigma=1.2, l2_gradient=True),
        medfuse.equalize_hist(x),
    ]
    if min(x.shape) >= 16:
        out.append(medfuse.clahe(x, clip_limit=2.0, tile_grid=(8, 8)))
    return out


@pytest.mark.parametrize("shape", [(512, 512), (301, 517), (1, 1), (2, 700), (700, 3)])
def test_split_kernels_identical_for_1_to_4_threads(shape: tuple[int, int]) -> None:
    x = images.make("ct", shape, np.uint8, seed=3)
    before = medfuse.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 3, 4):
            medfuse.set_num_threads(n)
            runs.append(_kernel_results(x))
    finally:
        medfuse.set_num_threads(before)
    for n, res in zip((2, 3, 4), runs[1:]):
        for a, b in zip(runs[0], res):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{n} threads differ from 1"
    # and the 1-thread results are the twins' (the split changes nothing)
    assert np.array_equal(runs[0][0], ref.median(x, 3))
    assert np.array_equal(runs[0][2], ref.canny(x, 20, 60))


def test_split_kernels_from_python_threads_with_2_kernel_threads() -> None:
    xs = [images.make("ct", (512, 512), np.uint8, seed=s) for s in range(4)]
    before = medfuse.get_num_threads()
    medfuse.set_num_threads(2)
    try:
        serial = [_kernel_results(x) for x in xs]
        got: dict[int, list[np.ndarray]] = {}
        barrier = threading.Barrier(4)

        def work(t: int) -> None:
            barrier.wait(timeout=60)
            for _ in range(3):
                got[t] = _kernel_results(xs[t])

        ths = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(timeout=120)
    finally:
        medfuse.set_num_threads(before)
    assert sorted(got) == [0, 1, 2, 3]
    for t in range(4):
        for a, b in zip(serial[t], got[t]):
            assert np.array_equal(a, b)
