"""Stackelberg equilibrium of the lending market with one borrower and N investing lenders.

The borrower leads: it sets interest rates, one for all lenders (uniform pricing) or one per
lender (differentiated pricing), and the lenders respond with investments. The utilities are in
:mod:`ledgerzoo.envs.lending.model` (investor_utilities, raise_borrower_utility).

Stage II (lenders, a Nash game). With beta_i = sum_{j != i} x_j, LU_i is concave in x_i for
beta_i > 0, and dLU_i/dx_i = 0 gives

    x_i* = sqrt(w R (beta_i^2 + x_max,i beta_i + R beta_i) / (w R - x_max,i (r_i - r_min,i))) - beta_i

clipped to [0, x_max,i]. When w R <= x_max,i (r_i - r_min,i), the interest alone makes more
investment always better and x_i* = x_max,i. At beta_i = 0 the reward share jumps (any small
investment takes the whole reward), so all-zero is not an equilibrium: the iteration starts
from small positive investments, and a lender facing beta_i = 0 invests ``ZERO_BETA_INVESTMENT``
times its x_max. The equilibrium is reached by Jacobi best responses (all lenders at once,
which vectorizes over lenders and instances), with damped updates after
``JACOBI_ITERATIONS`` if an instance has not converged by then.

Stage I (borrower). BU(r) with the lenders' equilibrium inside. A raise fails when the
lenders' total is at most X - 1 (BU is undefined there); the search keeps to rates whose
raise succeeds. Uniform pricing has one variable r in [max_i r_min,i, r_max]: a grid search
refined by golden section. Under differentiated pricing the optimum usually sits at a kink,
where some lender's best response reaches x_max,i, so the reference search is kink-aware:
coordinate ascent over each r_i whose candidates include the kink rate of lender i, with
golden-section refinement between grid points, from several starts (the uniform optimum,
every rate at its minimum, the middle of the box and seeded random points), all starts of
all instances searched at once as rows of one batch.
Every uniform choice is feasible for differentiated pricing, so its optimum is never below
the uniform one. NOTE: each sweep of the differentiated search solves the lenders' equilibrium O(N) times, at
O(N) per iteration. It took about 7 s for 64 instances at N = 5 and about 13 s for one
instance at N = 50 on a 2-core machine (measured, not a bound).

The source's method, gradient ascent on r with
dBU/dr_i = psi_i eta / (alpha - X + 1) - (x_i + psi_i r_i), alpha = sum_j x_j and
psi_i = dx_i/dr_i of the closed form (it treats dx_i/dr_j = 0 for j != i and ignores the
kinks), is offered as ``method="psi"`` and compared against the reference in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ledgerzoo.envs.core.rows import row_all, row_sum
from ledgerzoo.envs.lending.model import investor_utility_against, raise_borrower_utility

Pricing = Literal["uniform", "differentiated"]
PRICINGS: tuple[str, ...] = ("uniform", "differentiated")
LEADER_METHODS: tuple[str, ...] = ("reference", "psi")

# The borrower's utility of a failed raise unless a game sets one (coins).
DEFAULT_FAILURE_UTILITY = -50.0
# A lender whose rivals invest nothing invests this fraction of its x_max: any positive
# investment takes the whole reward, and the best response is not attained at 0.
ZERO_BETA_INVESTMENT = 1e-6
# Investments every equilibrium iteration starts from, as a fraction of x_max.
START_INVESTMENT = 1e-3
JACOBI_ITERATIONS = 200
FOLLOWER_TOLERANCE = 1e-12
# Ulps of the lenders' total investment that the follower iteration's stopping test treats as
# rounding noise in each lender's change (see investor_equilibrium).
ROUNDING_ULPS = 8.0
FOLLOWER_MAX_ITERATIONS = 5_000
# Uniform pricing: grid points over the rate interval, then golden-section iterations.
UNIFORM_GRID_POINTS = 257
GOLDEN_ITERATIONS = 60
# Differentiated pricing: points of each coordinate's grid, sweeps, and random starts.
COORDINATE_GRID_POINTS = 65
COORDINATE_SWEEPS = 8
RANDOM_STARTS = 4
# Utility given to infeasible rates inside the leader's search (never returned).
INFEASIBLE = -np.inf


@dataclass(frozen=True)
class OneToManyGame:
    """Parameters of B instances of the one-to-many lending game.

    Attributes:
        min_rate: r_min,i, each lender's minimum rate, (B, N), in (0, r_max).
        max_investment: x_max,i, each lender's largest investment (coins), (B, N), > 0.
        max_rate: r_max, (B,).
        reward: R, the reward shared by investment (coins), (B,), > 0.
        weight: w, the lenders' willingness weight, (B,), > 0.
        valuation: eta, the borrower's valuation of funds (coins), (B,), > 0.
        target: X, the amount to raise (coins), (B,), >= 0.
        failure_utility: BU of a failed raise (coins).
    """

    min_rate: np.ndarray
    max_investment: np.ndarray
    max_rate: np.ndarray
    reward: np.ndarray
    weight: np.ndarray
    valuation: np.ndarray
    target: np.ndarray
    failure_utility: float

    @classmethod
    def from_values(
        cls,
        min_rate: Any,
        max_investment: Any,
        max_rate: Any,
        reward: Any,
        weight: Any,
        valuation: Any,
        target: Any,
        failure_utility: float = DEFAULT_FAILURE_UTILITY,
    ) -> OneToManyGame:
        """Build a game from arrays or lists: per-lender values (N,) or (B, N), per-instance
        values scalars or (B,).

        Raises:
            ValueError: If a value has the wrong shape or is outside the game's scope (see
                :meth:`validate`).
        """
        min_rate = np.atleast_2d(np.asarray(min_rate, dtype=np.float64))
        if min_rate.ndim != 2:
            raise ValueError(f"min_rate must have shape (N,) or (B, N), got shape {min_rate.shape}")
        batch = min_rate.shape[0]
        max_investment = _broadcast_value("max_investment", max_investment, min_rate.shape)

        def per_instance(value: Any, name: str) -> np.ndarray:
            return _broadcast_value(name, value, (batch,))

        game = cls(
            min_rate,
            max_investment,
            per_instance(max_rate, "max_rate"),
            per_instance(reward, "reward"),
            per_instance(weight, "weight"),
            per_instance(valuation, "valuation"),
            per_instance(target, "target"),
            float(failure_utility),
        )
        game.validate()
        return game

    @property
    def batch_size(self) -> int:
        """Number of instances B."""
        return int(self.min_rate.shape[0])

    @property
    def n_lenders(self) -> int:
        """Number of lenders N."""
        return int(self.min_rate.shape[1])

    def validate(self) -> None:
        """Check the game's scope; each error names the offending value."""
        values = {
            "min_rate": self.min_rate,
            "max_investment": self.max_investment,
            "max_rate": self.max_rate,
            "reward": self.reward,
            "weight": self.weight,
            "valuation": self.valuation,
            "target": self.target,
        }
        for name, value in values.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite, got {value}")
        for name in ("min_rate", "max_investment", "reward", "weight", "valuation"):
            if np.any(values[name] <= 0.0):
                raise ValueError(f"{name} must be above 0, got {values[name]}")
        if np.any(self.target < 0.0):
            raise ValueError(f"target X must be at least 0, got {self.target}")
        if np.any(self.min_rate >= self.max_rate[:, None]):
            raise ValueError(
                f"every min_rate must be below max_rate={self.max_rate}, got {self.min_rate}"
            )
        if not np.isfinite(self.failure_utility):
            raise ValueError(f"failure_utility must be finite, got {self.failure_utility}")

    def instance(self, index: int) -> OneToManyGame:
        """Return the game of one instance, as a batch of one."""
        part = slice(index, index + 1)
        return OneToManyGame(
            self.min_rate[part],
            self.max_investment[part],
            self.max_rate[part],
            self.reward[part],
            self.weight[part],
            self.valuation[part],
            self.target[part],
            self.failure_utility,
        )

    def rate_bounds(self, pricing: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the lowest and highest rate of each lender under a pricing rule, (B, N) each.

        Under uniform pricing one rate applies to all, so it lies in [max_i r_min,i, r_max].
        """
        high = np.broadcast_to(self.max_rate[:, None], self.min_rate.shape)
        if pricing == "uniform":
            low = np.broadcast_to(self.min_rate.max(axis=1, keepdims=True), self.min_rate.shape)
            return low, high
        return self.min_rate, high


@dataclass(frozen=True)
class InvestorEquilibrium:
    """The lenders' Nash equilibrium for given rates.

    Attributes:
        investments: x* (coins), (B, N).
        iterations: Iterations each instance needed, (B,).
        converged: Whether each instance met the tolerance, (B,).
    """

    investments: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


@dataclass(frozen=True)
class OneToManyEquilibrium:
    """The Stackelberg equilibrium of B one-to-many lending games.

    Attributes:
        rates: The borrower's optimal rates r*, (B, N) (equal entries under uniform pricing).
        investments: The lenders' equilibrium investments x* (coins), (B, N).
        lender_utilities: LU* (coins), (B, N).
        borrower_utility: BU* (coins), (B,).
        feasible: Whether the raise succeeds at r*, (B,).
        welfare: sum of LU* and BU* (coins), (B,).
        iterations: Leader-search evaluations of BU (reference) or gradient steps (psi), (B,).
        converged: Whether the lenders' equilibrium at r* converged, (B,).
        pricing: ``"uniform"`` or ``"differentiated"``.
        method: ``"reference"`` or ``"psi"``.
    """

    rates: np.ndarray
    investments: np.ndarray
    lender_utilities: np.ndarray
    borrower_utility: np.ndarray
    feasible: np.ndarray
    welfare: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    pricing: str
    method: str

    def to_dict(self, index: int = 0) -> dict[str, Any]:
        """Return one instance's equilibrium as plain Python values (for JSON)."""
        return {
            "method": self.method,
            "pricing": self.pricing,
            "rates": self.rates[index].tolist(),
            "investments": self.investments[index].tolist(),
            "lender_utilities": self.lender_utilities[index].tolist(),
            "borrower_utility": float(self.borrower_utility[index]),
            "feasible": bool(self.feasible[index]),
            "welfare": float(self.welfare[index]),
            "iterations": int(self.iterations[index]),
            "converged": bool(self.converged[index]),
        }


# --------------------------------------------------------------------------------------------
# Stage II: the lenders.


def investor_best_response(
    others_investment: np.ndarray,
    rates: np.ndarray,
    game: OneToManyGame,
    budget: np.ndarray | None = None,
) -> np.ndarray:
    """Compute each lender's best-response investment to the others' total (closed form).

    Args:
        others_investment: beta_i = sum_{j != i} x_j (coins), (B, N).
        rates: r (B, N).
        game: The game.
        budget: Coins each lender can lend at most, (B, N), or None (no limit). LU_i is
            concave in x_i, so the best response under a budget is the free one capped by it.

    Returns:
        x_i* in [0, min(x_max,i, budget_i)] (coins), (B, N).
    """
    terms = _ResponseTerms.of(rates, game, budget)
    return terms.best_response(others_investment)


@dataclass(frozen=True)
class _ResponseTerms:
    """The parts of the lenders' closed-form best response that do not depend on beta.

    A Jacobi iteration evaluates the best response many times at the same rates, so these
    terms are computed once. :meth:`take` keeps the rows of the instances still iterating.
    """

    x_max: np.ndarray  # (B, N)
    reward: np.ndarray  # R, (B, 1)
    scaled_reward: np.ndarray  # w R, (B, 1)
    interest_dominates: np.ndarray  # w R <= x_max (r - r_min): x_max is best, (B, N)
    denominator: np.ndarray  # w R - x_max (r - r_min), 1 where interest dominates, (B, N)
    budget: np.ndarray | None  # (B, N)

    @classmethod
    def of(
        cls, rates: np.ndarray, game: OneToManyGame, budget: np.ndarray | None
    ) -> _ResponseTerms:
        x_max = game.max_investment
        reward = game.reward[:, None]
        scaled_reward = game.weight[:, None] * reward  # w R
        denominator = scaled_reward - x_max * (rates - game.min_rate)
        interest_dominates = denominator <= 0.0
        return cls(
            x_max=x_max,
            reward=reward,
            scaled_reward=scaled_reward,
            interest_dominates=interest_dominates,
            denominator=np.where(interest_dominates, 1.0, denominator),
            budget=budget,
        )

    def take(self, rows: np.ndarray) -> _ResponseTerms:
        """Return the terms of the given instances (row indices)."""
        return _ResponseTerms(
            x_max=self.x_max[rows],
            reward=self.reward[rows],
            scaled_reward=self.scaled_reward[rows],
            interest_dominates=self.interest_dominates[rows],
            denominator=self.denominator[rows],
            budget=None if self.budget is None else self.budget[rows],
        )

    def best_response(self, beta: np.ndarray) -> np.ndarray:
        """Best responses x_i* to the others' totals beta_i (see :func:`investor_best_response`)."""
        x_max = self.x_max
        numerator = self.scaled_reward * (beta * beta + x_max * beta + self.reward * beta)
        root = np.sqrt(numerator / self.denominator) - beta
        interior = np.clip(root, 0.0, x_max)
        interior = np.where(beta > 0.0, interior, ZERO_BETA_INVESTMENT * x_max)
        response = np.where(self.interest_dominates, x_max, interior)
        return response if self.budget is None else np.minimum(response, self.budget)


def investor_equilibrium(
    rates: np.ndarray,
    game: OneToManyGame,
    *,
    tol: float = FOLLOWER_TOLERANCE,
    max_iterations: int = FOLLOWER_MAX_ITERATIONS,
    budget: np.ndarray | None = None,
) -> InvestorEquilibrium:
    """Compute the lenders' Nash equilibrium for given rates by Jacobi best responses.

    Each iteration updates only the instances that have not converged yet. An instance stops
    at the first iteration whose largest change is within the tolerance. The arrays are then
    cut down to the other instances, so later iterations cost only what is left.

    Args:
        rates: r (B, N), inside each lender's rate interval.
        game: The game.
        budget: Coins each lender can lend at most, (B, N), or None (no limit); each best
            response is capped by it (see :func:`investor_best_response`).
        tol: Stop when the largest change of an investment relative to x_max falls below this.
        max_iterations: Iteration cap; instances beyond it have ``converged`` False.

    Returns:
        The investments, iterations and convergence flags.
    """
    investments = START_INVESTMENT * game.max_investment
    if budget is not None:
        investments = np.minimum(investments, budget)
    iterations = np.zeros(game.batch_size, dtype=np.int64)
    converged = np.zeros(game.batch_size, dtype=bool)
    # The instances still iterating, their investments and their best-response terms.
    rows = np.arange(game.batch_size)
    current = investments.copy()
    terms = _ResponseTerms.of(rates, game, budget)
    for iteration in range(1, max_iterations + 1):
        if rows.size == 0:
            break
        total = row_sum(current)[:, None]
        others = total - current
        response = terms.best_response(others)
        change = response - current
        # max_i |change_i| / x_max,i <= tol, which is False for NaN as np.max would give. The
        # others' sum total - x_i carries a rounding error of about eps * total, which moves
        # each response by as much. With many lenders that noise exceeds tol * x_max, so the
        # test discounts it, or the iteration would run to its cap.
        noise = ROUNDING_ULPS * np.finfo(np.float64).eps * total
        settled = row_all((np.abs(change) - noise) / terms.x_max <= tol)
        # Damping after JACOBI_ITERATIONS breaks a two-cycle of simultaneous updates. The
        # undamped step adds the change itself: 1.0 * change would give the same bits.
        step = change if iteration <= JACOBI_ITERATIONS else 0.5 * change
        current = current + step
        iterations[rows] = iteration
        if settled.any():
            done = rows[settled]
            investments[done] = current[settled]
            converged[done] = True
            keep = ~settled
            rows, current, terms = rows[keep], current[keep], terms.take(keep)
    investments[rows] = current
    return InvestorEquilibrium(investments, iterations, converged)


def investor_best_response_utilities(
    investments: np.ndarray,
    rates: np.ndarray,
    game: OneToManyGame,
    budget: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute each lender's best response and its utility against the others' actual investments.

    Keeping the actual investment is one of the options, so the utility is never below the
    actual one. ``budget`` caps each best response (see :func:`investor_best_response`).

    Returns:
        Best-response investments (B, N) and their utilities (B, N), coins.
    """
    others = investments.sum(axis=1, keepdims=True) - investments
    response = investor_best_response(others, rates, game, budget)
    best = investor_utility_against_game(response, others, rates, game)
    actual = investor_utility_against_game(investments, others, rates, game)
    keep = actual > best
    return np.where(keep, investments, response), np.where(keep, actual, best)


# --------------------------------------------------------------------------------------------
# Stage I: the borrower.


def borrower_utility_at(
    rates: np.ndarray, game: OneToManyGame
) -> tuple[np.ndarray, np.ndarray, InvestorEquilibrium]:
    """Compute the borrower's utility at rates, with the lenders' equilibrium inside.

    Returns:
        BU (coins, the failure utility where the raise fails), (B,); whether the raise
        succeeds, (B,); and the lenders' equilibrium.
    """
    followers = investor_equilibrium(rates, game)
    utility, feasible = raise_borrower_utility(
        followers.investments,
        rates,
        game.target,
        game.reward,
        game.valuation,
        game.failure_utility,
    )
    return utility, feasible, followers


def solve(
    game: OneToManyGame,
    pricing: str = "uniform",
    method: str = "reference",
    *,
    seed: int = 0,
) -> OneToManyEquilibrium:
    """Compute the borrower's optimal rates and the lenders' equilibrium response.

    Args:
        game: B instances of the game.
        pricing: ``"uniform"`` (one rate) or ``"differentiated"`` (one rate per lender).
        method: ``"reference"`` (the searches of the module docstring) or ``"psi"`` (the
            source's gradient ascent, differentiated pricing only).
        seed: Seed of the random starts of the differentiated search.

    Returns:
        The equilibrium of every instance.

    Raises:
        ValueError: For an unknown pricing or method, or psi with uniform pricing.
    """
    if pricing not in PRICINGS:
        raise ValueError(f"unknown pricing {pricing!r}; expected one of {list(PRICINGS)}")
    if method not in LEADER_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(LEADER_METHODS)}")
    game.validate()
    if method == "psi":
        if pricing != "differentiated":
            raise ValueError(
                "the psi gradient method applies only to differentiated pricing; use "
                "method='reference' (--method reference on the command line) for uniform pricing"
            )
        rates, evaluations = _psi_ascent(game)
    elif pricing == "uniform":
        rates, evaluations = _uniform_search(game)
    else:
        rates, evaluations = _differentiated_search(game, seed)
    return equilibrium_at(rates, game, pricing, method, evaluations)


def equilibrium_at(
    rates: np.ndarray,
    game: OneToManyGame,
    pricing: str,
    method: str,
    iterations: np.ndarray,
) -> OneToManyEquilibrium:
    """Package the outcome at the borrower's rates as an equilibrium result."""
    utility, feasible, followers = borrower_utility_at(rates, game)
    lenders = investor_utility_against_game(
        followers.investments,
        followers.investments.sum(axis=1, keepdims=True) - followers.investments,
        rates,
        game,
    )
    return OneToManyEquilibrium(
        rates=rates,
        investments=followers.investments,
        lender_utilities=lenders,
        borrower_utility=utility,
        feasible=feasible,
        welfare=lenders.sum(axis=1) + utility,
        iterations=iterations,
        converged=followers.converged,
        pricing=pricing,
        method=method,
    )


def kink_rates(investments: np.ndarray, game: OneToManyGame) -> np.ndarray:
    """Compute each lender's kink rate: the lowest r_i at which its best response reaches x_max,i.

    From x_i* = x_max,i with the others' total beta_i held fixed:
    r_i - r_min,i = w R (x_max^2 + x_max beta - R beta) / (x_max (x_max + beta)^2), and at
    most w R / x_max (where the interest alone makes x_max best). Returned clipped to
    [r_min,i, r_max].

    Args:
        investments: The others' investments are read from it (coins), (B, N).
        game: The game.

    Returns:
        Kink rates, (B, N).
    """
    x_max = game.max_investment
    beta = investments.sum(axis=1, keepdims=True) - investments
    scaled_reward = (game.weight * game.reward)[:, None]
    reward = game.reward[:, None]
    margin = scaled_reward * (x_max * x_max + x_max * beta - reward * beta)
    margin = margin / (x_max * (x_max + beta) ** 2)
    margin = np.minimum(margin, scaled_reward / x_max)
    return np.clip(game.min_rate + margin, game.min_rate, game.max_rate[:, None])


# --------------------------------------------------------------------------------------------


def investor_utility_against_game(
    investments: np.ndarray, others: np.ndarray, rates: np.ndarray, game: OneToManyGame
) -> np.ndarray:
    """Compute LU_i of investments (B, N) against the others' totals (B, N) in a game."""
    return investor_utility_against(
        investments,
        others,
        rates,
        game.min_rate,
        game.max_investment,
        game.reward[:, None],
        game.weight[:, None],
    )


def _broadcast_value(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a game value to ``shape`` as float64, naming the value when the shapes clash."""
    array = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(array, shape).copy()
    except ValueError:
        raise ValueError(
            f"{name} must broadcast to shape {shape}, got shape {array.shape}: {value!r}"
        ) from None


def _search_utility(rates: np.ndarray, game: OneToManyGame) -> np.ndarray:
    """BU for the leader's search: infeasible rates score -inf so the search avoids them."""
    utility, feasible, _ = borrower_utility_at(rates, game)
    return np.where(feasible, utility, INFEASIBLE)


def _tile(game: OneToManyGame, copies: int) -> OneToManyGame:
    """Repeat every instance ``copies`` times (instance b becomes rows b*copies ...)."""

    def rows(value: np.ndarray) -> np.ndarray:
        return np.repeat(value, copies, axis=0)

    return OneToManyGame(
        rows(game.min_rate),
        rows(game.max_investment),
        rows(game.max_rate),
        rows(game.reward),
        rows(game.weight),
        rows(game.valuation),
        rows(game.target),
        game.failure_utility,
    )


def _uniform_search(game: OneToManyGame) -> tuple[np.ndarray, np.ndarray]:
    """Maximize BU over one common rate: a grid, then golden section in the best bracket."""
    batch, n = game.batch_size, game.n_lenders
    low = game.min_rate.max(axis=1)
    high = game.max_rate
    fractions = np.linspace(0.0, 1.0, UNIFORM_GRID_POINTS)
    grid = low[:, None] + fractions * (high - low)[:, None]  # (B, G)
    tiled = _tile(game, UNIFORM_GRID_POINTS)
    values = _search_utility(np.repeat(grid.reshape(-1, 1), n, axis=1), tiled).reshape(batch, -1)
    best = np.argmax(values, axis=1)
    best_rate = grid[np.arange(batch), best]
    best_value = values[np.arange(batch), best]
    a = grid[np.arange(batch), np.maximum(best - 1, 0)]
    b = grid[np.arange(batch), np.minimum(best + 1, UNIFORM_GRID_POINTS - 1)]
    inverse_golden = (np.sqrt(5.0) - 1.0) / 2.0
    pair_game = _tile(game, 2)
    for _ in range(GOLDEN_ITERATIONS):
        c = b - inverse_golden * (b - a)
        d = a + inverse_golden * (b - a)
        candidates = np.stack([c, d], axis=1).reshape(-1, 1)
        pair = _search_utility(np.repeat(candidates, n, axis=1), pair_game).reshape(batch, 2)
        keep_left = pair[:, 0] >= pair[:, 1]
        b = np.where(keep_left, d, b)
        a = np.where(keep_left, a, c)
    refined = 0.5 * (a + b)
    refined_value = _search_utility(np.repeat(refined[:, None], n, axis=1), game)
    rate = np.where(refined_value > best_value, refined, best_rate)
    evaluations = np.full(batch, UNIFORM_GRID_POINTS + 2 * GOLDEN_ITERATIONS + 1)
    return np.repeat(rate[:, None], n, axis=1), evaluations


def _differentiated_search(game: OneToManyGame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximize BU over one rate per lender: kink-aware coordinate ascent from several starts.

    Every start of every instance is searched at once, as rows of one batch. For each lender in
    turn, a grid over its rate interval plus its kink rate is evaluated, and the best point is
    refined by golden section within its grid bracket (or kept, at a kink). Sweeps repeat until
    no rate improves BU.
    """
    batch, n = game.batch_size, game.n_lenders
    uniform_rates, _ = _uniform_search(game)
    low, high = game.rate_bounds("differentiated")
    rng = np.random.default_rng(seed)
    starts = [uniform_rates, low.copy(), 0.5 * (low + high)]
    starts += [rng.uniform(low, high) for _ in range(RANDOM_STARTS)]
    copies = len(starts)
    rates = np.stack(starts, axis=1).reshape(batch * copies, n)  # row b * copies + s
    tiled = _tile(game, copies)
    value = _search_utility(rates, tiled)
    evaluations = np.ones(batch * copies, dtype=np.int64)
    # NOTE: with 20 or more lenders the search often reaches COORDINATE_SWEEPS while BU still
    # improves (benchmarks/solver_scaling.py), so its BU is then a lower bound on the optimum.
    for _ in range(COORDINATE_SWEEPS):
        before = value.copy()
        for i in range(n):
            rates, value, used = _coordinate_step(tiled, rates, value, i)
            evaluations += used
        # A start whose raise fails everywhere keeps BU = -inf, and -inf + inf would be NaN.
        slack = 1e-12 * np.abs(np.where(np.isfinite(before), before, 0.0))
        if np.all(value <= before + slack):
            break
    best = np.argmax(value.reshape(batch, copies), axis=1)
    chosen = rates.reshape(batch, copies, n)[np.arange(batch), best]
    return chosen, evaluations.reshape(batch, copies).sum(axis=1)


def _coordinate_step(
    game: OneToManyGame, rates: np.ndarray, value: np.ndarray, i: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Improve lender i's rate in every row: grid plus kink rate, then golden section."""
    rows, points = game.batch_size, COORDINATE_GRID_POINTS
    low = game.min_rate[:, i]
    high = game.max_rate
    _, _, followers = borrower_utility_at(rates, game)
    kink = kink_rates(followers.investments, game)[:, i]
    grid = low[:, None] + np.linspace(0.0, 1.0, points) * (high - low)[:, None]
    candidates = np.concatenate([grid, kink[:, None]], axis=1)  # (rows, points + 1)
    trial = np.repeat(rates[:, None, :], points + 1, axis=1)
    trial[:, :, i] = candidates
    values = _search_utility(trial.reshape(-1, game.n_lenders), _tile(game, points + 1))
    values = values.reshape(rows, points + 1)
    best = np.argmax(values, axis=1)
    best_rate = candidates[np.arange(rows), best]
    best_value = values[np.arange(rows), best]

    # Golden section inside the bracket of the best grid point (the kink needs none).
    on_grid = best < points
    index = np.minimum(best, points - 1)
    a = grid[np.arange(rows), np.maximum(index - 1, 0)]
    b = grid[np.arange(rows), np.minimum(index + 1, points - 1)]
    inverse_golden = (np.sqrt(5.0) - 1.0) / 2.0
    pair_game = _tile(game, 2)
    for _ in range(GOLDEN_ITERATIONS // 2):
        c = b - inverse_golden * (b - a)
        d = a + inverse_golden * (b - a)
        pair = np.repeat(rates[:, None, :], 2, axis=1)
        pair[:, 0, i], pair[:, 1, i] = c, d
        pair_values = _search_utility(pair.reshape(-1, game.n_lenders), pair_game).reshape(rows, 2)
        keep_left = pair_values[:, 0] >= pair_values[:, 1]
        b = np.where(keep_left, d, b)
        a = np.where(keep_left, a, c)
    refined = rates.copy()
    refined[:, i] = 0.5 * (a + b)
    refined_value = _search_utility(refined, game)
    use_refined = on_grid & (refined_value > best_value)
    best_rate = np.where(use_refined, refined[:, i], best_rate)
    best_value = np.where(use_refined, refined_value, best_value)

    improve = best_value > value
    new_rates = rates.copy()
    new_rates[:, i] = np.where(improve, best_rate, rates[:, i])
    used = points + 2 + 2 * (GOLDEN_ITERATIONS // 2) + 1
    return new_rates, np.where(improve, best_value, value), used


def _psi_ascent(
    game: OneToManyGame, *, step: float = 1e-3, tol: float = 1e-10, max_iterations: int = 5_000
) -> tuple[np.ndarray, np.ndarray]:
    """Run the source's gradient ascent on the rates, with dx_i/dr_i = psi_i and dx_i/dr_j = 0.

    Each lender's rate moves by ``step`` times its psi gradient, halved while BU does not rise,
    projected onto [r_min,i, r_max]; it stops when no halving raises BU or the step is below
    ``tol``. Starts from every rate at its minimum.
    """
    low, high = game.rate_bounds("differentiated")
    rates = low.copy()
    utility = _search_utility(rates, game)
    iterations = np.zeros(game.batch_size, dtype=np.int64)
    active = np.ones(game.batch_size, dtype=bool)
    for iteration in range(1, max_iterations + 1):
        gradient = _psi_gradient(rates, game)
        scale = np.full(game.batch_size, step)
        moved = np.zeros(game.batch_size, dtype=bool)
        for _ in range(30):
            trial = np.clip(rates + scale[:, None] * gradient, low, high)
            trial_utility = _search_utility(trial, game)
            better = active & ~moved & (trial_utility > utility)
            rates = np.where(better[:, None], trial, rates)
            utility = np.where(better, trial_utility, utility)
            moved |= better
            scale = np.where(moved, scale, 0.5 * scale)
            if (moved | ~active).all():
                break
        iterations[active] = iteration
        small = np.max(np.abs(scale[:, None] * gradient), axis=1) < tol
        active &= moved & ~small
        if not active.any():
            break
    return rates, iterations


def _psi_gradient(rates: np.ndarray, game: OneToManyGame) -> np.ndarray:
    """dBU/dr_i = psi_i eta / (alpha - X + 1) - (x_i + psi_i r_i), the source's gradient."""
    followers = investor_equilibrium(rates, game)
    x = followers.investments
    x_max = game.max_investment
    beta = x.sum(axis=1, keepdims=True) - x
    scaled_reward = (game.weight * game.reward)[:, None]
    reward = game.reward[:, None]
    denominator = scaled_reward - x_max * (rates - game.min_rate)
    interior = (denominator > 0.0) & (x > 0.0) & (x < x_max)
    safe = np.where(interior, denominator, 1.0)
    psi = (
        x_max
        * np.sqrt(scaled_reward * (beta**2 + x_max * beta + reward * beta))
        / (2.0 * safe**1.5)
    )
    psi = np.where(interior, psi, 0.0)
    surplus = x.sum(axis=1, keepdims=True) - game.target[:, None] + 1.0
    marginal = np.divide(
        game.valuation[:, None], surplus, out=np.zeros_like(surplus), where=surplus > 0.0
    )
    return psi * marginal - (x + psi * rates)
