"""The fast batched paths of the lending markets return the same bits as the plain numpy ones.

Each fast path is compared with the plain computation it replaces: the row reductions of
:mod:`ledgerzoo.envs.core.rows`, the lenders' Jacobi iteration that drops converged instances,
the others' extreme rates of the one-to-one observation and the ledger's masked sums. The
comparison uses np.array_equal and the sign bit of zeros, on arrays large enough to take the
fast path.
"""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo import registry
from ledgerzoo.envs.core import rows
from ledgerzoo.envs.lending import equilibrium, investing, model
from ledgerzoo.envs.lending.one_to_many import OneToManyMarket
from ledgerzoo.envs.lending.one_to_one import _others_extremes
from ledgerzoo.ledger import Ledger

# Rows enough for the column-wise paths of ledgerzoo.envs.core.rows (they need 64).
ROWS = 300


def mixed_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values of both signs over 24 orders of magnitude, with some -0.0 and 0.0 entries."""
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-12, 12, shape)
    values[rng.random(shape) < 0.05] = -0.0
    values[rng.random(shape) < 0.05] = 0.0
    return values


def assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype, f"dtype {got.dtype}, expected {expected.dtype}"
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    assert np.array_equal(got, expected, equal_nan=True), f"{got} != {expected}"
    assert np.array_equal(np.signbit(got), np.signbit(expected)), "signs of zeros differ"


@pytest.mark.parametrize("count", [*range(1, 40), 63, 64, 65, 100, 127, 128, 129, 300])
def test_row_sum_matches_numpy_sum(count: int) -> None:
    rng = np.random.default_rng(count)
    values = mixed_values(rng, (ROWS, count))
    values[3] = -0.0
    assert_same_bits(rows.row_sum(values), values.sum(axis=-1))


def test_row_sum_other_layouts_match_numpy() -> None:
    rng = np.random.default_rng(1)
    wide = mixed_values(rng, (ROWS, 14))
    for view in (wide[:, :10], wide[:, 3:], wide[::2, :10], wide.T.copy().T, wide[:5]):
        assert_same_bits(rows.row_sum(view), view.sum(axis=-1))
    integers = rng.integers(-5, 5, (ROWS, 10))
    assert_same_bits(rows.row_sum(integers), integers.sum(axis=-1))


@pytest.mark.parametrize("count", [1, 2, 3, 10, 33])
def test_row_extremes_and_logic_match_numpy(count: int) -> None:
    rng = np.random.default_rng(count)
    values = rng.standard_normal((ROWS, count))
    values[7, 0] = np.nan
    mask = rng.random((ROWS, count)) < 0.3
    assert_same_bits(rows.row_max(values), values.max(axis=-1))
    assert_same_bits(rows.row_min(values), values.min(axis=-1))
    assert_same_bits(rows.row_any(mask), mask.any(axis=-1))
    assert_same_bits(rows.row_all(mask), mask.all(axis=-1))
    assert_same_bits(rows.row_count(mask), np.count_nonzero(mask, axis=-1).astype(np.int64))


@pytest.mark.parametrize("count", [2, 3, 10])
def test_others_extremes_match_sorting(count: int) -> None:
    rng = np.random.default_rng(count)
    # Few distinct values, so that rows with tied extremes are common.
    values = rng.integers(1, 5, (ROWS, count)) * 0.1
    order = np.sort(values, axis=1)
    smallest, second_smallest = order[:, :1], order[:, 1:2]
    largest, second_largest = order[:, -1:], order[:, -2:-1]
    low, high = _others_extremes(values)
    assert_same_bits(low, np.where(values == smallest, second_smallest, smallest))
    assert_same_bits(high, np.where(values == largest, second_largest, largest))


def masked_jacobi(
    rates: np.ndarray, game: investing.OneToManyGame, budget: np.ndarray | None, iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lenders' Jacobi iteration over every instance in every iteration, converged ones
    held by a mask: the scheme that investor_equilibrium must reproduce bit for bit."""
    investments = investing.START_INVESTMENT * game.max_investment
    if budget is not None:
        investments = np.minimum(investments, budget)
    counts = np.zeros(game.batch_size, dtype=np.int64)
    converged = np.zeros(game.batch_size, dtype=bool)
    for iteration in range(1, iterations + 1):
        others = investments.sum(axis=1, keepdims=True) - investments
        response = investing.investor_best_response(others, rates, game, budget)
        change = np.max(np.abs(response - investments) / game.max_investment, axis=1)
        step = 1.0 if iteration <= investing.JACOBI_ITERATIONS else 0.5
        active = ~converged
        moved = investments + step * (response - investments)
        investments = np.where(active[:, None], moved, investments)
        counts[active] = iteration
        converged |= change <= investing.FOLLOWER_TOLERANCE
        if converged.all():
            break
    return investments, counts, converged


@pytest.mark.parametrize("with_budget", [False, True])
def test_investor_equilibrium_matches_masked_jacobi(with_budget: bool) -> None:
    market = OneToManyMarket(n_lenders=10, num_instances=ROWS)
    market.seed(list(range(ROWS)))
    market.reset()
    rng = np.random.default_rng(4)
    rates = market.rates_from_actions(rng.random((ROWS, 1, 1)))
    budget = rng.uniform(0.5, 20.0, rates.shape) if with_budget else None
    expected = masked_jacobi(rates, market.game, budget, investing.FOLLOWER_MAX_ITERATIONS)
    result = investing.investor_equilibrium(rates, market.game, budget=budget)
    assert_same_bits(result.investments, expected[0])
    assert_same_bits(result.iterations, expected[1])
    assert_same_bits(result.converged, expected[2])
    assert result.iterations.min() < result.iterations.max(), "instances converged together"


def test_investor_equilibrium_iteration_cap_matches() -> None:
    market = OneToManyMarket(n_lenders=5, num_instances=ROWS)
    market.seed(list(range(ROWS)))
    market.reset()
    rates = market.rates_from_actions(np.full((ROWS, 1, 1), 0.5))
    expected = masked_jacobi(rates, market.game, None, 3)
    result = investing.investor_equilibrium(rates, market.game, max_iterations=3)
    assert_same_bits(result.investments, expected[0])
    assert_same_bits(result.iterations, expected[1])
    assert_same_bits(result.converged, expected[2])


def test_ledger_sum_where_matches_sum_by_account() -> None:
    rng = np.random.default_rng(5)
    ledger = Ledger([f"agent_{i}" for i in range(6)], ROWS)
    accounts = rng.integers(0, ledger.num_accounts, (ROWS, 9))
    amounts = mixed_values(rng, (ROWS, 9))
    mask = rng.random((ROWS, 9)) < 0.6
    expected = ledger.sum_by_account(accounts, np.where(mask, amounts, 0.0))
    assert_same_bits(ledger.sum_where(accounts, amounts, mask), expected)
    nothing = np.zeros((ROWS, 9), dtype=bool)
    assert_same_bits(ledger.sum_where(accounts, amounts, nothing), np.zeros(expected.shape))


@pytest.mark.parametrize("n_lenders", [1, 2, 10])
def test_one_to_one_outcome_matches_plain_formulas(n_lenders: int) -> None:
    market = registry.market_class("lending_one_to_one_v0")(num_instances=ROWS, n_lenders=n_lenders)
    market.seed(list(range(ROWS)))
    market.reset()
    game = market.game
    rng = np.random.default_rng(11)
    rates = game.min_rate + rng.random(game.min_rate.shape) * (market.max_rate - game.min_rate)
    loans = rng.random(rates.shape) * 5.0
    loans[rng.random(rates.shape) < 0.2] = 0.0
    loans[: ROWS // 10] = 0.0  # instances where no lender lends: every BU is 0

    result = equilibrium.outcome(rates, loans, game)

    borrower = model.borrower_utilities(loans, rates, game.willingness)
    lenders = model.lender_utilities(loans, rates, game.willingness, game.min_rate)
    best = np.argmax(borrower, axis=1)
    borrower_utility = np.take_along_axis(borrower, best[:, None], axis=1)[:, 0]
    assert_same_bits(result["borrower_utilities"], borrower)
    assert_same_bits(result["lender_utilities"], lenders)
    assert_same_bits(result["optimal_lender"], best)
    assert_same_bits(result["borrower_utility"], borrower_utility)
    assert_same_bits(result["welfare"], lenders.sum(axis=1) + borrower_utility)


def test_lending_infos_view_matches_view() -> None:
    market = registry.market_class("lending_one_to_one_v0")(
        num_instances=ROWS, n_lenders=3, ledger={"mode": "chain", "confirmations": 1}
    )
    market.seed(list(range(ROWS)))
    market.reset()
    rng = np.random.default_rng(3)
    for _ in range(4):
        market.step({"lender": rng.random((ROWS, 3, 1)).astype(np.float32)})
        view = market.book.view()
        infos_view = market.book.infos_view()

        assert set(infos_view) < set(view)
        for key, value in infos_view.items():
            assert_same_bits(value, view[key])
