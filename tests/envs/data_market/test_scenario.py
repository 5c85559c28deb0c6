"""The data market's scenario: presets, per-episode sampling and the validation of values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ledgerzoo.envs.data_market.scenario import (
    PRESETS,
    Choice,
    DataMarket,
    DataMarketScenario,
    Uniform,
    kang2017_market,
    preset,
    small_market,
    stack_markets,
)


def test_kang_preset_draws_from_its_sets() -> None:
    market = kang2017_market().sample(np.random.default_rng(0), batch_size=16)

    assert market.willingness.shape == (16, 35), market.willingness.shape
    assert market.quality.shape == (16, 45), market.quality.shape
    # v_i = tau / s_i with tau = 0.5 and s_i in {1, ..., 5}.
    charges = 0.5 / market.willingness
    assert np.allclose(charges, np.round(charges)), charges
    assert set(np.round(charges).astype(int).ravel()) <= {1, 2, 3, 4, 5}
    assert np.allclose(market.value_factors, 0.8), market.value_factors
    assert np.allclose(market.efficiency, 0.9), "Kang's transmission efficiency is 0.9, one hop"
    assert set(market.min_demand.ravel()) <= set(range(5, 11)), market.min_demand
    assert set(market.max_demand.ravel()) <= set(range(12, 19)), market.max_demand
    assert set(market.max_supply.ravel()) <= set(range(10, 21)), market.max_supply
    assert np.all(market.quadratic_cost == 0.01)
    assert np.all(market.linear_cost == 0.015)


def test_small_preset_is_heterogeneous() -> None:
    market = small_market().sample(np.random.default_rng(1), batch_size=64)

    assert (market.n_buyers, market.n_sellers) == (6, 8)
    assert market.willingness.min() >= 2.0, market.willingness.min()
    assert market.willingness.max() <= 6.0, market.willingness.max()
    factors = market.value_factors
    assert factors.min() >= 0.5 * np.exp(-0.5) - 1e-12, factors.min()
    assert factors.max() <= 1.0, factors.max()
    assert set(np.unique(market.hops)) == {0, 1, 2}, np.unique(market.hops)
    assert np.allclose(market.efficiency, 0.9**market.hops)


def test_same_seed_same_market() -> None:
    first = small_market().sample(np.random.default_rng(7), batch_size=4)
    second = small_market().sample(np.random.default_rng(7), batch_size=4)
    other = small_market().sample(np.random.default_rng(8), batch_size=4)

    for name in ("willingness", "quality", "age", "hops", "relay_paths", "max_supply"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert not np.array_equal(first.willingness, other.willingness)


def test_relay_paths_distinct_and_padded() -> None:
    market = small_market().sample(np.random.default_rng(2), batch_size=32)
    paths = market.relay_paths

    assert paths.shape == (32, 6, 8, 2), paths.shape
    for b, i, j in np.ndindex(market.hops.shape):
        hops = market.hops[b, i, j]
        relays = paths[b, i, j, :hops]
        assert np.all(paths[b, i, j, hops:] == -1), paths[b, i, j]
        assert np.all((relays >= 0) & (relays < market.n_relays)), relays
        assert len(set(relays.tolist())) == hops, f"repeated relay on path {relays}"


def test_drawn_floors_below_caps() -> None:
    market = preset("kang2017").sample(np.random.default_rng(3), batch_size=32)

    assert np.all(market.min_demand <= market.max_demand)
    reachable = (market.efficiency * market.max_supply[:, None, :]).sum(axis=2)
    assert np.all(market.min_demand.sum(axis=1, keepdims=True) <= reachable)


def test_instance_slices_batch() -> None:
    market = small_market().sample(np.random.default_rng(4), batch_size=5)
    one = market.instance(3)

    assert one.batch_size == 1
    assert np.array_equal(one.relay_paths[0], market.relay_paths[3])
    assert np.array_equal(one.willingness[0], market.willingness[3])
    assert one.relay_credit == market.relay_credit


def test_mapping_forms_parse() -> None:
    scenario = DataMarketScenario.from_dict(
        {
            "willingness": {"low": 1.0, "high": 2.0},
            "age": {"choices": [0, 3]},
            "hops": {"choices": [1]},
            "quality": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],
        }
    )

    assert scenario.willingness == Uniform(1.0, 2.0)
    assert scenario.age == Choice((0.0, 3.0))
    assert scenario.hops == Choice((1,))
    assert scenario.quality == (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
    market = scenario.sample(np.random.default_rng(0), 2)
    assert np.array_equal(market.quality[1], np.array(scenario.quality))


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ValueError, match="unknown data market scenario keys") as error:
        DataMarketScenario.from_dict({"willingnes": 1.0})
    assert "willingness" in str(error.value)


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(KeyError, match="kang2017"):
        preset("kang")
    assert set(PRESETS) == {"kang2017", "small"}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"n_buyers": 0}, "n_buyers"),
        ({"n_sellers": 2.5}, "n_sellers"),
        ({"willingness": 0.0}, "willingness"),
        ({"willingness": {"low": 3.0, "high": 1.0}}, "willingness"),
        ({"willingness": {"mean": 1.0}}, "willingness"),
        ({"willingness": [1.0, 2.0]}, "willingness"),
        ({"willingness": "high"}, "willingness"),
        ({"quality": 1.5}, "quality"),
        ({"quality": {"choices": []}}, "quality"),
        ({"age": -1.0}, "age"),
        ({"perishability": -0.1}, "perishability"),
        ({"perishability": float("nan")}, "perishability"),
        ({"hop_efficiency": 0.0}, "hop_efficiency"),
        ({"hop_efficiency": 1.1}, "hop_efficiency"),
        ({"hops": 5}, "hops"),
        ({"hops": -1}, "hops"),
        ({"hops": {"choices": [0.5]}}, "hops"),
        ({"hops": [[1, 1]]}, "hops"),
        ({"min_demand": -1.0}, "min_demand"),
        ({"max_demand": 0.0, "min_demand": 0.0}, "max_demand"),
        ({"max_demand": 2.0}, "max_demand"),
        ({"min_demand": 10.0, "max_demand": 12.0}, "min_demand"),
        ({"max_supply": 0.0}, "max_supply"),
        ({"quadratic_cost": -0.01}, "quadratic_cost"),
        ({"linear_cost": -1.0}, "linear_cost"),
        ({"relay_credit": 0.4}, "relay_credit"),
        ({"last_reporter_credit": -0.1}, "last_reporter_credit"),
        ({"forward_cost": -0.1}, "forward_cost"),
        ({"receipt_cost": float("inf")}, "receipt_cost"),
    ],
)
def test_invalid_value_names_it(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        DataMarketScenario(**changes)


def test_infeasible_floors_suggest_fix() -> None:
    with pytest.raises(ValueError, match="lower min_demand, raise max_supply or use fewer hops"):
        DataMarketScenario(min_demand=8.0, max_demand=12.0, max_supply=6.0)


def test_from_values_broadcasts() -> None:
    market = DataMarket.from_values(
        willingness=[[2.0, 3.0]],
        value_factors=[0.5, 1.0, 0.8],
        hops=[[0, 1, 2], [1, 1, 1]],
        min_demand=1.0,
        max_demand=5.0,
        max_supply=[4.0, 4.0, 4.0],
    )

    assert market.value_factors.shape == (1, 3)
    assert np.allclose(market.value_factors, [[0.5, 1.0, 0.8]])
    assert market.relay_paths.shape == (1, 2, 3, 2)
    assert market.relay_paths[0, 0, 2].tolist() == [0, 1]
    assert market.relay_paths[0, 0, 0].tolist() == [-1, -1]
    assert market.n_relays == 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"willingness": [[-1.0, 3.0]]}, "willingness"),
        ({"value_factors": [0.5, 1.5, 0.8]}, "quality"),
        ({"min_demand": 6.0}, "max_demand"),
        ({"max_supply": [4.0, 4.0]}, "max_supply"),
        ({"hops": 1.5}, "hops"),
        ({"min_demand": 4.5, "max_supply": [3.0, 3.0, 3.0]}, "min_demand"),
        ({"relay_credit": 0.1}, "relay_credit"),
    ],
)
def test_market_invalid_value_names_it(changes: dict[str, Any], named: str) -> None:
    values: dict[str, Any] = {
        "willingness": [[2.0, 3.0]],
        "value_factors": [0.5, 1.0, 0.8],
        "min_demand": 1.0,
        "max_demand": 5.0,
        "max_supply": [4.0, 4.0, 4.0],
    } | changes
    with pytest.raises(ValueError, match=named):
        DataMarket.from_values(**values)


def test_instances_match_own_generators() -> None:
    seeds = [5, 6, 7]
    scenario = small_market()

    batch = scenario.sample_instances([np.random.default_rng(seed) for seed in seeds])

    assert batch.batch_size == 3
    for index, seed in enumerate(seeds):
        alone = scenario.sample(np.random.default_rng(seed), 1)
        for name in ("willingness", "quality", "age", "hops", "relay_paths", "min_demand"):
            assert np.array_equal(getattr(batch, name)[index], getattr(alone, name)[0]), (
                f"instance {index}: {name} differs from a single draw with seed {seed}"
            )


def test_stack_rejects_other_shapes() -> None:
    small = small_market().sample(np.random.default_rng(0), 1)
    kang = kang2017_market().sample(np.random.default_rng(0), 1)

    with pytest.raises(ValueError, match="cannot stack"):
        stack_markets([small, kang])
