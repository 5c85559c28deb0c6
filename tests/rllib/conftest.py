"""Fixtures of the RLlib backend's tests: a small local Ray instance on the loopback address.

Ray reads these variables when it is imported and when it starts its processes, so they are
set before any test module imports ray. With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (ray 2.60) a
local instance uses 127.0.0.1 as its node address rather than looking up the machine's
outgoing interface; RAY_USAGE_STATS_ENABLED=0 turns off Ray's usage reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Just above the minimum object store of ray 2.60 (75 MiB); the sample batches take far less.
OBJECT_STORE_BYTES = 80 * 1024**2


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    """Start one local Ray instance (2 CPUs, no dashboard) for the session; shut it down after."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
