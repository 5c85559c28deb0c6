"""Seeds of the instances of a batched market.

A vector env seeded ``s`` gives instance ``b`` the seed ``instance_seeds(s, B)[b]``: the first
64-bit word of the ``b``-th child spawned from ``numpy.random.SeedSequence(s)``. Resetting the
PettingZoo env with that seed reproduces instance ``b`` bit for bit.
"""

from __future__ import annotations

import numpy as np


def instance_seeds(seed: int | None, num_instances: int) -> list[int]:
    """Derive one integer seed per instance from a base seed.

    Args:
        seed: Base seed. ``None`` draws fresh entropy from the operating system.
        num_instances: Number of instances B (>= 1).

    Returns:
        ``num_instances`` seeds in [0, 2**64), one per instance.
    """
    if num_instances < 1:
        raise ValueError(f"num_instances must be at least 1, got {num_instances}")
    children = np.random.SeedSequence(seed).spawn(num_instances)
    return [int(child.generate_state(1, dtype=np.uint64)[0]) for child in children]
