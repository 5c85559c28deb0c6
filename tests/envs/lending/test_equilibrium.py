"""The lending solvers against an independent numeric optimizer and the model's reported facts.

Every closed form of :mod:`ledgerzoo.envs.lending.equilibrium` is checked against scipy's
bounded scalar maximization of the general utilities of :mod:`ledgerzoo.envs.lending.model`
(the borrower's response substituted by :func:`model.borrower_best_response`, never the
reduced formula LU_i = N d_i y_i (1 - y_i r_min,i) / (y_i + beta_i) that the solver uses).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from ledgerzoo.envs.lending import equilibrium, model
from ledgerzoo.envs.lending.equilibrium import OneToOneGame

# A numeric maximizer locates the price to about sqrt(machine epsilon) relative.
PRICE_TOLERANCE = 1e-6
# Relative utility a lender may gain by a numeric deviation from a returned equilibrium.
GAIN_TOLERANCE = 1e-9
# Points of each of two grids, uniform and geometric, that bracket the numeric maximum before
# scipy refines it. Binding loan bounds make LU_i piecewise, so a local search alone could stop
# on the wrong piece, and [1 / r_max, 1 / r_min,i] can span orders of magnitude.
BRACKET_POINTS = 401


def random_games(
    rng: np.random.Generator,
    batch: int,
    n_lenders: int,
    max_rate: tuple[float, float] = (0.3, 1.0),
) -> OneToOneGame:
    """Draw heterogeneous games: d in [0.5, 5], r_min in [0.01, 0.1], r_max in ``max_rate``."""
    return OneToOneGame.from_values(
        willingness=rng.uniform(0.5, 5.0, (batch, n_lenders)),
        min_rate=rng.uniform(0.01, 0.1, (batch, n_lenders)),
        max_rate=rng.uniform(*max_rate, batch),
    )


def instance_utility(game: OneToOneGame, prices: np.ndarray, b: int, i: int, price: float) -> float:
    """LU_i of instance b when lender i offers ``price`` and the others keep ``prices``.

    Computed from the general model: the borrower responds to every price with its clipped best
    response, then LU = rho * phi over all lenders.
    """
    offered = prices[b : b + 1].copy()
    offered[0, i] = price
    willingness = game.willingness[b : b + 1]
    loans = model.borrower_best_response(
        offered, willingness, game.min_loan[b], game.max_loan[b : b + 1]
    )
    utilities = model.lender_utilities(
        loans, model.prices_from_rates(offered), willingness, game.min_rate[b : b + 1]
    )
    return float(utilities[0, i])


def numeric_best_price(
    game: OneToOneGame, prices: np.ndarray, b: int, i: int
) -> tuple[float, float]:
    """Maximize LU_i over lender i's price interval with a grid bracket and scipy's bounded Brent.

    Returns:
        The maximizing price and its utility.
    """
    low, high = 1.0 / game.max_rate[b], 1.0 / game.min_rate[b, i]

    def utility(price: float) -> float:
        return instance_utility(game, prices, b, i, price)

    grid = np.union1d(
        np.linspace(low, high, BRACKET_POINTS), np.geomspace(low, high, BRACKET_POINTS)
    )
    values = [utility(price) for price in grid]
    best = int(np.argmax(values))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    result = minimize_scalar(
        lambda price: -utility(price),
        bounds=(left, right),
        method="bounded",
        options={"xatol": 1e-12 * high},
    )
    candidates = [(float(result.x), -float(result.fun)), (low, utility(low)), (high, utility(high))]
    candidates.append((float(grid[best]), values[best]))
    return max(candidates, key=lambda candidate: candidate[1])


def others_borrower_utility(game: OneToOneGame, prices: np.ndarray) -> np.ndarray:
    """sum over j != i of BU_j when the borrower best-responds to ``prices``, (B, N)."""
    loans = model.borrower_best_response(
        prices, game.willingness, game.min_loan[:, None], game.max_loan
    )
    utilities = model.borrower_utilities(loans, 1.0 / prices, game.willingness)
    return utilities.sum(axis=1, keepdims=True) - utilities


def assert_no_profitable_deviation(game: OneToOneGame, solution: equilibrium.OneToOneEquilibrium):
    for b in range(game.batch_size):
        for i in range(game.n_lenders):
            price, value = numeric_best_price(game, solution.prices, b, i)
            current = solution.lender_utilities[b, i]
            assert value <= current + GAIN_TOLERANCE * abs(current), (
                f"instance {b} lender {i}: deviating to price {price} earns {value}, "
                f"equilibrium price {solution.prices[b, i]} earns {current}"
            )


# --------------------------------------------------------------------------------------------
# Closed forms against numeric maximization.


@pytest.mark.parametrize("n_lenders", [2, 3, 6])
def test_best_response_matches_scipy(n_lenders):
    rng = np.random.default_rng(n_lenders)
    game = random_games(rng, 40, n_lenders, max_rate=(0.15, 1.0))
    # Arbitrary (non-equilibrium) offers of the others, anywhere in their intervals.
    fractions = rng.random((40, n_lenders))
    low, high = 1.0 / game.max_rate[:, None], 1.0 / game.min_rate
    prices = low + fractions * (high - low)

    best_prices, best_utilities = equilibrium.best_response(
        others_borrower_utility(game, prices), game
    )
    for b in range(40):
        for i in range(n_lenders):
            price, value = numeric_best_price(game, prices, b, i)
            assert math.isclose(best_prices[b, i], price, rel_tol=PRICE_TOLERANCE), (
                f"instance {b} lender {i}: closed form {best_prices[b, i]}, scipy {price}"
            )
            assert best_utilities[b, i] >= value - 1e-12 * abs(value), (
                f"instance {b} lender {i}: closed form earns {best_utilities[b, i]}, scipy {value}"
            )
            own = instance_utility(game, prices, b, i, best_prices[b, i])
            assert math.isclose(best_utilities[b, i], own, rel_tol=1e-12), (
                f"instance {b} lender {i}: reported utility {best_utilities[b, i]}, model {own}"
            )


def test_closed_form_root_matches_scipy():
    rng = np.random.default_rng(5)
    beta = rng.uniform(0.0, 50.0, 300)
    min_rate = rng.uniform(0.01, 0.2, 300)
    max_rate = rng.uniform(0.25, 2.0, 300)
    prices = equilibrium.closed_form_best_response(beta, min_rate, max_rate)
    for k in range(300):
        # The reduced utility y (1 - y r_min) / (y + beta), up to the positive factor N d_i.
        def reduced(price: float, k: int = k) -> float:
            return -price * (1.0 - price * min_rate[k]) / (price + beta[k])

        result = minimize_scalar(
            reduced,
            bounds=(1.0 / max_rate[k], 1.0 / min_rate[k]),
            method="bounded",
            options={"xatol": 1e-13 / min_rate[k]},
        )
        assert math.isclose(prices[k], result.x, rel_tol=PRICE_TOLERANCE, abs_tol=1e-9), (
            f"beta {beta[k]} r_min {min_rate[k]} r_max {max_rate[k]}: "
            f"closed form {prices[k]}, scipy {result.x}"
        )


@settings(max_examples=200, deadline=None)
@given(
    beta=st.floats(min_value=1e-6, max_value=1e6),
    min_rate=st.floats(min_value=1e-4, max_value=10.0),
)
def test_closed_form_solves_quadratic(beta, min_rate):
    # Interior root of r_min y^2 + 2 beta r_min y - beta = 0 (no clipping: r_max is huge).
    price = float(
        equilibrium.closed_form_best_response(
            np.array([beta]), np.array([min_rate]), np.array([1e12])
        )[0]
    )
    residual = min_rate * price**2 + 2.0 * beta * min_rate * price - beta
    scale = min_rate * price**2 + 2.0 * beta * min_rate * price + beta
    assert abs(residual) <= 1e-12 * scale, f"beta {beta} r_min {min_rate}: residual {residual}"
    assert 0.0 < price < 1.0 / min_rate, f"beta {beta} r_min {min_rate}: price {price}"


def test_borrower_response_matches_scipy():
    rng = np.random.default_rng(7)
    prices = rng.uniform(1.0, 60.0, 100)
    willingness = rng.uniform(0.2, 6.0, 100)
    loans = model.borrower_best_response(prices, willingness)
    for k in range(100):
        rate = np.array([1.0 / prices[k]])
        d = np.array([willingness[k]])

        def negative_utility(loan: float, rate: np.ndarray = rate, d: np.ndarray = d) -> float:
            return -float(model.borrower_utilities(np.array([loan]), rate, d)[0])

        upper = 10.0 * willingness[k] * prices[k]
        result = minimize_scalar(
            negative_utility, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}
        )
        assert math.isclose(loans[k], result.x, rel_tol=PRICE_TOLERANCE), (
            f"d {willingness[k]} y {prices[k]}: x = d y gives {loans[k]}, scipy {result.x}"
        )
        best = model.borrower_utilities(loans[k : k + 1], rate, d)[0]
        # BU_i* = d_i y_i / e.
        assert math.isclose(best, willingness[k] * prices[k] / math.e, rel_tol=1e-12), (
            f"d {willingness[k]} y {prices[k]}: BU* {best}"
        )


def test_clipped_borrower_response_matches_scipy():
    rng = np.random.default_rng(8)
    for k in range(60):
        price, d = rng.uniform(1.0, 60.0), rng.uniform(0.2, 6.0)
        unconstrained = d * price
        min_loan = unconstrained * rng.uniform(0.0, 1.5)
        max_loan = max(min_loan, unconstrained * rng.uniform(0.5, 2.0)) + 1e-3
        loan = model.borrower_best_response(np.array([price]), np.array([d]), min_loan, max_loan)

        def negative_utility(x: float, price: float = price, d: float = d) -> float:
            return -float(model.borrower_utilities(np.array([x]), np.array([1 / price]), d)[0])

        result = minimize_scalar(
            negative_utility,
            bounds=(min_loan, max_loan),
            method="bounded",
            options={"xatol": 1e-12 * max_loan},
        )
        candidates = [result.x, min_loan, max_loan]
        numeric = min(candidates, key=negative_utility)
        assert math.isclose(loan[0], numeric, rel_tol=PRICE_TOLERANCE), (
            f"case {k}: bounds [{min_loan}, {max_loan}], d y = {unconstrained}: "
            f"clipped response {loan[0]}, scipy {numeric}"
        )


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(9)
    game = random_games(rng, 30, 4)
    low, high = 1.0 / game.max_rate[:, None], 1.0 / game.min_rate
    prices = low + rng.random((30, 4)) * (high - low)
    weighted = game.willingness * prices
    beta = (weighted.sum(axis=1, keepdims=True) - weighted) / game.willingness
    gradient, curvature = model.lender_utility_gradient(
        prices, beta, game.willingness, game.min_rate, game.n_lenders
    )
    for b in range(30):
        for i in range(4):
            y = prices[b, i]

            def lu(price: float, b: int = b, i: int = i) -> float:
                return instance_utility(game, prices, b, i, price)

            step = 1e-4 * y
            first = (lu(y + step) - lu(y - step)) / (2 * step)
            second = (lu(y + step) - 2 * lu(y) + lu(y - step)) / step**2
            # Central differences with this step are accurate to about 1e-8 of the slope.
            scale = max(abs(first), abs(lu(y)) / y)
            assert abs(gradient[b, i] - first) <= 1e-6 * scale, (
                f"instance {b} lender {i}: gradient {gradient[b, i]}, finite difference {first}"
            )
            assert math.isclose(curvature[b, i], second, rel_tol=1e-4), (
                f"instance {b} lender {i}: curvature {curvature[b, i]}, finite difference {second}"
            )
            assert curvature[b, i] < 0.0, f"instance {b} lender {i}: LU_i not concave"


# --------------------------------------------------------------------------------------------
# The equilibrium.


def test_methods_agree_on_rates():
    rng = np.random.default_rng(10)
    for n_lenders in (2, 3, 5, 12):
        game = random_games(rng, 200, n_lenders, max_rate=(0.12, 1.0))
        by_best_response = equilibrium.solve(game, "best_response")
        by_gradient = equilibrium.solve(game, "gradient")
        assert by_best_response.converged.all(), f"N={n_lenders}: best response did not converge"
        assert by_gradient.converged.all(), f"N={n_lenders}: gradient did not converge"
        error = np.abs(by_gradient.rates / by_best_response.rates - 1.0)
        worst = np.unravel_index(np.argmax(error), error.shape)
        assert error.max() <= 1e-6, (
            f"N={n_lenders} instance {worst[0]} lender {worst[1]}: best response "
            f"{by_best_response.rates[worst]}, gradient {by_gradient.rates[worst]}"
        )


@pytest.mark.parametrize("method", equilibrium.METHODS)
def test_equilibrium_has_no_profitable_deviation(method):
    rng = np.random.default_rng(11)
    game = random_games(rng, 25, 4, max_rate=(0.15, 1.0))
    solution = equilibrium.solve(game, method)
    assert solution.converged.all()
    assert not solution.numeric_best_response
    assert_no_profitable_deviation(game, solution)


def test_equilibrium_fields_consistent():
    rng = np.random.default_rng(12)
    game = random_games(rng, 20, 5)
    solution = equilibrium.solve(game)
    assert np.allclose(solution.prices * solution.rates, 1.0, rtol=1e-15, atol=0)
    assert np.array_equal(solution.loans, equilibrium.best_response_loans(solution.rates, game))
    result = equilibrium.outcome(solution.rates, solution.loans, game)
    for key in ("lender_utilities", "borrower_utilities", "borrower_utility", "welfare"):
        assert np.array_equal(getattr(solution, key), result[key]), key
    assert np.array_equal(solution.optimal_lender, np.argmax(solution.borrower_utilities, axis=1))
    assert np.all(solution.rates >= game.min_rate), solution.rates
    assert np.all(solution.rates <= game.max_rate[:, None] * (1 + 1e-15)), solution.rates
    record = solution.to_dict(3)
    assert record["rates"] == solution.rates[3].tolist()
    assert record["optimal_lender"] == int(solution.optimal_lender[3])


@pytest.mark.parametrize("n_lenders", [2, 3, 4, 7, 20])
@pytest.mark.parametrize("method", equilibrium.METHODS)
def test_symmetric_rate_closed_form(n_lenders, method):
    # Identical lenders (d, r_min) share one price y, so beta = (N - 1) y. The best response
    # y = sqrt(beta^2 + beta / r_min) - beta gives (y + beta)^2 = beta^2 + beta / r_min, that is
    # y^2 + 2 (N - 1) y^2 = (N - 1) y / r_min, so y (2N - 1) = (N - 1) / r_min and the rate is
    # r* = 1 / y = r_min (2N - 1) / (N - 1) (interior while it stays below r_max).
    min_rate = np.array([0.02, 0.05, 0.1])
    game = OneToOneGame.from_values(
        willingness=np.full((3, n_lenders), 2.5),
        min_rate=np.repeat(min_rate[:, None], n_lenders, axis=1),
        max_rate=1.0,
    )
    solution = equilibrium.solve(game, method)
    expected = min_rate * (2 * n_lenders - 1) / (n_lenders - 1)
    for b in range(3):
        for i in range(n_lenders):
            assert math.isclose(solution.rates[b, i], expected[b], rel_tol=1e-9), (
                f"r_min {min_rate[b]} N={n_lenders} lender {i}: rate {solution.rates[b, i]}, "
                f"expected {expected[b]}"
            )
    assert not solution.at_max_rate.any()


@pytest.mark.parametrize("method", equilibrium.METHODS)
def test_single_lender_rate_at_max(method):
    game = OneToOneGame.from_values(
        willingness=[[1.0], [4.0]], min_rate=[[0.05], [0.2]], max_rate=[0.5, 0.3]
    )
    solution = equilibrium.solve(game, method)
    assert np.allclose(solution.rates[:, 0], [0.5, 0.3], rtol=1e-12, atol=0.0), solution.rates
    assert solution.at_max_rate.all(), solution.at_max_rate
    assert solution.converged.all()


@pytest.mark.parametrize("method", equilibrium.METHODS)
def test_low_max_rate_binds(method):
    # The symmetric interior rate would be 0.1 * 5 / 2 = 0.25 for N = 3; a cap of 0.2 binds.
    game = OneToOneGame.from_values(
        willingness=[[1.0, 1.0, 1.0], [1.0, 3.0, 2.0]],
        min_rate=[[0.1, 0.1, 0.1], [0.1, 0.12, 0.08]],
        max_rate=[0.2, 0.13],
    )
    solution = equilibrium.solve(game, method)
    caps = np.broadcast_to(game.max_rate[:, None], solution.rates.shape)
    assert np.allclose(solution.rates, caps, rtol=1e-12, atol=0.0), solution.rates
    assert solution.at_max_rate.all(), solution.at_max_rate
    assert_no_profitable_deviation(game, solution)


def test_at_max_rate_flags_only_capped():
    rng = np.random.default_rng(13)
    game = random_games(rng, 300, 3, max_rate=(0.11, 0.4))
    solution = equilibrium.solve(game)
    capped = np.isclose(solution.rates, game.max_rate[:, None], rtol=1e-9, atol=0.0)
    assert np.array_equal(solution.at_max_rate, capped)
    assert capped.any(), "the draw should contain capped rates"
    assert not capped.all(), "the draw should contain interior rates"


@pytest.mark.parametrize(
    "bounds",
    [
        {"max_loan": "small"},
        {"min_loan": "large"},
        {"max_loan": "small", "min_loan": "moderate"},
    ],
    ids=["max_loan binds", "min_loan binds", "both bounds"],
)
def test_binding_loan_bounds_equilibrium(bounds):
    rng = np.random.default_rng(14)
    batch, n_lenders = 8, 3
    willingness = rng.uniform(0.5, 5.0, (batch, n_lenders))
    min_rate = rng.uniform(0.01, 0.1, (batch, n_lenders))
    max_rate = rng.uniform(0.3, 1.0, batch)
    slack = equilibrium.solve(OneToOneGame.from_values(willingness, min_rate, max_rate))
    min_loan = np.zeros(batch)
    max_loan = np.full((batch, n_lenders), np.inf)
    if bounds.get("max_loan") == "small":
        max_loan = slack.loans * rng.uniform(0.2, 0.8, (batch, n_lenders))
    if bounds.get("min_loan") == "large":
        min_loan = slack.loans.max(axis=1) * rng.uniform(1.2, 3.0, batch)
        max_loan = np.full((batch, n_lenders), np.inf)
    if bounds.get("min_loan") == "moderate":
        min_loan = np.minimum(slack.loans.min(axis=1), max_loan.min(axis=1)) * 0.5
    game = OneToOneGame.from_values(willingness, min_rate, max_rate, min_loan, max_loan)

    solution = equilibrium.solve(game)
    assert solution.numeric_best_response
    assert solution.converged.all(), solution.iterations
    binds = (solution.loans <= game.min_loan[:, None]) | (solution.loans >= game.max_loan)
    assert binds.any(), "the bounds should bind somewhere at the equilibrium"
    assert_no_profitable_deviation(game, solution)
    with pytest.raises(ValueError, match="gradient"):
        equilibrium.solve(game, "gradient")


@pytest.mark.parametrize("method", equilibrium.METHODS)
def test_batched_solve_equals_single(method):
    rng = np.random.default_rng(15)
    game = random_games(rng, 12, 4, max_rate=(0.12, 1.0))
    batched = equilibrium.solve(game, method)
    for b in range(game.batch_size):
        single = equilibrium.solve(game.instance(b), method)
        for key in ("rates", "prices", "loans", "lender_utilities", "welfare", "at_max_rate"):
            assert np.array_equal(getattr(batched, key)[b], getattr(single, key)[0]), (
                f"instance {b} {key}: batched {getattr(batched, key)[b]}, "
                f"single {getattr(single, key)[0]}"
            )
        assert batched.iterations[b] == single.iterations[0]


def test_batched_numeric_solve_equals_single():
    rng = np.random.default_rng(16)
    game = random_games(rng, 5, 3)
    game = OneToOneGame.from_values(
        game.willingness, game.min_rate, game.max_rate, max_loan=rng.uniform(1.0, 20.0, (5, 3))
    )
    batched = equilibrium.solve(game)
    for b in range(game.batch_size):
        single = equilibrium.solve(game.instance(b))
        assert np.array_equal(batched.rates[b], single.rates[0]), (
            f"instance {b}: batched {batched.rates[b]}, single {single.rates[0]}"
        )


def test_solve_rejects_unknown_method():
    game = OneToOneGame.from_values([1.0, 2.0], [0.05, 0.05], 0.5)
    with pytest.raises(ValueError, match="'newton'"):
        equilibrium.solve(game, "newton")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"willingness": [1.0, -2.0]}, "willingness"),
        ({"min_rate": [0.05, 0.0]}, "min_rate"),
        ({"min_rate": [0.05, 0.6]}, "max_rate"),
        ({"max_rate": np.nan}, "max_rate"),
        ({"min_loan": -1.0}, "min_loan"),
        ({"max_loan": 0.0, "min_loan": 1.0}, "max_loan"),
        ({"willingness": [1.0, 2.0, 3.0]}, "shape"),
    ],
)
def test_game_rejects_invalid_values(kwargs, pattern):
    values = {"willingness": [1.0, 2.0], "min_rate": [0.05, 0.05], "max_rate": 0.5, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        OneToOneGame.from_values(**values)


# --------------------------------------------------------------------------------------------
# The reported behaviour of the market.


def test_raising_min_rate_lowers_own_utility():
    rng = np.random.default_rng(17)
    for n_lenders in (2, 3, 5):
        game = random_games(rng, 200, n_lenders, max_rate=(0.15, 1.0))
        before = equilibrium.solve(game)
        for factor in (1.01, 1.3, 2.0):
            raised = game.min_rate.copy()
            raised[:, 0] = np.minimum(raised[:, 0] * factor, 0.99 * game.max_rate)
            after = equilibrium.solve(
                OneToOneGame.from_values(game.willingness, raised, game.max_rate)
            )
            changed = raised[:, 0] > game.min_rate[:, 0]
            old, new = before.lender_utilities[changed, 0], after.lender_utilities[changed, 0]
            worst = int(np.argmax(new - old))
            assert np.all(new < old), (
                f"N={n_lenders} r_min x{factor}: lender 0 earns {new[worst]} after, "
                f"{old[worst]} before"
            )


def test_new_lender_lowers_every_rate():
    rng = np.random.default_rng(18)
    for n_lenders in (1, 2, 4):
        game = random_games(rng, 300, n_lenders, max_rate=(0.12, 1.0))
        before = equilibrium.solve(game)
        after = equilibrium.solve(
            OneToOneGame.from_values(
                np.concatenate([game.willingness, rng.uniform(0.5, 5.0, (300, 1))], axis=1),
                np.concatenate([game.min_rate, rng.uniform(0.01, 0.1, (300, 1))], axis=1),
                game.max_rate,
            )
        )
        old, new = before.rates, after.rates[:, :n_lenders]
        rise = new / old - 1.0
        worst = np.unravel_index(np.argmax(rise), rise.shape)
        assert rise.max() <= 1e-12, (
            f"N={n_lenders} instance {worst[0]} lender {worst[1]}: rate {old[worst]} before, "
            f"{new[worst]} after"
        )
        # Strictly lower wherever the cap r_max does not bind after the entry.
        interior = ~after.at_max_rate[:, :n_lenders]
        assert interior.any()
        assert np.all(new[interior] < old[interior] * (1.0 - 1e-9)), (
            f"N={n_lenders}: an interior rate did not fall"
        )


def test_identical_lenders_rate_falls_with_n():
    rates = []
    for n_lenders in range(2, 16):
        game = OneToOneGame.from_values(
            np.full(n_lenders, 2.0), np.full(n_lenders, 0.04), max_rate=1.0
        )
        solution = equilibrium.solve(game)
        rates.append(solution.rates[0, solution.optimal_lender[0]])
    for n_lenders, (previous, current) in enumerate(itertools.pairwise(rates), start=3):
        assert current < previous, f"N={n_lenders}: rate {current}, with one lender less {previous}"


# Random draws with binding loan bounds on which simultaneous (Jacobi) best responses never
# settle: at every iteration some lender jumps between two pieces of its clipped utility.
JACOBI_CYCLING_GAMES = [
    {
        "willingness": [34.342618414712156, 0.03146749722608994],
        "min_rate": [0.01309883720396106, 0.04274206090329886],
        "max_rate": 30.272788310506915,
        "min_loan": 1.3145291989351986,
        "max_loan": [10.13339814418177, 1.467347586245608],
    },
    {
        "willingness": [194.55890709472646, 326.2239182742323, 13.091103118332319],
        "min_rate": [0.00013511559324397952, 0.20687344925985093, 0.009003195333769616],
        "max_rate": 9.705529379745311,
        "min_loan": 2091.425250335116,
        "max_loan": [16222.75649604571, 2892.6056812929896, 2892.6056812929896],
    },
]


@pytest.mark.parametrize("values", JACOBI_CYCLING_GAMES, ids=["2 lenders", "3 lenders"])
def test_jacobi_cycle_falls_back(values, monkeypatch):
    game = OneToOneGame.from_values(**values)
    solution = equilibrium.solve(game)
    assert solution.converged.all(), f"iterations {solution.iterations}"
    assert solution.iterations[0] > equilibrium.JACOBI_ITERATIONS, "Jacobi alone settled"
    assert solution.numeric_best_response
    assert_no_profitable_deviation(game, solution)

    # Without the Gauss-Seidel fallback the same game does not converge.
    monkeypatch.setattr(equilibrium, "JACOBI_ITERATIONS", 10**9)
    jacobi = equilibrium.solve(game, max_iterations=200)
    assert not jacobi.converged.any(), f"Jacobi converged in {jacobi.iterations} iterations"


def test_numeric_best_response_finds_narrow_peak():
    # Lender 0's price interval spans [0.129, 293], and its clipped utility peaks near 0.166,
    # inside the first cell of a uniform 257-point grid, where it is not unimodal.
    game = OneToOneGame.from_values(
        willingness=[1.2662460180489448, 0.03946318137031876],
        min_rate=[0.00341123540904025, 0.08839972629009113],
        max_rate=7.730892623859983,
        min_loan=0.6152330974837149,
        max_loan=[16.20440980653153, 0.6635731451169307],
    )
    prices = np.array([[1.0 / 7.730892623859983, 4.359834549648708]])
    best_prices, best_utilities = equilibrium.best_response(
        others_borrower_utility(game, prices), game
    )
    price, value = numeric_best_price(game, prices, 0, 0)
    assert math.isclose(best_prices[0, 0], price, rel_tol=PRICE_TOLERANCE), (
        f"numeric best response {best_prices[0, 0]}, scipy {price}"
    )
    assert best_utilities[0, 0] >= value * (1 - 1e-12), f"{best_utilities[0, 0]} vs {value}"


def test_chunked_numeric_best_response_matches(monkeypatch):
    rng = np.random.default_rng(21)
    batch, n_lenders = 4, 7
    willingness = rng.uniform(0.5, 5.0, (batch, n_lenders))
    min_rate = rng.uniform(0.01, 0.1, (batch, n_lenders))
    max_rate = rng.uniform(0.3, 1.0, batch)
    slack = equilibrium.solve(OneToOneGame.from_values(willingness, min_rate, max_rate))
    max_loan = slack.loans * rng.uniform(0.2, 0.8, (batch, n_lenders))
    game = OneToOneGame.from_values(willingness, min_rate, max_rate, max_loan=max_loan)
    assert not game.loan_bounds_slack
    others = rng.uniform(0.5, 3.0, (batch, n_lenders))
    whole_prices, whole_utilities = equilibrium.best_response(others, game)

    # Two lenders per chunk: three full chunks and one of a single lender.
    monkeypatch.setattr(equilibrium, "NUMERIC_CHUNK_ENTRIES", 2 * batch * equilibrium.GRID_POINTS)
    chunked_prices, chunked_utilities = equilibrium.best_response(others, game)

    np.testing.assert_array_equal(chunked_prices, whole_prices)
    np.testing.assert_array_equal(chunked_utilities, whole_utilities)
