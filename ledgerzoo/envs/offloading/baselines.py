"""Simple offloading policies that the equilibrium is compared against.

Each function returns a legal action profile (B, N) int64 in the action layout of
``topology.py``. Evaluate it with ``model.device_costs`` or ``model.total_cost``.
"""

from __future__ import annotations

import numpy as np

from ledgerzoo.envs.offloading.game import OffloadingGame
from ledgerzoo.envs.offloading.topology import LOCAL_ACTION


def all_local_profile(game: OffloadingGame) -> np.ndarray:
    """Run every task on its own device."""
    return np.full((game.batch_size, game.n_devices), LOCAL_ACTION, dtype=np.int64)


def nearest_edge_profile(game: OffloadingGame) -> np.ndarray:
    """Send every task to its nearest reachable edge server, or run it locally if there is none.

    Nearest means the fewest relay hops, then the shortest straight-line distance between
    the device and the edge server, then the lowest edge index.
    """
    topology = game.topology
    hops = topology.relay_hops
    reachable = hops >= 0
    fewest = np.where(reachable, hops, np.iinfo(np.int64).max).min(axis=2, keepdims=True)
    distance = np.linalg.norm(
        topology.device_positions[:, :, None, :] - topology.edge_positions[:, None, :, :], axis=-1
    )
    distance = np.where(reachable & (hops == fewest), distance, np.inf)
    nearest = np.argmin(distance, axis=2)
    return np.where(reachable.any(axis=2), 1 + nearest, LOCAL_ACTION).astype(np.int64)


def random_profile(game: OffloadingGame, seed: int = 0) -> np.ndarray:
    """Choose every device's action uniformly among its legal actions.

    Device i takes the legal action with the largest of the keys
    ``numpy.random.default_rng(seed).random((N, A))[i]``. Every instance of a batch uses the
    same keys, so an instance gets the same profile alone or in any batch.
    """
    keys = np.random.default_rng(seed).random((game.n_devices, game.n_actions))
    return np.argmax(np.where(game.action_mask, keys[None], -np.inf), axis=2).astype(np.int64)
