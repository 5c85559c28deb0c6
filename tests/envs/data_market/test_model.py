"""The data market's valuation against closed forms and finite differences."""

from __future__ import annotations

import math

import numpy as np

from ledgerzoo.envs.data_market import model
from ledgerzoo.envs.data_market.scenario import small_market


def random_allocation(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return rng.uniform(0.0, 3.0, shape)


def test_value_factor_perishes() -> None:
    quality = np.array([[0.8, 1.0]])
    age = np.array([[0.0, 5.0]])

    factors = model.value_factors(quality, age, np.array([0.1]))

    assert factors[0, 0] == 0.8
    assert math.isclose(factors[0, 1], math.exp(-0.5), rel_tol=1e-15), factors


def test_path_efficiency_per_hop() -> None:
    hops = np.array([[[0, 1, 2]]])

    efficiency = model.path_efficiency(np.array([0.9]), hops)

    assert np.allclose(efficiency, [[[1.0, 0.9, 0.81]]], rtol=1e-15), efficiency


def test_buyer_utility_closed_form() -> None:
    delivered = np.array([[[1.0, 2.0], [0.0, 0.0]]])
    willingness = np.array([[3.0, 2.0]])
    factors = np.array([[0.5, 0.25]])

    utility = model.buyer_utilities(delivered, willingness, factors)

    assert math.isclose(utility[0, 0], 3.0 * math.log(2.0), rel_tol=1e-15), utility
    assert utility[0, 1] == 0.0, "a buyer that receives nothing gains nothing"


def test_marginal_utility_matches_differences() -> None:
    rng = np.random.default_rng(0)
    market = small_market().sample(rng, 3)
    delivered = random_allocation(rng, (3, 6, 8))
    factors = market.value_factors

    marginal = model.buyer_marginal_utilities(delivered, market.willingness, factors)

    step = 1e-6
    for b, i, j in [(0, 0, 0), (1, 3, 5), (2, 5, 7)]:
        up, down = delivered.copy(), delivered.copy()
        up[b, i, j] += step
        down[b, i, j] -= step
        numeric = (
            model.buyer_utilities(up, market.willingness, factors)[b, i]
            - model.buyer_utilities(down, market.willingness, factors)[b, i]
        ) / (2.0 * step)
        assert math.isclose(marginal[b, i, j], numeric, rel_tol=1e-7), (
            f"pair ({b}, {i}, {j}): closed form {marginal[b, i, j]}, difference {numeric}"
        )


def test_seller_cost_closed_form() -> None:
    sent = np.array([[[1.0, 0.0], [2.0, 4.0]]])
    quadratic = np.array([[0.01, 0.02]])
    linear = np.array([[0.015, 0.5]])

    costs = model.seller_costs(sent, quadratic, linear)
    marginal = model.seller_marginal_costs(sent, quadratic, linear)

    assert np.allclose(costs, [[0.01 * 9 + 0.015 * 3, 0.02 * 16 + 0.5 * 4]], rtol=1e-15)
    assert np.allclose(marginal, [[2 * 0.01 * 3 + 0.015, 2 * 0.02 * 4 + 0.5]], rtol=1e-15)


def test_welfare_is_gains_minus_costs() -> None:
    rng = np.random.default_rng(1)
    market = small_market().sample(rng, 4)
    sent = random_allocation(rng, (4, 6, 8))

    welfare = model.social_welfare(
        sent,
        market.efficiency,
        market.willingness,
        market.value_factors,
        market.quadratic_cost,
        market.linear_cost,
    )

    for b in range(4):
        gains = sum(
            market.willingness[b, i]
            * math.log1p(
                sum(
                    market.value_factors[b, j] * market.efficiency[b, i, j] * sent[b, i, j]
                    for j in range(8)
                )
            )
            for i in range(6)
        )
        supply = sent[b].sum(axis=0)
        costs = float((market.quadratic_cost[b] * supply**2 + market.linear_cost[b] * supply).sum())
        assert math.isclose(welfare[b], gains - costs, rel_tol=1e-12), (
            f"instance {b}: {welfare[b]} != {gains - costs}"
        )


def test_batched_equals_per_instance() -> None:
    rng = np.random.default_rng(2)
    market = small_market().sample(rng, 5)
    sent = random_allocation(rng, (5, 6, 8))
    arguments = ("efficiency", "willingness", "value_factors", "quadratic_cost", "linear_cost")

    batched = model.social_welfare(sent, *(getattr(market, name) for name in arguments))

    for b in range(5):
        one = market.instance(b)
        single = model.social_welfare(sent[b : b + 1], *(getattr(one, name) for name in arguments))
        assert batched[b] == single[0], f"instance {b}: {batched[b]} != {single[0]}"
