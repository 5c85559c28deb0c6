"""Counting legal action profiles of large offloading games, whose count overflows int64."""

from __future__ import annotations

import warnings

import numpy as np

from ledgerzoo.envs.offloading import equilibrium
from ledgerzoo.envs.offloading.market import OffloadingMarket


def test_profiles_within_large_game() -> None:
    market = OffloadingMarket(num_instances=1, n_devices=300, n_edges=20)
    market.seed([0])
    market.reset()
    counts = market.base_game.action_mask.sum(axis=2)
    assert np.log(counts.astype(float)).sum() > np.log(2.0**63), "the count should overflow"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        within = equilibrium.profiles_within(market.base_game, equilibrium.MAX_PROFILES)

    assert not within[0]


def test_profiles_within_small_game_exact() -> None:
    market = OffloadingMarket(num_instances=1, n_devices=3, n_edges=2)
    market.seed([0])
    market.reset()
    count = int(np.prod(market.base_game.action_mask.sum(axis=2)))

    assert equilibrium.profiles_within(market.base_game, count)[0]
    assert not equilibrium.profiles_within(market.base_game, count - 1)[0]


def test_solve_large_game_gives_bound() -> None:
    market = OffloadingMarket(num_instances=1, n_devices=300, n_edges=20)
    market.seed([0])
    market.reset()

    result = market.solve()

    assert result["social_optimum"]["exact"] is False
    assert np.isfinite(result["social_optimum"]["total_cost"])
