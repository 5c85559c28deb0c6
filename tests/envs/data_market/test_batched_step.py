"""The batched shortcuts of the data market against the plain computations they replace.

Instances are drawn per generator and stacked once, the aged market is copied without a new
validation, relay sums use an index built once per episode, and the ledger's queue is sized
by the episode. Every check here is bit for bit, because the vector env must equal the
PettingZoo env exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ledgerzoo.envs.data_market import relays
from ledgerzoo.envs.data_market.market import DataMarketMarket
from ledgerzoo.envs.data_market.scenario import (
    DataMarket,
    DataMarketScenario,
    kang2017_market,
    small_market,
)
from ledgerzoo.ledger import LedgerConfig


def array_fields(market: DataMarket) -> list[str]:
    """Names of the market's per-instance array fields."""
    return [
        spec.name
        for spec in dataclasses.fields(market)
        if isinstance(getattr(market, spec.name), np.ndarray)
    ]


@pytest.mark.parametrize("scenario", [small_market(), kang2017_market()], ids=["small", "kang"])
def test_instances_equal_single_draws(scenario: DataMarketScenario) -> None:
    seeds = [8, 9, 10, 11]

    batch = scenario.sample_instances([np.random.default_rng(seed) for seed in seeds])

    for index, seed in enumerate(seeds):
        alone = scenario.sample(np.random.default_rng(seed), 1)
        for name in array_fields(alone):
            assert np.array_equal(getattr(batch, name)[index], getattr(alone, name)[0]), (
                f"instance {index}: {name} differs from a single draw with seed {seed}"
            )


def test_aged_equals_replaced_age() -> None:
    market = small_market().sample(np.random.default_rng(3), 4)

    aged = market.aged(3)

    replaced = dataclasses.replace(market, age=market.age + 3)
    assert np.array_equal(aged.age, replaced.age)
    assert np.array_equal(aged.value_factors, replaced.value_factors)
    assert np.array_equal(aged.efficiency, replaced.efficiency)
    assert np.array_equal(market.age + 3, aged.age), "aging must not change the original"
    assert market.aged(0) is market


def test_aged_rejects_negative_rounds() -> None:
    market = small_market().sample(np.random.default_rng(3), 1)

    with pytest.raises(ValueError, match="rounds"):
        market.aged(-1)


def test_derived_arrays_are_read_only() -> None:
    market = small_market().sample(np.random.default_rng(4), 2)

    with pytest.raises(ValueError):
        market.value_factors[0, 0] = 0.0
    with pytest.raises(ValueError):
        market.efficiency[0, 0, 0] = 0.0


def test_relay_totals_equal_loop() -> None:
    market = small_market().sample(np.random.default_rng(5), 3)
    routes = relays.market_routes(market)
    values = np.random.default_rng(6).random(routes.relay_paths.shape)

    totals = routes.totals(values)

    expected = np.zeros((3, market.n_relays))
    batch, paths, positions = routes.relay_paths.shape
    for b in range(batch):
        for p in range(paths):
            for k in range(positions):
                relay = routes.relay_paths[b, p, k]
                if relay >= 0:
                    expected[b, relay] += values[b, p, k]
    assert np.array_equal(totals, expected)


def test_relay_spread_equals_paths() -> None:
    market = small_market().sample(np.random.default_rng(7), 3)
    routes = relays.market_routes(market)
    choices = np.random.default_rng(8).random((3, market.n_relays)) < 0.5

    spread = routes.spread(choices)

    paths = routes.relay_paths
    expected = np.zeros(paths.shape, dtype=bool)
    for index in np.ndindex(paths.shape):
        relay = paths[index]
        expected[index] = relay >= 0 and choices[index[0], relay]
    assert np.array_equal(spread, expected)
    assert np.array_equal(relays.choices_on_paths(choices, paths), expected)


def test_queue_sized_by_episode() -> None:
    market = DataMarketMarket(num_instances=2, max_cycles=5)

    per_round = 6 * 8 + 8 + 4  # a payment per pair, a charge per seller, a payout per relay
    assert market.ledger.config.queue_capacity == per_round * 5


def test_queue_keeps_smaller_setting() -> None:
    market = DataMarketMarket(
        num_instances=2, max_cycles=5, ledger={"mode": "chain", "queue_capacity": 7}
    )

    assert market.ledger.config.queue_capacity == 7


def test_long_episode_keeps_default_queue() -> None:
    market = DataMarketMarket(num_instances=1, max_cycles=200)

    assert market.ledger.config.queue_capacity == LedgerConfig().queue_capacity


@pytest.mark.parametrize("ledger", ["instant", {"mode": "chain", "block_interval": 3}])
def test_sized_queue_never_wraps(ledger: object) -> None:
    """An episode's transactions fit the sized queue, so no slot is used twice.

    Every accepted transaction takes the next id and the next slot, and the ledger restarts
    both every episode, so ids below the capacity mean the queue never wrapped around.
    """
    market = DataMarketMarket(num_instances=3, max_cycles=6, ledger=ledger)
    market.seed([1, 2, 3])
    market.reset()

    for _ in range(6):
        market.step({"relay": np.full((3, market.n_relays), 3)})

    accepted = market.ledger.next_id
    assert accepted.min() > 0, "the episode submitted no transaction, so the check proves nothing"
    assert accepted.max() <= market.ledger.config.queue_capacity
