"""Time the equilibrium solvers against the number of agents N, and check them against scipy.

Usage:
    python benchmarks/solver_scaling.py [--quick] [--json] [--repeats R]
        [--markets one_to_one,one_to_many,offloading]

Solvers and sizes (the default run took 3 minutes on a shared 2-core machine):

- one-to-one lending, ``ledgerzoo.envs.lending.equilibrium.solve``: Jacobi best responses
  and gradient ascent with slack loan bounds, N = 2 to 10^6. With binding loan bounds
  (``max_loan`` drawn from U[10, 40] coins) the best response is a numeric search: Jacobi
  iterations up to N = 10^5, and Gauss-Seidel sweeps, the fallback when Jacobi cycles, up
  to N = 1000.
- one-to-many lending, ``ledgerzoo.envs.lending.investing``: the lenders' equilibrium
  alone (``investor_equilibrium`` on the 257 candidate rates that the uniform search
  evaluates first) and ``solve`` with uniform pricing, both up to N = 10^4, and ``solve``
  with differentiated pricing up to N = 50.
- offloading, ``ledgerzoo.envs.offloading.equilibrium.solve_nash``: asynchronous best
  response up to N = 1000 devices, for one instance and for a batch of 16.

Every game is drawn by the market itself (``OneToOneMarket``, ``OneToManyMarket`` or
``sample_games``) from its default scenario with N agents, one seed per instance. A timing
is the minimum over at least ``--repeats`` calls. Fast calls repeat until they took
``MIN_TIMING_SECONDS`` together. The calls of one size stop early once they have taken
``REPEAT_BUDGET_SECONDS`` together. Time per iteration is the solve's time divided by
its iterations, so it includes the O(N) set-up and packaging of the result. An iteration is:

- one-to-one: a Jacobi iteration, a gradient step or a Gauss-Seidel sweep;
- one-to-many: a row-iteration of the lenders' equilibrium, one Jacobi update of the N
  lenders for one candidate rate vector. The leader searches solve many candidates as the
  rows of one batch, and a row stops iterating once it converges;
- offloading: a pass of the move loop, which picks and applies one move in every instance
  that can still improve.

The order is the slope of log(time per iteration) against log(N), fitted over the top
decade of N: at smaller N a fixed Python cost per iteration dominates. At large N the
arrays outgrow the caches, and the time per element of any O(N) numpy code rises. The
report starts with the time per element of a reference kernel (``reference_kernel``) at
N = 10^3 to 10^6, so the fitted orders can be read against that rise.

Sizes left out of the default run (differentiated pricing beyond N = 50, the numeric
one-to-one paths beyond the sizes above) are listed with the time that the fitted order of
the measured total times predicts for them.

For small N the same run solves each equilibrium with generic scipy routines and reports
their time and the largest difference from our solution:

- one-to-one: Gauss-Seidel sweeps of ``scipy.optimize.minimize_scalar`` (bounded Brent) on
  each lender's utility from ``ledgerzoo.envs.lending.model``, with the borrower's
  response substituted, until no price moves by 1e-7 relative.
- one-to-many: the lenders' equilibrium at our rates by the same kind of sweeps on
  ``model.investor_utility_against``. The borrower's uniform rate by bounded Brent on BU,
  and the differentiated rates by ``scipy.optimize.differential_evolution`` (seeded). Both
  leader searches evaluate BU with our lenders' equilibrium inside.
- offloading: ``scipy.optimize.milp`` (HiGHS) minimizes the weighted potential over all
  profiles. Its minimizer is a Nash equilibrium, but equilibria need not be unique, so
  the report gives the potential gap and the number of devices whose actions differ.

Results of this script are recorded in docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any, get_args

import numpy as np
from scipy.optimize import (
    Bounds,
    LinearConstraint,
    differential_evolution,
    milp,
    minimize_scalar,
)

from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.envs.lending import equilibrium as one_to_one
from ledgerzoo.envs.lending import investing, model
from ledgerzoo.envs.lending.equilibrium import OneToOneGame
from ledgerzoo.envs.lending.investing import OneToManyGame
from ledgerzoo.envs.lending.one_to_many import OneToManyMarket
from ledgerzoo.envs.lending.one_to_one import OneToOneMarket
from ledgerzoo.envs.offloading import equilibrium as offloading
from ledgerzoo.envs.offloading import model as offloading_model
from ledgerzoo.envs.offloading.game import OffloadingGame, sample_games
from ledgerzoo.envs.offloading.scenario import OffloadingScenario

MARKETS = ("one_to_one", "one_to_many", "offloading")
SEED = 0
DEFAULT_REPEATS = 3
# Time (s) after which the repeated calls of one size stop, even if fewer than --repeats.
REPEAT_BUDGET_SECONDS = 5.0
# Fast calls repeat until they took this long together (s), at most MAX_CALLS times, so
# that the minimum of a short timing is taken over many calls on a shared machine.
MIN_TIMING_SECONDS = 0.5
MAX_CALLS = 100
# The order is fitted over sizes N >= max(N) / FIT_RANGE, the top decade of each grid.
FIT_RANGE = 10

# Sizes of the default run and of --quick, per solver.
ONE_TO_ONE_SIZES = (2, 5, 10, 20, 50, 100, 1_000, 10_000, 100_000, 200_000, 500_000, 1_000_000)
ONE_TO_ONE_QUICK = (2, 10, 100, 1_000, 10_000)
# Binding loan bounds: each lender's max_loan is drawn from this range (coins). At the
# default scenario's equilibrium a loan d_i / r_i is about 25 coins, so some bounds bind.
BINDING_MAX_LOAN = {"low": 10.0, "high": 40.0}
NUMERIC_SIZES = (2, 10, 100, 1_000, 10_000, 20_000, 50_000, 100_000)
NUMERIC_QUICK = (2, 10, 100)
SWEEP_SIZES = (2, 10, 100, 200, 500, 1_000)
SWEEP_QUICK = (2, 10, 100)
UNIFORM_SIZES = (2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)
UNIFORM_QUICK = (2, 10, 100, 1_000)
DIFFERENTIATED_SIZES = (2, 5, 10, 20, 50)
DIFFERENTIATED_QUICK = (2, 5, 10)
OFFLOADING_SIZES = (2, 5, 10, 20, 50, 100, 200, 500, 1_000)
OFFLOADING_QUICK = (2, 10, 100, 1_000)
OFFLOADING_BATCHES = (1, 16)

# Sizes of the reference kernel, which shows how the machine's time per element varies.
REFERENCE_SIZES = (1_000, 10_000, 100_000, 1_000_000)
# Sizes compared with scipy.
ONE_TO_ONE_SCIPY = (2, 5, 10, 20, 50)
UNIFORM_SCIPY = (2, 5, 10, 20)
DIFFERENTIATED_SCIPY = (2, 5)
OFFLOADING_SCIPY = (2, 5, 10, 20, 50)
SCIPY_QUICK = (2, 5)

# Bounded Brent locates a maximum to about sqrt(machine epsilon) relative, so the scipy
# sweeps stop once no variable moves by more than this, relative to its scale.
SCIPY_SWEEP_TOLERANCE = 1e-7
SCIPY_MAX_SWEEPS = 500
# Sizes left out of the default run to keep it within about 10 minutes. The report gives
# each one's time as estimated from the fitted order of the measured total times.
ONE_TO_ONE_NOT_RUN = {
    "best_response, binding bounds (Jacobi)": (1_000_000,),
    "best_response, binding bounds (Gauss-Seidel)": (10_000, 100_000, 1_000_000),
}
DIFFERENTIATED_NOT_RUN = (100, 1_000, 10_000)
# Name of the one-to-many rows that time the lenders' equilibrium alone, on the batch of
# candidate rates that the uniform search evaluates first.
FOLLOWER_SOLVER = f"lenders' equilibrium, {investing.UNIFORM_GRID_POINTS} rows"


@dataclass
class Timing:
    """The fastest of several calls and the result of the last one."""

    seconds: float
    calls: int
    result: Any


def time_call(function: Callable[[], Any], repeats: int) -> Timing:
    """Call ``function`` repeatedly and keep the fastest time (s).

    The calls go on until there are ``repeats`` of them and they took ``MIN_TIMING_SECONDS``
    together, or until ``MAX_CALLS``, but stop once they took ``REPEAT_BUDGET_SECONDS``.
    """
    best = math.inf
    result = None
    calls = 0
    spent = 0.0
    while calls < MAX_CALLS and (calls < repeats or spent < MIN_TIMING_SECONDS):
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
        calls += 1
        best = min(best, elapsed)
        spent += elapsed
        if spent > REPEAT_BUDGET_SECONDS:
            break
    return Timing(best, calls, result)


def fit_order(sizes: Sequence[int], values: Sequence[float]) -> dict[str, Any] | None:
    """Fit log(value) = order log(N) + c over sizes N >= max(N) / FIT_RANGE.

    Returns:
        The order and the range of N it was fitted over, or None with fewer than 2 sizes.
    """
    n = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if n.size < 2:
        return None
    keep = (n >= n.max() / FIT_RANGE) & (y > 0.0)
    if keep.sum() < 2:
        return None
    slope, _ = np.polyfit(np.log(n[keep]), np.log(y[keep]), 1)
    return {"order": float(slope), "from_n": int(n[keep].min()), "to_n": int(n[keep].max())}


# --------------------------------------------------------------------------------------------
# Games drawn from the markets' default scenarios.


def one_to_one_game(n_lenders: int, seed: int = SEED, **scenario: Any) -> OneToOneGame:
    """Draw one one-to-one game with N lenders from the market's default scenario."""
    market = OneToOneMarket(n_lenders=n_lenders, num_instances=1, reference=False, **scenario)
    market.seed([seed])
    market.reset()
    return market.game


def one_to_many_game(n_lenders: int, seed: int = SEED) -> OneToManyGame:
    """Draw one one-to-many game with N lenders from the market's default scenario."""
    market = OneToManyMarket(n_lenders=n_lenders, num_instances=1, reference=False)
    market.seed([seed])
    market.reset()
    return market.game


def offloading_games(n_devices: int, batch: int, seed: int = SEED) -> OffloadingGame:
    """Draw ``batch`` offloading games with N devices from the default scenario."""
    return sample_games(OffloadingScenario(n_devices=n_devices), instance_seeds(seed, batch))


# --------------------------------------------------------------------------------------------
# One-to-one lending.


def run_one_to_one(quick: bool, repeats: int) -> dict[str, Any]:
    """Time both methods with slack loan bounds, the numeric path, and the scipy sweeps."""
    sizes = ONE_TO_ONE_QUICK if quick else ONE_TO_ONE_SIZES
    rows = []
    for n in sizes:
        game = one_to_one_game(n)
        for method in get_args(one_to_one.Method):
            timing = time_call(functools.partial(one_to_one.solve, game, method), repeats)
            rows.append(_one_to_one_row(method, n, timing))
    numeric_sizes = NUMERIC_QUICK if quick else NUMERIC_SIZES
    for n in numeric_sizes:
        game = one_to_one_game(n, max_loan=BINDING_MAX_LOAN)
        timing = time_call(functools.partial(one_to_one.solve, game), repeats)
        rows.append(_one_to_one_row("best_response, binding bounds (Jacobi)", n, timing))
    sweep_sizes = SWEEP_QUICK if quick else SWEEP_SIZES
    for n in sweep_sizes:
        game = one_to_one_game(n, max_loan=BINDING_MAX_LOAN)
        with _gauss_seidel_only():
            timing = time_call(functools.partial(one_to_one.solve, game), repeats)
        rows.append(_one_to_one_row("best_response, binding bounds (Gauss-Seidel)", n, timing))

    not_run = []
    if not quick:
        for solver, skipped in ONE_TO_ONE_NOT_RUN.items():
            measured = [row for row in rows if row["method"] == solver]
            not_run += _estimate_not_run(solver, measured, skipped)

    scipy_sizes = SCIPY_QUICK if quick else ONE_TO_ONE_SCIPY
    comparisons = [_compare_one_to_one(n) for n in scipy_sizes]
    return {
        "rows": rows,
        "orders": _orders(rows, "method", "seconds_per_iteration"),
        "total_time_orders": _orders(rows, "method", "seconds"),
        "not_run": not_run,
        "scipy": comparisons,
    }


def _estimate_not_run(
    solver: str, measured: list[dict[str, Any]], sizes: Sequence[int]
) -> list[dict[str, Any]]:
    """Describe sizes left out of the run, with the time the fitted order predicts for each."""
    order = fit_order([row["n"] for row in measured], [row["seconds"] for row in measured])
    entries = []
    for n in sizes:
        reason = "time: no estimate, fewer than two sizes were measured"
        if order is not None:
            largest = measured[-1]
            estimate = largest["seconds"] * (n / largest["n"]) ** order["order"]
            reason = (
                f"time: about {_format_seconds(estimate)}, extrapolated from N = "
                f"{largest['n']} with the fitted order N^{order['order']:.2f} of the total time"
            )
        entries.append({"solver": solver, "n": n, "reason": reason})
    return entries


def _one_to_one_row(method: str, n: int, timing: Timing) -> dict[str, Any]:
    result = timing.result
    iterations = int(result.iterations.max())
    return {
        "method": method,
        "n": n,
        "seconds": timing.seconds,
        "calls": timing.calls,
        "iterations": iterations,
        "converged": bool(result.converged.all()),
        "seconds_per_iteration": timing.seconds / max(iterations, 1),
    }


@contextmanager
def _gauss_seidel_only() -> Iterator[None]:
    """Make the best-response method run Gauss-Seidel sweeps from its first iteration.

    The solver switches to sweeps only after ``JACOBI_ITERATIONS`` Jacobi iterations fail,
    and Jacobi converges in a few iterations on the benchmark's games, so the benchmark sets
    it to 0.
    """
    saved = one_to_one.JACOBI_ITERATIONS
    one_to_one.JACOBI_ITERATIONS = 0
    try:
        yield
    finally:
        one_to_one.JACOBI_ITERATIONS = saved


def _compare_one_to_one(n: int) -> dict[str, Any]:
    """Solve one game by scipy sweeps and compare the rates with both methods' rates."""
    game = one_to_one_game(n)
    started = time.perf_counter()
    rates, sweeps = _scipy_one_to_one_rates(game)
    seconds = time.perf_counter() - started
    differences = {}
    our_seconds = {}
    for method in get_args(one_to_one.Method):
        started = time.perf_counter()
        ours = one_to_one.solve(game, method).rates[0]
        our_seconds[method] = time.perf_counter() - started
        differences[method] = float(np.max(np.abs(rates - ours) / ours))
    return {
        "n": n,
        "seconds": our_seconds,
        "scipy_seconds": seconds,
        "scipy_sweeps": sweeps,
        "max_relative_rate_difference": differences,
    }


def _scipy_one_to_one_rates(game: OneToOneGame) -> tuple[np.ndarray, int]:
    """Run Gauss-Seidel sweeps of bounded Brent on each lender's LU_i (instance 0).

    LU_i comes from the general model: the borrower's clipped response to every price, then
    ``model.lender_utilities``. Each lender's search covers [1 / r_max, 1 / r_min,i], and
    both ends are candidates too.

    Returns:
        The rates (N,) and the number of sweeps.
    """
    willingness = game.willingness[:1]
    min_rate = game.min_rate[:1]
    low = 1.0 / float(game.max_rate[0])
    high = 1.0 / min_rate[0]
    prices = 0.5 * (low + high)

    def lender_utility(i: int, price: float) -> float:
        offered = prices.copy()
        offered[i] = price
        loans = model.borrower_best_response(
            offered[None], willingness, game.min_loan[:1, None], game.max_loan[:1]
        )
        utilities = model.lender_utilities(loans, 1.0 / offered[None], willingness, min_rate)
        return float(utilities[0, i])

    sweeps = 0
    while sweeps < SCIPY_MAX_SWEEPS:
        sweeps += 1
        previous = prices.copy()
        for i in range(game.n_lenders):
            prices[i] = _bounded_argmax(functools.partial(lender_utility, i), low, float(high[i]))
        if np.max(np.abs(prices - previous) / previous) <= SCIPY_SWEEP_TOLERANCE:
            break
    return 1.0 / prices, sweeps


def _bounded_argmax(function: Callable[[float], float], low: float, high: float) -> float:
    """Maximize ``function`` on [low, high] by bounded Brent, with both ends as candidates."""
    result = minimize_scalar(
        lambda x: -function(x),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-12 * max(abs(high), 1.0)},
    )
    candidates = [(float(result.x), -float(result.fun)), (low, function(low))]
    candidates.append((high, function(high)))
    return max(candidates, key=lambda candidate: candidate[1])[0]


# --------------------------------------------------------------------------------------------
# One-to-many lending.


@dataclass
class FollowerCount:
    """Work of the lenders' equilibrium solves inside one leader search."""

    solves: int = 0
    iterations: int = 0
    row_iterations: int = 0
    unconverged_solves: int = 0


@contextmanager
def _count_follower_iterations(count: FollowerCount) -> Iterator[None]:
    """Count the Jacobi iterations of every lenders' equilibrium that ``investing`` solves.

    The leader searches call the module's ``investor_equilibrium`` on a batch of candidate
    rates, one row each. Its loop stops updating a row once the row converges, so a solve
    makes as many row-iterations, each an update of the N lenders of one row, as the sum of
    the rows' iteration counts. The wrapper adds one Python call per solve.
    """
    original = investing.investor_equilibrium

    def counted(rates: np.ndarray, game: OneToManyGame, **kwargs: Any) -> Any:
        result = original(rates, game, **kwargs)
        count.solves += 1
        count.iterations += int(result.iterations.max())
        count.row_iterations += int(result.iterations.sum())
        count.unconverged_solves += int(not result.converged.all())
        return result

    investing.investor_equilibrium = counted
    try:
        yield
    finally:
        investing.investor_equilibrium = original


def run_one_to_many(quick: bool, repeats: int) -> dict[str, Any]:
    """Time the lenders' equilibrium, both pricing rules, and compare small games with scipy."""
    rows = []
    for n in UNIFORM_QUICK if quick else UNIFORM_SIZES:
        game = one_to_many_game(n)
        candidates = _uniform_candidates(game)
        timing = time_call(functools.partial(investing.investor_equilibrium, *candidates), repeats)
        result = timing.result
        iterations = int(result.iterations.max())
        row_iterations = int(result.iterations.sum())
        rows.append(
            {
                "solver": FOLLOWER_SOLVER,
                "n": n,
                "seconds": timing.seconds,
                "calls": timing.calls,
                "follower_iterations": iterations,
                "follower_row_iterations": row_iterations,
                "converged": bool(result.converged.all()),
                "seconds_per_follower_row_iteration": timing.seconds / row_iterations,
            }
        )
    plans = [
        ("uniform", UNIFORM_QUICK if quick else UNIFORM_SIZES),
        ("differentiated", DIFFERENTIATED_QUICK if quick else DIFFERENTIATED_SIZES),
    ]
    for pricing, sizes in plans:
        for n in sizes:
            game = one_to_many_game(n)
            count = FollowerCount()
            with _count_follower_iterations(count):
                timing = time_call(functools.partial(investing.solve, game, pricing), repeats)
            rows.append(_one_to_many_row(pricing, n, timing, count))

    not_run = []
    if not quick:
        measured = [row for row in rows if row["solver"] == "differentiated"]
        not_run = _estimate_not_run("differentiated", measured, DIFFERENTIATED_NOT_RUN)

    comparisons = []
    for n in SCIPY_QUICK if quick else UNIFORM_SCIPY:
        comparisons.append(_compare_one_to_many(n, "uniform"))
    for n in SCIPY_QUICK if quick else DIFFERENTIATED_SCIPY:
        comparisons.append(_compare_one_to_many(n, "differentiated"))
    return {
        "rows": rows,
        "orders": _orders(rows, "solver", "seconds_per_follower_row_iteration"),
        "total_time_orders": _orders(rows, "solver", "seconds"),
        "not_run": not_run,
        "scipy": comparisons,
    }


def _uniform_candidates(game: OneToManyGame) -> tuple[np.ndarray, OneToManyGame]:
    """Return the uniform search's first batch: UNIFORM_GRID_POINTS common rates, one per row.

    The rates run evenly over [max_i r_min,i, r_max], as the search's grid does, and the
    game is instance 0 repeated once per row.
    """
    points = investing.UNIFORM_GRID_POINTS
    low, high = float(game.min_rate[0].max()), float(game.max_rate[0])
    rates = np.repeat(np.linspace(low, high, points)[:, None], game.n_lenders, axis=1)
    return rates, _instance_copies(game, points)


def _one_to_many_row(pricing: str, n: int, timing: Timing, count: FollowerCount) -> dict[str, Any]:
    result = timing.result
    # Every call did the same work, so the counts of one call are the totals over calls.
    iterations = count.iterations // timing.calls
    row_iterations = count.row_iterations // timing.calls
    return {
        "solver": pricing,
        "n": n,
        "seconds": timing.seconds,
        "calls": timing.calls,
        "leader_evaluations": int(result.iterations.max()),
        "follower_solves": count.solves // timing.calls,
        "follower_iterations": iterations,
        "follower_row_iterations": row_iterations,
        "unconverged_follower_solves": count.unconverged_solves // timing.calls,
        "converged": bool(result.converged.all()),
        "feasible": bool(result.feasible.all()),
        "seconds_per_follower_row_iteration": timing.seconds / max(row_iterations, 1),
    }


def _compare_one_to_many(n: int, pricing: str) -> dict[str, Any]:
    """Compare our equilibrium with scipy's, stage by stage, on one game."""
    game = one_to_many_game(n)
    started = time.perf_counter()
    ours = investing.solve(game, pricing)
    our_seconds = time.perf_counter() - started

    started = time.perf_counter()
    investments, sweeps = _scipy_investments(game, ours.rates)
    follower_seconds = time.perf_counter() - started
    follower_difference = np.max(np.abs(investments - ours.investments[0]) / game.max_investment[0])

    started = time.perf_counter()
    if pricing == "uniform":
        rates = _scipy_uniform_rates(game)
    else:
        rates = _scipy_differentiated_rates(game)
    leader_seconds = time.perf_counter() - started
    utility = float(_borrower_utilities(game, rates[None])[0])
    ours_utility = float(ours.borrower_utility[0])
    return {
        "pricing": pricing,
        "n": n,
        "seconds": our_seconds,
        "scipy_follower_seconds": follower_seconds,
        "scipy_follower_sweeps": sweeps,
        "max_investment_difference_over_max_investment": float(follower_difference),
        "scipy_leader_seconds": leader_seconds,
        "max_rate_difference": float(np.max(np.abs(rates - ours.rates[0]))),
        "borrower_utility": ours_utility,
        "scipy_borrower_utility": utility,
        "relative_utility_difference": (ours_utility - utility) / abs(ours_utility),
    }


def _scipy_investments(game: OneToManyGame, rates: np.ndarray) -> tuple[np.ndarray, int]:
    """Run Gauss-Seidel sweeps of bounded Brent on each lender's LU_i at ``rates`` (instance 0).

    The sweeps start from the same investments as the solver, ``START_INVESTMENT`` x_max.

    Returns:
        The investments (N,) and the number of sweeps.
    """
    max_investment = game.max_investment[0]
    investments = investing.START_INVESTMENT * max_investment

    def lender_utility(i: int, investment: float) -> float:
        others = investments.sum() - investments[i]
        utility = model.investor_utility_against(
            np.array(investment),
            np.array(others),
            np.array(rates[0, i]),
            game.min_rate[0, i],
            max_investment[i],
            game.reward[0],
            game.weight[0],
        )
        return float(utility)

    sweeps = 0
    while sweeps < SCIPY_MAX_SWEEPS:
        sweeps += 1
        previous = investments.copy()
        for i in range(game.n_lenders):
            investments[i] = _bounded_argmax(
                functools.partial(lender_utility, i), 0.0, float(max_investment[i])
            )
        if np.max(np.abs(investments - previous) / max_investment) <= SCIPY_SWEEP_TOLERANCE:
            break
    return investments, sweeps


def _borrower_utilities(game: OneToManyGame, rates: np.ndarray) -> np.ndarray:
    """Compute BU of instance 0 at each row of ``rates`` (K, N).

    A row whose raise fails gets the game's failure utility.
    """
    games = _instance_copies(game, rates.shape[0])
    utility, _, _ = investing.borrower_utility_at(np.ascontiguousarray(rates), games)
    return utility


def _instance_copies(game: OneToManyGame, count: int) -> OneToManyGame:
    """Return a batch of ``count`` copies of instance 0."""

    def copies(values: np.ndarray) -> np.ndarray:
        return np.repeat(values[:1], count, axis=0)

    return OneToManyGame(
        copies(game.min_rate),
        copies(game.max_investment),
        copies(game.max_rate),
        copies(game.reward),
        copies(game.weight),
        copies(game.valuation),
        copies(game.target),
        game.failure_utility,
    )


def _scipy_uniform_rates(game: OneToManyGame) -> np.ndarray:
    """Maximize BU over one common rate in [max_i r_min,i, r_max] by bounded Brent."""
    n = game.n_lenders
    low, high = float(game.min_rate[0].max()), float(game.max_rate[0])
    rate = _bounded_argmax(
        lambda r: float(_borrower_utilities(game, np.full((1, n), r))[0]), low, high
    )
    return np.full(n, rate)


def _scipy_differentiated_rates(game: OneToManyGame) -> np.ndarray:
    """Maximize BU over one rate per lender by differential evolution (seeded, vectorized)."""
    low, high = game.rate_bounds("differentiated")

    def negative_utility(rates: np.ndarray, /) -> Any:
        # ``rates`` is (N, S): one column per member of the population.
        return -_borrower_utilities(game, np.atleast_2d(rates.T))

    result = differential_evolution(
        negative_utility,
        Bounds(low[0], high[0]),
        seed=SEED,
        popsize=20,
        maxiter=300,
        tol=1e-12,
        atol=0.0,
        polish=False,
        vectorized=True,
        updating="deferred",
    )
    return np.asarray(result.x)


# --------------------------------------------------------------------------------------------
# Offloading.


def run_offloading(quick: bool, repeats: int) -> dict[str, Any]:
    """Time asynchronous best response for one instance and for a batch, and compare with milp."""
    rows = []
    for n in OFFLOADING_QUICK if quick else OFFLOADING_SIZES:
        for batch in OFFLOADING_BATCHES:
            games = offloading_games(n, batch)
            timing = time_call(functools.partial(offloading.solve_nash, games), repeats)
            result = timing.result
            # The loop makes one pass per move of the slowest instance, and one more pass
            # that finds no improving device.
            passes = int(result.moves.max()) + 1
            rows.append(
                {
                    "instances": batch,
                    "n": n,
                    "seconds": timing.seconds,
                    "calls": timing.calls,
                    "max_moves": int(result.moves.max()),
                    "mean_moves": float(result.moves.mean()),
                    "converged": bool(result.converged.all()),
                    "seconds_per_pass": timing.seconds / passes,
                }
            )
    comparisons = [_compare_offloading(n) for n in (SCIPY_QUICK if quick else OFFLOADING_SCIPY)]
    return {
        "rows": rows,
        "orders": _orders(rows, "instances", "seconds_per_pass"),
        "total_time_orders": _orders(rows, "instances", "seconds"),
        "not_run": [],
        "scipy": comparisons,
    }


def _compare_offloading(n: int) -> dict[str, Any]:
    """Compare our equilibrium of one game with the potential's minimizer from scipy's milp."""
    game = offloading_games(n, 1)
    started = time.perf_counter()
    ours = offloading.solve_nash(game)
    our_seconds = time.perf_counter() - started
    started = time.perf_counter()
    profile = _potential_minimizer(game)
    seconds = time.perf_counter() - started
    minimum = float(offloading_model.potential(game, profile[None])[0])
    costs = offloading_model.device_costs(game, profile[None])
    deviations = offloading_model.deviation_costs(game, profile[None])
    tolerance = offloading.IMPROVEMENT_TOLERANCE
    is_equilibrium = bool(np.all(deviations.min(axis=2) >= costs * (1.0 - tolerance)))
    return {
        "n": n,
        "seconds": our_seconds,
        "scipy_seconds": seconds,
        "potential": float(ours.potential[0]),
        "scipy_potential": minimum,
        "relative_potential_gap": (float(ours.potential[0]) - minimum) / abs(minimum),
        "devices_with_other_action": int(np.sum(profile != ours.profile[0])),
        "scipy_profile_is_equilibrium": is_equilibrium,
    }


def _potential_minimizer(game: OffloadingGame) -> np.ndarray:
    """Minimize the weighted potential of instance 0 over all legal profiles with milp.

    Variables: z_ia in {0, 1}, device i takes action a (legal pairs only), and t_res >= 0
    per used resource. With n_res = sum over (i, a) of z_ia times the times res appears on
    route(i, a), and f_res(n) = alpha_res n (n + 1) / 2 + beta_res n:

        minimize    sum_res t_res + sum_ia (h_i(a) / w_i) z_ia
        subject to  sum_a z_ia = 1                                  for every device i
                    t_res >= f_res(m) + (f_res(m + 1) - f_res(m)) (n_res - m)
                                                     for m = 0, ..., (max load of res) - 1

    f_res is convex on the integers, so the largest of these lines equals f_res(n_res) at
    every integer load, and the optimum is the minimum of Phi.

    Returns:
        The minimizing profile, (N,) int64.
    """
    mask = game.action_mask[0]
    routes = game.topology.route_resources[0]
    padding = game.topology.n_resources
    alpha, beta = game.resource_alpha[0], game.resource_beta[0]
    pairs = np.argwhere(mask)
    n_pairs = len(pairs)
    pair_routes = routes[pairs[:, 0], pairs[:, 1]]  # (P, L)
    used = np.unique(pair_routes[pair_routes != padding])
    column = {int(resource): k for k, resource in enumerate(used)}
    usage = np.zeros((n_pairs, used.size))
    for p, route in enumerate(pair_routes):
        for resource in route[route != padding]:
            usage[p, column[int(resource)]] += 1.0

    n_variables = n_pairs + used.size
    weights = game.weights[0][pairs[:, 0]]
    objective = np.concatenate(
        [game.private_costs[0][pairs[:, 0], pairs[:, 1]] / weights, np.ones(used.size)]
    )
    rows, lower, upper = [], [], []
    for device in range(game.n_devices):
        row = np.zeros(n_variables)
        row[:n_pairs] = pairs[:, 0] == device
        rows.append(row)
        lower.append(1.0)
        upper.append(1.0)
    for k, resource in enumerate(used):
        # A device takes one action, so a resource's load is at most the number of devices
        # with some route through it.
        max_load = np.unique(pairs[usage[:, k] > 0, 0]).size
        for m in range(max_load):
            slope = _congestion(alpha[resource], beta[resource], m + 1) - _congestion(
                alpha[resource], beta[resource], m
            )
            row = np.zeros(n_variables)
            row[:n_pairs] = slope * usage[:, k]
            row[n_pairs + k] = -1.0
            rows.append(row)
            lower.append(-np.inf)
            upper.append(slope * m - _congestion(alpha[resource], beta[resource], m))
    integrality = np.concatenate([np.ones(n_pairs), np.zeros(used.size)])
    bounds = Bounds(
        np.zeros(n_variables), np.concatenate([np.ones(n_pairs), np.full(used.size, np.inf)])
    )
    result = milp(
        objective,
        constraints=LinearConstraint(np.array(rows), lower, upper),
        integrality=integrality,
        bounds=bounds,
        options={"mip_rel_gap": 0.0},
    )
    if not result.success:
        raise RuntimeError(
            f"scipy.optimize.milp failed to minimize the potential of an offloading game with "
            f"N={game.n_devices}: {result.message}"
        )
    chosen = result.x[:n_pairs] > 0.5
    profile = np.zeros(game.n_devices, dtype=np.int64)
    profile[pairs[chosen, 0]] = pairs[chosen, 1]
    return profile


def _congestion(alpha: float, beta: float, load: int) -> float:
    """Return f(n) = alpha n (n + 1) / 2 + beta n, a resource's term of the potential (s)."""
    return float(alpha * load * (load + 1) / 2 + beta * load)


# --------------------------------------------------------------------------------------------
# Report.


def _orders(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    """Fit the order of ``value`` in N for each value of ``key``."""
    orders = {}
    for name in dict.fromkeys(row[key] for row in rows):
        chosen = [row for row in rows if row[key] == name]
        orders[str(name)] = fit_order([row["n"] for row in chosen], [row[value] for row in chosen])
    return orders


def reference_kernel(repeats: int) -> list[dict[str, Any]]:
    """Time an elementwise numpy kernel like one best-response iteration, per element.

    The kernel sums N values, then takes a square root, a division, a clip and an
    exponential over them, as the lending solvers do. Its operation count is linear in N,
    so a rise of its time per element with N shows what the caches and memory of the
    machine add, and the solvers' fitted orders can be read against it.
    """
    rng = np.random.default_rng(SEED)
    rows = []
    for n in REFERENCE_SIZES:
        first = rng.random((1, n)) + 0.5
        second = rng.random((1, n)) + 0.5

        def kernel(a: np.ndarray = first, b: np.ndarray = second) -> np.ndarray:
            others = a.sum(axis=1, keepdims=True) - a
            x = np.clip(np.sqrt(others * others + b / a) - others, 0.1, 10.0)
            return x * np.exp(-x * b / a)

        timing = time_call(kernel, repeats)
        rows.append({"n": n, "seconds": timing.seconds, "seconds_per_element": timing.seconds / n})
    return rows


def machine() -> dict[str, Any]:
    """Describe the machine and the packages the timings ran with."""
    model_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "processor": model_name,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": metadata.version("numpy"),
        "scipy": metadata.version("scipy"),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _format_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-5:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e9:.0f} ns"


def print_report(report: dict[str, Any]) -> None:
    """Print the report as plain-text tables."""
    info = report["machine"]
    print(
        f"{info['processor']}, {info['cpu_count']} cores, {info['platform']}, Python "
        f"{info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, 1-min load "
        f"{info['load_average_1min']}"
    )
    print("reference kernel (time per element):", end="")
    for row in report.get("reference_kernel", []):
        print(f" N = {row['n']}: {row['seconds_per_element'] * 1e9:.1f} ns;", end="")
    print()
    sections = {
        "one_to_one": ("method", "iterations", "seconds_per_iteration", "time/iteration"),
        "one_to_many": (
            "solver",
            "follower_row_iterations",
            "seconds_per_follower_row_iteration",
            "time/row-iteration",
        ),
        "offloading": ("instances", "max_moves", "seconds_per_pass", "time/pass"),
    }
    for name, (key, count, per, per_label) in sections.items():
        if name not in report:
            continue
        section = report[name]
        print(f"\n== {name}")
        print(f"{key:<46} {'N':>9} {'time':>10} {count:>12} {per_label:>24}  converged")
        for row in section["rows"]:
            print(
                f"{row[key]!s:<46} {row['n']:>9} {_format_seconds(row['seconds']):>10} "
                f"{row[count]:>12} {_format_seconds(row[per]):>24}  {row['converged']}"
            )
        for label, orders in (
            (per_label, section["orders"]),
            ("total time", section.get("total_time_orders", {})),
        ):
            for solver, fit in orders.items():
                if fit is not None:
                    print(
                        f"order of {label}, {key} {solver}: N^{fit['order']:.2f} "
                        f"(fitted over N = {fit['from_n']} to {fit['to_n']})"
                    )
        for item in section["not_run"]:
            print(f"not run: {item['solver']} at N = {item['n']}: {item['reason']}")
        print("scipy comparison:")
        for line in _comparison_lines(name, section["scipy"]):
            print("  " + line)


def _comparison_lines(name: str, comparisons: list[dict[str, Any]]) -> list[str]:
    """Format the scipy comparisons of one market, one line per game."""
    lines = []
    for item in comparisons:
        if name == "one_to_one":
            differences = item["max_relative_rate_difference"]
            ours = item["seconds"]
            lines.append(
                f"N = {item['n']}: ours {_format_seconds(ours['best_response'])} "
                f"(best_response), {_format_seconds(ours['gradient'])} (gradient); scipy "
                f"{_format_seconds(item['scipy_seconds'])} in "
                f"{item['scipy_sweeps']} sweeps; max relative rate difference "
                f"{differences['best_response']:.1e} (best_response), "
                f"{differences['gradient']:.1e} (gradient)"
            )
        elif name == "one_to_many":
            lines.append(
                f"{item['pricing']} N = {item['n']}: ours {_format_seconds(item['seconds'])}; "
                f"lenders by scipy "
                f"{_format_seconds(item['scipy_follower_seconds'])}, max investment difference "
                f"{item['max_investment_difference_over_max_investment']:.1e} x_max; rates by "
                f"scipy {_format_seconds(item['scipy_leader_seconds'])}, max rate difference "
                f"{item['max_rate_difference']:.1e}, BU {item['borrower_utility']:.6f} (ours) "
                f"vs {item['scipy_borrower_utility']:.6f} (scipy)"
            )
        else:
            lines.append(
                f"N = {item['n']}: ours {_format_seconds(item['seconds'])}, milp "
                f"{_format_seconds(item['scipy_seconds'])}; potential "
                f"{item['potential']:.6f} (ours) vs {item['scipy_potential']:.6f} (minimum), "
                f"gap {item['relative_potential_gap']:.2%}; "
                f"{item['devices_with_other_action']} devices act differently; milp's "
                f"profile is an equilibrium: {item['scipy_profile_is_equilibrium']}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"calls per timing, the fastest kept (default {DEFAULT_REPEATS})",
    )
    parser.add_argument(
        "--markets",
        default=",".join(MARKETS),
        help=f"comma-separated solvers to run, from {', '.join(MARKETS)} (default all)",
    )
    args = parser.parse_args()
    markets = [name.strip() for name in args.markets.split(",") if name.strip()]
    unknown = sorted(set(markets) - set(MARKETS))
    if unknown:
        parser.error(f"unknown markets {unknown}; choose from {list(MARKETS)}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    runners = {
        "one_to_one": run_one_to_one,
        "one_to_many": run_one_to_many,
        "offloading": run_offloading,
    }
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "repeats": args.repeats}
    report["reference_kernel"] = reference_kernel(args.repeats)
    for name in markets:
        report[name] = runners[name](args.quick, args.repeats)
    report["wall_seconds"] = time.perf_counter() - started
    report["load_average_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
        print(
            f"\nwall time {_format_seconds(report['wall_seconds'])}, 1-min load at the end "
            f"{report['load_average_1min_at_end']}"
        )


if __name__ == "__main__":
    main()
