"""The truthful iterative double auction against the welfare optimum of scipy.

The auction's fixed point satisfies the optimality conditions of maximizing social welfare,
so its welfare must match the convex optimum of :mod:`ledgerzoo.envs.data_market.welfare`,
which shares no code with the auctioneer.
"""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo.envs.data_market import auction, model
from ledgerzoo.envs.data_market.scenario import DataMarket, kang2017_market, small_market
from ledgerzoo.envs.data_market.welfare import solve_welfare
from ledgerzoo.ledger.core import Ledger

# The truthful auction's welfare must be this close to the optimum, relative to |SW*|.
WELFARE_GAP = 1e-3
# Relative violation of a bound allowed in any iteration (the auctioneer's tolerance is 1e-10).
BOUND_TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def small() -> DataMarket:
    return small_market().sample(np.random.default_rng(11), batch_size=4)


@pytest.fixture(scope="module")
def small_result(small: DataMarket) -> auction.AuctionResult:
    return auction.run_truthful_auction(small, keep_allocations=True)


@pytest.fixture(scope="module")
def kang() -> DataMarket:
    return kang2017_market().sample(np.random.default_rng(12), batch_size=2)


@pytest.fixture(scope="module")
def kang_result(kang: DataMarket) -> auction.AuctionResult:
    return auction.run_truthful_auction(kang, keep_allocations=True)


def test_small_welfare_near_optimum(small: DataMarket, small_result: auction.AuctionResult) -> None:
    optimum = solve_welfare(small)

    assert optimum.success.all(), optimum.messages
    gap = (optimum.welfare - small_result.welfare) / np.abs(optimum.welfare)
    assert np.all(gap <= WELFARE_GAP), f"auction {small_result.welfare}, optimum {optimum.welfare}"
    # The optimum cannot be beaten by a feasible allocation, up to scipy's tolerance.
    assert np.all(gap >= -1e-7), f"auction {small_result.welfare} above optimum {optimum.welfare}"


@pytest.mark.slow
def test_kang_welfare_near_optimum(kang: DataMarket, kang_result: auction.AuctionResult) -> None:
    optimum = solve_welfare(kang)

    assert optimum.success.all(), optimum.messages
    gap = (optimum.welfare - kang_result.welfare) / np.abs(optimum.welfare)
    assert np.all(gap <= WELFARE_GAP), f"auction {kang_result.welfare}, optimum {optimum.welfare}"
    assert np.all(gap >= -1e-7), f"auction {kang_result.welfare} above optimum {optimum.welfare}"


@pytest.mark.parametrize("preset", ["small", "kang"])
def test_bounds_hold_every_iteration(preset: str, request: pytest.FixtureRequest) -> None:
    market: DataMarket = request.getfixturevalue(preset)
    result: auction.AuctionResult = request.getfixturevalue(f"{preset}_result")
    assert result.delivered_trace is not None and result.sent_trace is not None

    for iteration, (delivered, sent) in enumerate(
        zip(result.delivered_trace, result.sent_trace, strict=True)
    ):
        assert np.allclose(delivered, market.efficiency * sent, rtol=1e-15, atol=0.0), (
            f"iteration {iteration}: c != rho d"
        )
        assert np.all(sent >= 0.0), f"iteration {iteration}: negative amount sent"
        received = delivered.sum(axis=2)
        supplied = sent.sum(axis=1)
        assert np.all(received >= market.min_demand * (1.0 - BOUND_TOLERANCE)), (
            f"iteration {iteration}: floor violated by {np.max(market.min_demand - received)}"
        )
        assert np.all(received <= market.max_demand * (1.0 + BOUND_TOLERANCE)), (
            f"iteration {iteration}: cap violated by {np.max(received - market.max_demand)}"
        )
        assert np.all(supplied <= market.max_supply * (1.0 + BOUND_TOLERANCE)), (
            f"iteration {iteration}: supply violated by {np.max(supplied - market.max_supply)}"
        )
    assert result.auctioneer_converged.all()


def test_small_welfare_rises_and_levels_off(small_result: auction.AuctionResult) -> None:
    trace = small_result.welfare_trace
    rise = trace[-1] - trace[0]

    assert np.all(rise > 0.0), rise
    steps = np.diff(trace, axis=0)
    assert np.all(steps >= -1e-12 * np.abs(trace[1:])), (
        f"welfare fell by {-steps.min()} in some iteration"
    )
    # Levels off: the last tenth of the iterations adds under 0.1% of the total rise.
    tail = trace.shape[0] // 10
    late = trace[-1] - trace[-1 - tail]
    assert np.all(late <= 1e-3 * rise), f"late rise {late} of total {rise}"


def test_kang_welfare_rises_after_damping(kang_result: auction.AuctionResult) -> None:
    trace = kang_result.welfare_trace
    damping = kang_result.damping_trace

    for instance in range(trace.shape[1]):
        # The adaptive damping halves theta after each fall, so welfare rises after the last
        # change of theta.
        changes = np.flatnonzero(np.diff(damping[:, instance]) != 0.0)
        settled = int(changes[-1]) + 1 if changes.size else 0
        steps = np.diff(trace[settled:, instance])
        assert np.all(steps >= -1e-12 * np.abs(trace[-1, instance])), (
            f"instance {instance}: welfare fell by {-steps.min()} after iteration {settled}"
        )
        assert trace[-1, instance] >= trace[:, instance].max() - 1e-12 * abs(trace[-1, instance])


def test_plain_rule_oscillates_on_kang(kang: DataMarket) -> None:
    result = auction.run_truthful_auction(kang, damping=1.0, max_iterations=12)

    falls = (np.diff(result.welfare_trace, axis=0) < 0.0).sum(axis=0)
    assert np.all(falls >= 4), f"welfare fell only {falls} times in 12 plain iterations"
    assert np.all(result.stop_reason == "max_iterations"), result.stop_reason


def test_fixed_damping_reaches_same_fixed_point(
    kang: DataMarket, kang_result: auction.AuctionResult
) -> None:
    damped = auction.run_truthful_auction(kang, damping=0.2)

    assert np.all(damped.stop_reason != "max_iterations"), damped.stop_reason
    assert np.allclose(damped.welfare, kang_result.welfare, rtol=1e-4, atol=0.0), (
        f"theta 0.2 {damped.welfare}, adaptive {kang_result.welfare}"
    )


def test_stopping_rules_fire(
    small_result: auction.AuctionResult, kang_result: auction.AuctionResult
) -> None:
    # Kang's homogeneous goods settle every bid. The small market's pairs that trade nothing
    # keep decaying, so only the total-change rule ends it.
    assert np.all(kang_result.stop_reason == "bid_change"), kang_result.stop_reason
    assert np.all(small_result.stop_reason == "total_change"), small_result.stop_reason
    final = small_result.iterations - 1
    assert np.all(
        small_result.bid_change_trace[final, np.arange(4)] >= auction.BID_CHANGE_TOLERANCE
    )


def test_payments_budget_balanced(small: DataMarket, small_result: auction.AuctionResult) -> None:
    payments = small_result.payments
    batch, buyers, sellers = payments.shape

    assert np.allclose(
        small_result.buyer_payments.sum(axis=1), small_result.seller_revenues.sum(axis=1)
    )
    assert np.array_equal(payments, np.where(small_result.delivered > 0.0, small_result.bids, 0))

    names = [f"buyer_{i}" for i in range(buyers)] + [f"seller_{j}" for j in range(sellers)]
    budget = payments.sum(axis=2).max() + 1.0
    start = np.concatenate([np.full(buyers, budget), np.zeros(sellers)])
    ledger = Ledger(names, batch, "instant", initial_balances=start)
    payer = np.repeat(np.arange(buyers), sellers)
    payee = buyers + np.tile(np.arange(sellers), buyers)
    submission = ledger.submit(payer, payee, payments.reshape(batch, -1))
    ledger.end_round()

    assert submission.accepted.all()
    assert np.all(ledger.conservation_error() < 1e-9), ledger.conservation_error()
    assert np.allclose(ledger.balances[:, :buyers], budget - small_result.buyer_payments)
    assert np.allclose(ledger.balances[:, buyers : buyers + sellers], small_result.seller_revenues)
    # The other accounts, the auctioneer's included, neither gain nor lose anything.
    assert np.all(ledger.balances[:, buyers + sellers :] == 0.0)


def test_truthful_updates_are_marginal_values() -> None:
    market = small_market().sample(np.random.default_rng(13), 2)
    rng = np.random.default_rng(14)
    sent = rng.uniform(0.0, 2.0, (2, 6, 8))
    delivered = market.efficiency * sent

    bids = auction.truthful_bids(delivered, market.willingness, market.value_factors)
    asks = auction.truthful_asks(sent, market.quadratic_cost, market.linear_cost)

    valued = (market.value_factors[:, None, :] * delivered).sum(axis=2)
    expected_bids = (
        delivered * market.willingness[..., None] * market.value_factors[:, None, :]
    ) / (1.0 + valued[..., None])
    assert np.allclose(bids, expected_bids, rtol=1e-14)
    marginal = model.seller_marginal_costs(sent, market.quadratic_cost, market.linear_cost)
    assert np.array_equal(asks, np.broadcast_to(marginal[:, None, :], asks.shape))


def test_batched_auction_equals_single(
    small: DataMarket, small_result: auction.AuctionResult
) -> None:
    single = auction.run_truthful_auction(small.instance(2))

    assert single.iterations[0] == small_result.iterations[2]
    assert np.allclose(single.delivered[0], small_result.delivered[2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("damping", 0.0, "invalid damping"),
        ("damping", 1.5, "invalid damping"),
        ("damping", "auto", "invalid damping"),
        ("initial_bid", 0.0, "invalid initial_bid"),
        ("initial_ask", -1.0, "invalid initial_ask"),
        ("max_iterations", 0, "invalid max_iterations"),
    ],
)
def test_invalid_argument_names_it(keyword: str, value: object, message: str) -> None:
    market = small_market().sample(np.random.default_rng(15), 1)

    with pytest.raises(ValueError, match=message):
        auction.run_truthful_auction(market, **{keyword: value})  # type: ignore[arg-type]
