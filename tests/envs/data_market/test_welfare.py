"""The scipy welfare optimum: feasible, unbeaten by feasible allocations, method-independent."""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo.envs.data_market import model
from ledgerzoo.envs.data_market.scenario import DataMarket, small_market
from ledgerzoo.envs.data_market.welfare import solve_welfare


@pytest.fixture(scope="module")
def market() -> DataMarket:
    return small_market().sample(np.random.default_rng(21), batch_size=3)


def welfare_of(market: DataMarket, sent: np.ndarray) -> np.ndarray:
    return model.social_welfare(
        sent,
        market.efficiency,
        market.willingness,
        market.value_factors,
        market.quadratic_cost,
        market.linear_cost,
    )


def feasible_allocations(
    market: DataMarket, rng: np.random.Generator, count: int
) -> list[np.ndarray]:
    """Draw random allocations and scale them into the bounds (floors met, caps respected)."""
    allocations = []
    for _ in range(count):
        sent = rng.uniform(0.1, 1.0, market.efficiency.shape)
        # Meet the floors, then respect the supply caps and the demand caps.
        received = (market.efficiency * sent).sum(axis=2)
        sent *= (market.min_demand / received)[..., None] * rng.uniform(1.0, 1.5)
        supplied = sent.sum(axis=1)
        sent *= np.minimum(1.0, market.max_supply / supplied)[:, None, :]
        received = (market.efficiency * sent).sum(axis=2)
        sent *= np.minimum(1.0, market.max_demand / received)[..., None]
        received = (market.efficiency * sent).sum(axis=2)
        if np.all(received >= market.min_demand):
            allocations.append(sent)
    return allocations


def test_optimum_meets_bounds(market: DataMarket) -> None:
    optimum = solve_welfare(market)

    assert optimum.success.all(), optimum.messages
    received = optimum.delivered.sum(axis=2)
    supplied = optimum.sent.sum(axis=1)
    assert np.all(received >= market.min_demand * (1.0 - 1e-8)), received - market.min_demand
    assert np.all(received <= market.max_demand * (1.0 + 1e-8)), received - market.max_demand
    assert np.all(supplied <= market.max_supply * (1.0 + 1e-8)), supplied - market.max_supply
    assert np.allclose(optimum.welfare, welfare_of(market, optimum.sent))


def test_feasible_allocations_do_not_beat_optimum(market: DataMarket) -> None:
    optimum = solve_welfare(market)
    allocations = feasible_allocations(market, np.random.default_rng(22), 50)

    assert len(allocations) >= 25, "too few feasible random allocations to compare"
    for sent in allocations:
        welfare = welfare_of(market, sent)
        assert np.all(welfare <= optimum.welfare + 1e-9 * np.abs(optimum.welfare)), (
            f"a feasible allocation earns {welfare}, the optimum {optimum.welfare}"
        )


def test_methods_agree(market: DataMarket) -> None:
    interior = solve_welfare(market, "trust-constr")
    sequential = solve_welfare(market, "SLSQP")

    assert sequential.success.all(), sequential.messages
    assert np.allclose(interior.welfare, sequential.welfare, rtol=1e-6, atol=0.0), (
        f"trust-constr {interior.welfare}, SLSQP {sequential.welfare}"
    )


def test_unknown_method_lists_methods(market: DataMarket) -> None:
    with pytest.raises(ValueError, match="trust-constr"):
        solve_welfare(market, "newton")  # type: ignore[arg-type]
