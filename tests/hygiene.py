"""Thread and Dask hygiene between tests, and the stress profiles' example scaling (issue 25): used by conftest.py's
autouse fixtures and tested in tests/test_hygiene.py."""

from __future__ import annotations

import sys
import threading


def close_dask() -> list[str]:
    """Close every Dask client and cluster still open; what was closed."""
    if "distributed" not in sys.modules:
        return []
    from distributed import Client
    from distributed.deploy.spec import SpecCluster

    closed = []
    for client in list(getattr(Client, "_instances", ())):
        if client.status not in ("closed", "closing"):
            client.close()
            closed.append(repr(client))
    for cluster in list(getattr(SpecCluster, "_instances", ())):
        if cluster.status.name not in ("closed", "closing"):
            cluster.close()
            closed.append(repr(cluster))
    return closed


def leaked_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Live non-daemon threads that were not in ``before``."""
    return [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]


BASE_EXAMPLES = 100  # the default profile's count; stress/thorough scale pinned counts by theirs over this


def scale_pinned_examples(items) -> None:
    """Scale pinned ``max_examples`` under the stress and thorough profiles.

    ``@settings(max_examples=N)`` on a test overrides the loaded profile, so
    without this a stress run would draw N examples for those tests, not 5N.
    Hypothesis reads the test's settings when the test runs, so replacing them
    at collection takes effect; each test function is scaled once
    (parametrized items share it). Profiles at or below the default leave N.
    """
    from hypothesis import settings

    profile = settings.default.max_examples
    if profile <= BASE_EXAMPLES:
        return
    for item in items:
        fn = getattr(item, "obj", None)
        own = getattr(fn, "_hypothesis_internal_use_settings", None)
        if own is None or getattr(fn, "_medfuse_scaled", False):
            continue
        if own.max_examples != profile:  # pinned by the test
            fn._hypothesis_internal_use_settings = settings(own, max_examples=round(own.max_examples * profile / BASE_EXAMPLES))
        fn._medfuse_scaled = True
