"""Thread and Dask hygiene between tests (issue 25): used by conftest.py's
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
