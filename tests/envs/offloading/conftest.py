"""Independent reference computations shared by the offloading tests.

The reference costs below loop over devices and resources in plain Python, with a Counter
for the loads, and never call the vectorized functions of ``ledgerzoo.envs.offloading.model``.
They read only the game's inputs: routes, resource delays, weights and private costs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from ledgerzoo.envs.offloading.game import OffloadingGame

ReferenceCosts = Callable[[OffloadingGame, int, Sequence[int]], list[float]]
ReferencePotential = Callable[[OffloadingGame, int, Sequence[int]], float]


def route_of(game: OffloadingGame, b: int, device: int, action: int) -> list[int]:
    """Resources of one route without the padding."""
    padding = game.topology.n_resources
    return [int(r) for r in game.topology.route_resources[b, device, action] if r != padding]


def loads_of(game: OffloadingGame, b: int, profile: Sequence[int]) -> Counter[int]:
    """n_res of a profile of instance b, by counting every route's resources."""
    loads: Counter[int] = Counter()
    for device, action in enumerate(profile):
        loads.update(route_of(game, b, device, int(action)))
    return loads


def costs_by_loops(game: OffloadingGame, b: int, profile: Sequence[int]) -> list[float]:
    """cost_i = w_i sum_{res in route} (alpha n + beta) + h_i, device by device."""
    loads = loads_of(game, b, profile)
    costs = []
    for device, action in enumerate(profile):
        delay = sum(
            game.resource_alpha[b, r] * loads[r] + game.resource_beta[b, r]
            for r in route_of(game, b, device, int(action))
        )
        costs.append(
            float(game.weights[b, device] * delay + game.private_costs[b, device, int(action)])
        )
    return costs


def potential_by_loops(game: OffloadingGame, b: int, profile: Sequence[int]) -> float:
    """Phi = sum_res sum_{m=1}^{n_res} (alpha m + beta) + sum_i h_i / w_i, term by term."""
    loads = loads_of(game, b, profile)
    congestion = sum(
        game.resource_alpha[b, r] * m + game.resource_beta[b, r]
        for r, n in loads.items()
        for m in range(1, n + 1)
    )
    private = sum(
        game.private_costs[b, device, int(action)] / game.weights[b, device]
        for device, action in enumerate(profile)
    )
    return float(congestion + private)


@pytest.fixture
def reference_costs() -> ReferenceCosts:
    return costs_by_loops


@pytest.fixture
def reference_potential() -> ReferencePotential:
    return potential_by_loops
