"""The one-to-many lending solvers against independent numeric optimizers, and the market's facts.

Every closed form and search of :mod:`ledgerzoo.envs.lending.investing` is checked against
scipy: bounded Brent for one variable, and differential evolution for the borrower's rates under
differentiated pricing. Both maximize the general utilities of :mod:`ledgerzoo.envs.lending.model`
(``investor_utility_against`` and ``raise_borrower_utility``), never the solver's own formulas.
The facts at the end are those the market's model reports for the env's default scenario, drawn
with :class:`OneToManyMarket`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.optimize import differential_evolution, minimize_scalar

from ledgerzoo.envs.lending import investing, model
from ledgerzoo.envs.lending.investing import OneToManyGame
from ledgerzoo.envs.lending.one_to_many import DEFAULT_N_LENDERS, OneToManyMarket

# A bounded Brent search locates a smooth maximum to about sqrt(machine epsilon) relative, so
# investments agree to this fraction of x_max.
INVESTMENT_TOLERANCE = 1e-6
# Relative utility a lender may gain by a numeric deviation from a returned equilibrium.
GAIN_TOLERANCE = 1e-9
# Relative BU by which the solver and the dense scan plus Brent may differ (uniform pricing).
# scipy's bounded Brent stops at about sqrt(machine epsilon) |r| in the rate, and at a kink BU
# changes by sum_i x_i (about 100 coins) per unit of rate, so the scan is itself only that
# accurate: on the drawn instances the solver is above it by up to 8e-10 relative.
UNIFORM_TOLERANCE = 1e-8
# Relative BU by which the solver may fall short of differential evolution (differentiated).
DIFFERENTIATED_TOLERANCE = 1e-6
# Points of the dense rate scan that brackets the uniform optimum before Brent refines it.
SCAN_POINTS = 4001
SEED = 3


# --------------------------------------------------------------------------------------------
# Helpers.


def random_games(rng: np.random.Generator, batch: int, n_lenders: int) -> OneToManyGame:
    """Draw heterogeneous games over a wider range than the env's default scenario.

    r_min in [0.01, 0.1], x_max in [1, 30] coins, r_max in [0.15, 0.6], R in [0.5, 20] coins,
    w in [0.3, 2], eta in [5, 50] coins and X up to 60 % of the lenders' total x_max.
    """
    max_investment = rng.uniform(1.0, 30.0, (batch, n_lenders))
    return OneToManyGame.from_values(
        min_rate=rng.uniform(0.01, 0.1, (batch, n_lenders)),
        max_investment=max_investment,
        max_rate=rng.uniform(0.15, 0.6, batch),
        reward=rng.uniform(0.5, 20.0, batch),
        weight=rng.uniform(0.3, 2.0, batch),
        valuation=rng.uniform(5.0, 50.0, batch),
        target=rng.uniform(0.0, 0.6, batch) * max_investment.sum(axis=1),
    )


def random_rates(rng: np.random.Generator, game: OneToManyGame) -> np.ndarray:
    """Draw differentiated rates uniformly inside each lender's interval, (B, N)."""
    low, high = game.rate_bounds("differentiated")
    return low + rng.random(low.shape) * (high - low)


def default_market(batch: int, n_lenders: int = DEFAULT_N_LENDERS) -> OneToManyMarket:
    """Draw ``batch`` episodes of the env's default scenario (instance b seeded SEED + b)."""
    market = OneToManyMarket(n_lenders=n_lenders, num_instances=batch, reference=False)
    market.seed([SEED + b for b in range(batch)])
    market.reset()
    return market


def with_values(game: OneToManyGame, **values: np.ndarray) -> OneToManyGame:
    """Rebuild ``game`` with some values replaced (validated again)."""
    fields = {
        "min_rate": game.min_rate,
        "max_investment": game.max_investment,
        "max_rate": game.max_rate,
        "reward": game.reward,
        "weight": game.weight,
        "valuation": game.valuation,
        "target": game.target,
        "failure_utility": game.failure_utility,
    }
    fields.update(values)
    return OneToManyGame.from_values(**fields)


def tiled(game: OneToManyGame, copies: int) -> OneToManyGame:
    """Repeat every instance ``copies`` times: instance b becomes rows b * copies and on."""
    return with_values(
        game,
        min_rate=np.repeat(game.min_rate, copies, axis=0),
        max_investment=np.repeat(game.max_investment, copies, axis=0),
        max_rate=np.repeat(game.max_rate, copies),
        reward=np.repeat(game.reward, copies),
        weight=np.repeat(game.weight, copies),
        valuation=np.repeat(game.valuation, copies),
        target=np.repeat(game.target, copies),
    )


def repeated(game: OneToManyGame, index: int, copies: int) -> OneToManyGame:
    """Return a batch of ``copies`` copies of instance ``index``."""
    return tiled(game.instance(index), copies)


def lender_utility(
    game: OneToManyGame, b: int, i: int, investment: float, others: float, rate: float
) -> float:
    """LU_i of instance b from the model when lender i invests ``investment`` against ``others``."""
    utility = model.investor_utility_against(
        np.array(investment),
        np.array(others),
        np.array(rate),
        game.min_rate[b, i],
        game.max_investment[b, i],
        game.reward[b],
        game.weight[b],
    )
    return float(utility)


def numeric_best_investment(
    game: OneToManyGame, b: int, i: int, others: float, rate: float
) -> tuple[float, float]:
    """Maximize LU_i over [0, x_max,i] with scipy's bounded Brent and both endpoints.

    Returns:
        The maximizing investment and its utility.
    """
    x_max = float(game.max_investment[b, i])

    def utility(investment: float) -> float:
        return lender_utility(game, b, i, investment, others, rate)

    result = minimize_scalar(
        lambda investment: -utility(investment),
        bounds=(0.0, x_max),
        method="bounded",
        options={"xatol": 1e-12 * x_max},
    )
    candidates = [
        (float(result.x), -float(result.fun)),
        (0.0, utility(0.0)),
        (x_max, utility(x_max)),
    ]
    return max(candidates, key=lambda candidate: candidate[1])


def scanned_utility(game: OneToManyGame, index: int, rates: np.ndarray) -> np.ndarray:
    """BU of instance ``index`` at each row of ``rates`` (K, N); -inf where the raise fails."""
    copies = repeated(game, index, rates.shape[0])
    utility, feasible, _ = investing.borrower_utility_at(np.ascontiguousarray(rates), copies)
    return np.where(feasible, utility, -np.inf)


def numeric_uniform_optimum(game: OneToManyGame, index: int) -> tuple[float, float]:
    """Maximize BU over one common rate: a dense scan of [max_i r_min,i, r_max], then Brent.

    Returns:
        The best rate and its BU.
    """
    n = game.n_lenders
    low, high = float(game.min_rate[index].max()), float(game.max_rate[index])
    grid = np.linspace(low, high, SCAN_POINTS)
    values = scanned_utility(game, index, np.repeat(grid[:, None], n, axis=1))
    best = int(np.argmax(values))

    def negative_utility(rate: float) -> float:
        return -float(scanned_utility(game, index, np.full((1, n), rate))[0])

    result = minimize_scalar(
        negative_utility,
        bounds=(grid[max(best - 1, 0)], grid[min(best + 1, SCAN_POINTS - 1)]),
        method="bounded",
        options={"xatol": 1e-13},
    )
    candidates = [(float(grid[best]), float(values[best])), (float(result.x), -float(result.fun))]
    return max(candidates, key=lambda candidate: candidate[1])


def numeric_differentiated_optimum(game: OneToManyGame, index: int) -> tuple[np.ndarray, float]:
    """Maximize BU over one rate per lender with scipy's differential evolution (seeded).

    The objective is the model's BU with the lenders' equilibrium inside, and the failure
    utility where the raise fails. Each generation is evaluated as one batch of games.

    Returns:
        The best rates (N,) and their BU.
    """
    low, high = game.rate_bounds("differentiated")

    def negative_utility(rates: np.ndarray) -> np.ndarray:
        # Vectorized: ``rates`` is (N, S), one column per member of the population.
        population = np.atleast_2d(rates.T)
        copies = repeated(game, index, population.shape[0])
        utility, _, _ = investing.borrower_utility_at(np.ascontiguousarray(population), copies)
        return -utility

    result = differential_evolution(
        negative_utility,
        list(zip(low[index], high[index], strict=True)),
        seed=0,
        popsize=20,
        maxiter=300,
        tol=1e-12,
        atol=0.0,
        polish=False,
        vectorized=True,
        updating="deferred",
    )
    return result.x, -float(result.fun)


def relative_gap(value: float, reference: float) -> float:
    """Return (reference - value) / |reference|: how far ``value`` stops short of the reference."""
    return (reference - value) / abs(reference)


# --------------------------------------------------------------------------------------------
# Stage II: the lenders' best response.


def test_best_response_matches_scipy():
    rng = np.random.default_rng(20)
    batch, n_lenders = 60, 3
    game = random_games(rng, batch, n_lenders)
    others = rng.uniform(0.01, 100.0, (batch, n_lenders))
    rates = random_rates(rng, game)
    # With a = w R / x_max,i the interest margin c = r_i - r_min,i decides the case: x_max is
    # best outright for c >= a. For c = a (1 - delta) the root solves
    # (x + beta)^2 = (beta^2 + (x_max + R) beta) / delta, so it passes x_max (the clip binds)
    # when delta < (beta^2 + (x_max + R) beta) / (x_max + beta)^2. These rates may exceed
    # r_max: the best response does not depend on it.
    ceiling = (game.weight * game.reward)[:, None] / game.max_investment
    case = rng.integers(0, 3, (batch, n_lenders))  # 0 random, 1 clip at x_max, 2 c >= a
    capacity, reward = game.max_investment, game.reward[:, None]
    largest_delta = (others**2 + (capacity + reward) * others) / (capacity + others) ** 2
    delta = rng.uniform(0.01, 0.9, (batch, n_lenders)) * np.minimum(largest_delta, 1.0)
    near_ceiling = game.min_rate + ceiling * (1.0 - delta)
    past_ceiling = game.min_rate + ceiling * rng.uniform(1.0, 3.0, (batch, n_lenders))
    rates = np.where(case == 1, near_ceiling, np.where(case == 2, past_ceiling, rates))

    response = investing.investor_best_response(others, rates, game)
    at_max = {0: 0, 1: 0, 2: 0}
    for b in range(batch):
        for i in range(n_lenders):
            x_max = game.max_investment[b, i]
            investment, value = numeric_best_investment(game, b, i, others[b, i], rates[b, i])
            assert abs(response[b, i] - investment) <= INVESTMENT_TOLERANCE * x_max, (
                f"instance {b} lender {i} case {case[b, i]}: closed form {response[b, i]}, "
                f"scipy {investment} (x_max {x_max})"
            )
            own = lender_utility(game, b, i, response[b, i], others[b, i], rates[b, i])
            assert own >= value - 1e-12 * abs(value), (
                f"instance {b} lender {i} case {case[b, i]}: closed form earns {own}, scipy {value}"
            )
            at_max[int(case[b, i])] += int(response[b, i] == x_max)
    assert at_max[1] == np.count_nonzero(case == 1), f"clip at x_max did not bind: {at_max}"
    assert at_max[2] == np.count_nonzero(case == 2), f"x_max not chosen when c >= a: {at_max}"
    assert at_max[0] < np.count_nonzero(case == 0), f"no interior responses drawn: {at_max}"


def test_best_response_positive_for_positive_others():
    # (x_i + beta_i)^2 (a - c) = a (beta_i^2 + (x_max + R) beta_i) with c >= 0 puts the root
    # above beta_i^2 + beta_i > beta_i, so the clip at 0 never binds when beta_i > 0.
    rng = np.random.default_rng(21)
    game = random_games(rng, 200, 4)
    others = rng.uniform(1e-6, 1e3, (200, 4))
    response = investing.investor_best_response(others, game.min_rate, game)
    assert np.all(response > 0.0), f"smallest response at r = r_min: {response.min()}"


def test_zero_beta_convention():
    # With beta_i = 0, LU_i(x) = a (x_max + R) + (c - a) x for every x > 0 but LU_i(0) = 0, so
    # for c < a the supremum a (x_max + R) is approached as x -> 0+ and never attained. The
    # solver returns ZERO_BETA_INVESTMENT x_max instead, and x_max where c >= a.
    rng = np.random.default_rng(22)
    game = random_games(rng, 30, 3)
    others = np.zeros((30, 3))
    ceiling = (game.weight * game.reward)[:, None] / game.max_investment
    rates = game.min_rate + ceiling * rng.choice([0.0, 0.5, 0.9, 1.5, 2.0], (30, 3))
    response = investing.investor_best_response(others, rates, game)
    for b in range(30):
        for i in range(3):
            x_max = game.max_investment[b, i]
            margin, a = rates[b, i] - game.min_rate[b, i], ceiling[b, i]
            if margin >= a:
                assert response[b, i] == x_max, f"instance {b} lender {i}: {response[b, i]}"
                continue
            expected = investing.ZERO_BETA_INVESTMENT * x_max
            assert response[b, i] == expected, (
                f"instance {b} lender {i}: response {response[b, i]}, expected {expected}"
            )
            own = lender_utility(game, b, i, response[b, i], 0.0, rates[b, i])
            supremum = a * (x_max + game.reward[b])
            closed_form = supremum + (margin - a) * expected
            assert math.isclose(own, closed_form, rel_tol=1e-12), (
                f"instance {b} lender {i}: utility {own}, a (x_max + R) + (c - a) x = {closed_form}"
            )
            assert own < supremum, f"instance {b} lender {i}: {own} vs supremum {supremum}"
            smaller = lender_utility(game, b, i, 0.5 * response[b, i], 0.0, rates[b, i])
            assert smaller > own, f"instance {b} lender {i}: {smaller} <= {own}"
            assert lender_utility(game, b, i, 0.0, 0.0, rates[b, i]) == 0.0


# --------------------------------------------------------------------------------------------
# Stage II: the lenders' Nash equilibrium.


@pytest.mark.parametrize("n_lenders", [2, 3, 5])
def test_equilibrium_has_no_profitable_deviation(n_lenders):
    rng = np.random.default_rng(30 + n_lenders)
    batch = 20
    game = random_games(rng, batch, n_lenders)
    rates = random_rates(rng, game)
    followers = investing.investor_equilibrium(rates, game)
    assert followers.converged.all(), f"not converged: {followers.iterations}"
    assert np.all(followers.iterations >= 1), followers.iterations
    assert np.all(followers.iterations < investing.FOLLOWER_MAX_ITERATIONS), followers.iterations

    x = followers.investments
    others = x.sum(axis=1, keepdims=True) - x
    for b in range(batch):
        for i in range(n_lenders):
            current = lender_utility(game, b, i, x[b, i], others[b, i], rates[b, i])
            investment, value = numeric_best_investment(game, b, i, others[b, i], rates[b, i])
            assert value <= current + GAIN_TOLERANCE * abs(current), (
                f"instance {b} lender {i}: deviating to {investment} earns {value}, "
                f"equilibrium investment {x[b, i]} earns {current}"
            )


def test_equilibrium_iteration_cap_reported():
    rng = np.random.default_rng(34)
    game = random_games(rng, 10, 4)
    rates = random_rates(rng, game)
    capped = investing.investor_equilibrium(rates, game, max_iterations=2)
    assert not capped.converged.any(), f"converged in {capped.iterations} iterations"
    assert np.all(capped.iterations == 2), capped.iterations
    full = investing.investor_equilibrium(rates, game)
    assert full.converged.all(), full.iterations
    assert np.all(full.iterations > 2), full.iterations


def test_batched_equilibrium_equals_single():
    rng = np.random.default_rng(35)
    game = random_games(rng, 16, 4)
    rates = random_rates(rng, game)
    batched = investing.investor_equilibrium(rates, game)
    for b in range(game.batch_size):
        single = investing.investor_equilibrium(rates[b : b + 1], game.instance(b))
        assert np.array_equal(batched.investments[b], single.investments[0]), (
            f"instance {b}: batched {batched.investments[b]}, single {single.investments[0]}"
        )
        assert batched.iterations[b] == single.iterations[0], (
            f"instance {b}: batched {batched.iterations[b]} iterations, "
            f"single {single.iterations[0]}"
        )
        assert batched.converged[b] == single.converged[0]


# --------------------------------------------------------------------------------------------
# Stage I: the borrower's optimum.


@pytest.mark.parametrize("source", ["random", "default"])
def test_uniform_optimum_matches_scan(source):
    if source == "random":
        games = [random_games(np.random.default_rng(40 + n), 2, n) for n in (2, 3, 4)]
    else:
        games = [default_market(4).game]
    for game in games:
        solution = investing.solve(game, "uniform")
        for b in range(game.batch_size):
            rate, reference = numeric_uniform_optimum(game, b)
            if not np.isfinite(reference):
                assert not solution.feasible[b], f"N={game.n_lenders} instance {b}"
                continue
            value = solution.borrower_utility[b]
            gap = relative_gap(value, reference)
            assert abs(gap) <= UNIFORM_TOLERANCE, (
                f"N={game.n_lenders} instance {b}: solver BU {value} at rate "
                f"{solution.rates[b, 0]}, scan and Brent BU {reference} at rate {rate}"
            )
            assert np.all(solution.rates[b] == solution.rates[b, 0]), solution.rates[b]


def test_differentiated_optimum_beats_evolution():
    rng = np.random.default_rng(50)
    games = [random_games(rng, 1, n) for n in (2, 3, 4)]
    games += [default_market(1, n_lenders=n).game for n in (2, 3)]
    for game in games:
        solution = investing.solve(game, "differentiated")
        uniform = investing.solve(game, "uniform")
        rates, reference = numeric_differentiated_optimum(game, 0)
        value = solution.borrower_utility[0]
        assert solution.feasible[0], f"N={game.n_lenders}: the raise failed at {solution.rates}"
        assert relative_gap(value, reference) <= DIFFERENTIATED_TOLERANCE, (
            f"N={game.n_lenders}: solver BU {value} at rates {solution.rates[0]}, "
            f"differential evolution BU {reference} at rates {rates}"
        )
        assert value >= uniform.borrower_utility[0], (
            f"N={game.n_lenders}: differentiated BU {value}, uniform {uniform.borrower_utility[0]}"
        )
        low, high = game.rate_bounds("differentiated")
        assert np.all((solution.rates >= low) & (solution.rates <= high)), solution.rates


@pytest.fixture(scope="module")
def default_solutions() -> dict[str, Any]:
    """Uniform, differentiated and psi solutions of 16 default-scenario episodes."""
    game = default_market(16).game
    return {
        "game": game,
        "uniform": investing.solve(game, "uniform"),
        "differentiated": investing.solve(game, "differentiated"),
        "psi": investing.solve(game, "differentiated", "psi"),
    }


@pytest.mark.parametrize("source", ["default", "random"])
def test_psi_method_stops_short(source, default_solutions, record_property):
    # The psi gradient ignores the kinks and dx_i/dr_j for j != i, and it starts from every
    # rate at r_min, where a random game's raise can fail (then it never leaves that point).
    if source == "default":
        game = default_solutions["game"]
        reference, psi = default_solutions["differentiated"], default_solutions["psi"]
    else:
        game = random_games(np.random.default_rng(55), 8, 3)
        reference = investing.solve(game, "differentiated")
        psi = investing.solve(game, "differentiated", "psi")
    shortfall = (reference.borrower_utility - psi.borrower_utility) / np.abs(
        reference.borrower_utility
    )
    statistics = (
        f"relative BU shortfall of psi over {shortfall.size} {source} games: "
        f"mean {shortfall.mean():.3e}, median {np.median(shortfall):.3e}, "
        f"max {shortfall.max():.3e}; short by more than 1e-6 in "
        f"{np.count_nonzero(shortfall > 1e-6)}, raise failed in {np.count_nonzero(~psi.feasible)}"
    )
    print(statistics)
    record_property(f"psi_mean_relative_shortfall_{source}", float(shortfall.mean()))
    record_property(f"psi_max_relative_shortfall_{source}", float(shortfall.max()))
    assert np.all(shortfall >= -1e-12), f"psi above the reference: {statistics}"
    assert reference.feasible.all(), statistics
    low, high = game.rate_bounds("differentiated")
    assert np.all((psi.rates >= low) & (psi.rates <= high)), psi.rates


def test_kink_rate_reaches_max_investment():
    rng = np.random.default_rng(60)
    batch, n_lenders = 40, 3
    game = random_games(rng, batch, n_lenders)
    investments = rng.uniform(0.05, 1.0, (batch, n_lenders)) * game.max_investment
    kinks = investing.kink_rates(investments, game)
    others = investments.sum(axis=1, keepdims=True) - investments
    base_rates = random_rates(rng, game)
    interior = (kinks > game.min_rate) & (kinks < game.max_rate[:, None])
    assert interior.sum() >= 10, f"only {interior.sum()} interior kink rates drawn"

    # Kink rates clipped to the interval: x_max is best already at r_min, or not yet at r_max.
    at_min = kinks == game.min_rate
    at_max = kinks == game.max_rate[:, None]
    assert at_min.any(), "no kink rate clipped to r_min was drawn"
    assert at_max.any(), "no kink rate clipped to r_max was drawn"
    from_min = investing.investor_best_response(others, game.min_rate, game)
    assert np.all(from_min[at_min] == game.max_investment[at_min]), from_min[at_min]
    top_rates = np.broadcast_to(game.max_rate[:, None], kinks.shape)
    from_max = investing.investor_best_response(others, top_rates, game)
    assert np.all(from_max[at_max] < game.max_investment[at_max]), from_max[at_max]

    for b, i in zip(*np.nonzero(interior), strict=True):
        x_max = game.max_investment[b, i]
        rates = base_rates.copy()
        rates[b, i] = kinks[b, i]
        at_kink = investing.investor_best_response(others, rates, game)[b, i]
        assert at_kink >= x_max * (1.0 - 1e-9), (
            f"instance {b} lender {i}: response {at_kink} at the kink rate {kinks[b, i]}, "
            f"x_max {x_max}"
        )
        rates[b, i] = kinks[b, i] - 1e-3 * (kinks[b, i] - game.min_rate[b, i])
        below = investing.investor_best_response(others, rates, game)[b, i]
        numeric, _ = numeric_best_investment(game, b, i, others[b, i], rates[b, i])
        assert below < x_max * (1.0 - 1e-9), (
            f"instance {b} lender {i}: response {below} below the kink rate, x_max {x_max}"
        )
        assert numeric < x_max * (1.0 - 1e-9), (
            f"instance {b} lender {i}: scipy best response {numeric} below the kink, x_max {x_max}"
        )


# --------------------------------------------------------------------------------------------
# Edge cases.


def test_zero_investment_not_equilibrium():
    rng = np.random.default_rng(70)
    game = random_games(rng, 10, 3)
    rates = random_rates(rng, game)
    nobody = np.zeros((10, 3))
    utilities = model.investor_utilities(
        nobody,
        rates,
        game.min_rate,
        game.max_investment,
        game.reward[:, None],
        game.weight[:, None],
    )
    assert np.all(utilities == 0.0), utilities
    for b in range(10):
        for i in range(3):
            small = 1e-3 * game.max_investment[b, i]
            gain = lender_utility(game, b, i, small, 0.0, rates[b, i])
            assert gain > 0.0, f"instance {b} lender {i}: investing {small} earns {gain}"
    response = investing.investor_best_response(nobody, rates, game)
    assert np.all(response > 0.0), response


def test_share_zero_when_nobody_invests():
    utility = model.investor_utility_against(
        np.array([0.0, 0.0]), np.array([0.0, 0.0]), 0.2, 0.05, 10.0, 5.0, 1.0
    )
    assert np.array_equal(utility, [0.0, 0.0]), utility
    # Lender 1 alone invests: it takes the whole reward share and lender 0 gets none.
    utilities = model.investor_utilities(
        np.array([[0.0, 4.0]]), np.full((1, 2), 0.2), np.full((1, 2), 0.05), 10.0, 5.0, 1.0
    )
    expected = 1.0 * (10.0 + 5.0 - 4.0) / 10.0 * 5.0 + 0.15 * 4.0
    assert utilities[0, 0] == 0.0, utilities
    assert math.isclose(utilities[0, 1], expected, rel_tol=1e-15), f"{utilities} vs {expected}"


@pytest.mark.parametrize(
    ("pricing", "method"),
    [("uniform", "reference"), ("differentiated", "reference"), ("differentiated", "psi")],
)
def test_infeasible_raise(pricing, method):
    # X = sum x_max + 10: the total is at most X - 10 < X - 1 at every rate.
    rng = np.random.default_rng(80)
    game = random_games(rng, 3, 3)
    game = with_values(game, target=game.max_investment.sum(axis=1) + 10.0, failure_utility=-7.5)
    solution = investing.solve(game, pricing, method)
    assert not solution.feasible.any(), solution.feasible
    assert np.all(solution.borrower_utility == -7.5), solution.borrower_utility
    low, high = game.rate_bounds(pricing)
    assert np.all((solution.rates >= low) & (solution.rates <= high)), (
        f"rates {solution.rates} outside [{low}, {high}]"
    )
    utility, feasible = model.raise_borrower_utility(
        game.max_investment, game.min_rate, game.target, game.reward, game.valuation, -7.5
    )
    assert not feasible.any(), feasible
    assert np.all(utility == -7.5), utility


def test_single_lender_search_from_failed_raise():
    # One lender facing no rival invests ZERO_BETA_INVESTMENT x_max unless the interest alone
    # pays (r - r_min >= w R / x_max), so some starts of the search fail to raise X.
    game = OneToManyGame.from_values(
        min_rate=[[0.02], [0.04]],
        max_investment=[[20.0], [25.0]],
        max_rate=0.3,
        reward=[2.0, 3.0],
        weight=1.0,
        valuation=30.0,
        target=[10.0, 10.0],
    )
    solution = investing.solve(game, "differentiated")
    ceiling = game.min_rate[:, 0] + game.weight * game.reward / game.max_investment[:, 0]
    assert solution.feasible.all(), solution.to_dict()
    assert np.allclose(solution.rates[:, 0], ceiling, rtol=1e-6, atol=0.0), (
        f"rates {solution.rates[:, 0]}, lowest rates with x = x_max {ceiling}"
    )


# --------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"min_rate": [0.3, 0.1]}, r"min_rate.*max_rate=\[0\.3\].*0\.3"),
        ({"min_rate": [0.5, 0.1]}, r"min_rate.*0\.5"),
        ({"min_rate": [0.0, 0.1]}, r"min_rate must be above 0.*0\."),
        ({"target": -1.0}, r"target.*at least 0.*-1\."),
        ({"reward": 0.0}, r"reward must be above 0.*0\."),
        ({"weight": -2.0}, r"weight.*-2\."),
        ({"valuation": np.nan}, "valuation must be finite.*nan"),
        ({"max_investment": [10.0, -1.0]}, r"max_investment.*-1\."),
        ({"max_rate": np.inf}, "max_rate must be finite.*inf"),
        ({"failure_utility": np.inf}, "failure_utility must be finite.*inf"),
        ({"max_investment": [1.0, 2.0, 3.0]}, r"max_investment.*shape \(1, 2\).*\(3,\)"),
        ({"reward": [1.0, 2.0]}, r"reward.*shape \(1,\).*\(2,\)"),
    ],
)
def test_game_rejects_invalid_values(values, pattern):
    arguments = {
        "min_rate": [0.05, 0.02],
        "max_investment": [10.0, 20.0],
        "max_rate": 0.3,
        "reward": 5.0,
        "weight": 1.0,
        "valuation": 30.0,
        "target": 20.0,
        **values,
    }
    with pytest.raises(ValueError, match=pattern):
        OneToManyGame.from_values(**arguments)


@pytest.mark.parametrize(
    ("pricing", "method", "pattern"),
    [
        ("bogus", "reference", "'bogus'"),
        ("uniform", "newton", "'newton'"),
        ("uniform", "psi", "psi"),
    ],
)
def test_solve_rejects_unknown_options(pricing, method, pattern):
    game = OneToManyGame.from_values([0.05, 0.02], [10.0, 20.0], 0.3, 5.0, 1.0, 30.0, 20.0)
    with pytest.raises(ValueError, match=pattern):
        investing.solve(game, pricing, method)


# --------------------------------------------------------------------------------------------
# The reported behaviour of the market, on the env's default scenario.


def add_lender(market: OneToManyMarket, rng: np.random.Generator) -> OneToManyGame:
    """Return the market's game with one more lender, drawn from the scenario like the others."""
    game, batch = market.game, market.num_instances
    min_rate = market.min_rate_spec.sample(rng.random((batch, market.n_lenders)))[:, :1]
    max_investment = market.max_investment_spec.sample(rng.random((batch, market.n_lenders)))
    return with_values(
        game,
        min_rate=np.concatenate([game.min_rate, min_rate], axis=1),
        max_investment=np.concatenate([game.max_investment, max_investment[:, :1]], axis=1),
    )


@pytest.mark.parametrize(
    ("pricing", "n_lenders", "batch"),
    [
        ("uniform", 2, 200),
        ("uniform", DEFAULT_N_LENDERS, 200),
        ("differentiated", 2, 12),
        ("differentiated", DEFAULT_N_LENDERS, 6),
    ],
)
def test_new_lender_raises_borrower_utility(pricing, n_lenders, batch):
    # Not a theorem (see test_new_lender_can_lower_utility), but on the default scenario it
    # holds on every drawn episode, so it is checked per episode.
    market = default_market(batch, n_lenders)
    before = investing.solve(market.game, pricing)
    after = investing.solve(add_lender(market, np.random.default_rng(90 + n_lenders)), pricing)
    gain = after.borrower_utility - before.borrower_utility
    worst = int(np.argmin(gain))
    assert np.all(gain > 0.0), (
        f"{pricing} N={n_lenders} episode {worst}: BU {before.borrower_utility[worst]} before, "
        f"{after.borrower_utility[worst]} with one more lender"
    )


def test_new_lender_can_lower_utility():
    # Outside the default scenario the statement fails. A lender facing rivals always invests
    # a positive amount, so a new lender with a high r_min invests even at its minimum rate.
    # With a low valuation eta, that interest exceeds what the funds are worth to the borrower.
    values = {
        "max_rate": 0.3,
        "reward": 9.0,
        "weight": 0.6,
        "valuation": 1.4,
        "target": 8.9,
    }
    before = OneToManyGame.from_values([0.156, 0.072], [19.6, 49.4], **values)
    after = OneToManyGame.from_values([0.156, 0.072, 0.173], [19.6, 49.4, 33.1], **values)
    for pricing in investing.PRICINGS:
        old = investing.solve(before, pricing)
        new = investing.solve(after, pricing)
        assert old.feasible[0] and new.feasible[0], (old.to_dict(), new.to_dict())
        assert new.borrower_utility[0] < old.borrower_utility[0], (
            f"{pricing}: BU {old.borrower_utility[0]} with two lenders, "
            f"{new.borrower_utility[0]} with three"
        )


def test_differentiated_at_least_uniform(default_solutions):
    uniform = default_solutions["uniform"].borrower_utility
    differentiated = default_solutions["differentiated"].borrower_utility
    worst = int(np.argmin(differentiated - uniform))
    assert np.all(differentiated >= uniform), (
        f"episode {worst}: differentiated BU {differentiated[worst]}, uniform {uniform[worst]}"
    )


def test_large_reward_lowers_interest():
    # Once R exceeds x_max,i^2 / beta_i + x_max,i for every lender, with beta_i the others'
    # total x_max, every lender's best response to the others at x_max is x_max even at
    # r = r_min. The borrower then sets every rate at r_min and pays sum_i r_min,i x_max,i.
    market = default_market(2)
    game = market.game
    others = game.max_investment.sum(axis=1, keepdims=True) - game.max_investment
    threshold = (game.max_investment**2 / others + game.max_investment).max(axis=1)
    steps = 6
    # Row b * steps + k of the grid is episode b with the k-th reward, from the drawn R up.
    rewards = np.geomspace(game.reward, 2.0 * threshold, steps).T.reshape(-1)
    grid = with_values(tiled(game, steps), reward=rewards)

    solution = investing.solve(grid, "differentiated")
    assert solution.feasible.all(), solution.feasible
    interest = (solution.rates * solution.investments).sum(axis=1).reshape(2, steps)

    for b in range(2):
        largest = b * steps + steps - 1
        minimum_interest = float((game.min_rate[b] * game.max_investment[b]).sum())
        assert np.allclose(solution.rates[largest], game.min_rate[b], rtol=1e-12, atol=0.0), (
            f"episode {b} R={rewards[largest]}: rates {solution.rates[largest]}, "
            f"r_min {game.min_rate[b]}"
        )
        assert math.isclose(interest[b, -1], minimum_interest, rel_tol=1e-9), (
            f"episode {b}: interest {interest[b, -1]}, sum r_min x_max {minimum_interest}"
        )
        assert interest[b, -1] < interest[b].max(), (
            f"episode {b}: interest over R {rewards[b * steps : (b + 1) * steps]}: {interest[b]}"
        )
        assert interest[b, -1] < interest[b, 0], (
            f"episode {b}: interest {interest[b, 0]} at the drawn R, {interest[b, -1]} at "
            f"R={rewards[largest]}"
        )
