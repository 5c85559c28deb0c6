"""Stackelberg equilibrium of the lending market with one borrower and N competing lenders.

Stage II (borrower): x_i* = d_i y_i, clipped to the loan bounds (model.borrower_best_response).
Stage I (lenders): each lender maximizes LU_i(y_i; y_-i) with the borrower's response inside.
With slack loan bounds, dLU_i/dy_i = 0 is the quadratic r_min,i y^2 + 2 beta_i r_min,i y -
beta_i = 0, whose positive root is

    y_i* = sqrt(beta_i^2 + beta_i / r_min,i) - beta_i,   clipped to [1 / r_max, 1 / r_min,i],

with beta_i = sum_{j != i} (d_j / d_i) y_j. (The source prints the root as
sqrt(beta^2 + 1/r_min) beta - beta; the form above is the correct root, and the tests check it
against a numeric maximization of LU_i.) When a scenario sets loan bounds that bind, that root
is no longer the best response and the solver maximizes the clipped LU_i numerically in one
dimension instead.

The equilibrium is the fixed point of the lenders' best responses. Two methods are offered:

- ``"best_response"``: Jacobi iteration of the best responses, all lenders at once, O(N) per
  iteration because sum_{j != i} BU_j = sum_j BU_j - BU_i. In the symmetric game the Jacobi map
  contracts by 1 / (2N) near the fixed point. With binding loan bounds Jacobi updates can
  cycle, so an instance that has not converged after ``JACOBI_ITERATIONS`` continues with
  Gauss-Seidel sweeps (lender 0 first), and the reference is the equilibrium those reach.
- ``"gradient"``: the source's Algorithm 1, projected gradient ascent on every lender's price.
  The printed rule (one fixed step mu, a stop on the relative step) stops short or diverges, so
  each lender's step is scaled by the curvature of its own utility (mu_i = 1 / |d2LU_i/dy_i2|, a
  Newton step), halved while it does not raise LU_i, projected onto [1 / r_max, 1 / r_min,i],
  and the iteration stops when the largest curvature-scaled projected gradient, relative to the
  price, falls below ``tol``. It needs slack loan bounds.

With N = 1 there is no competitor (beta = 0): LU_1 falls with the price, so the lone lender's
rate sits at r_max. Rates at r_max are reported in ``at_max_rate``; they are legal but not an
interior equilibrium.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ledgerzoo.envs.core.rows import row_sum
from ledgerzoo.envs.lending.model import (
    borrower_best_response,
    borrower_utilities,
    lender_utilities_given,
    lender_utility_against,
    lender_utility_gradient,
    optimal_lender,
    prices_from_rates,
)

Method = Literal["best_response", "gradient"]
METHODS: tuple[str, ...] = ("best_response", "gradient")

# Numeric best response when loan bounds bind: a geometric grid over the price interval, then
# golden-section refinement inside the bracket around the best grid point.
GRID_POINTS = 257
GOLDEN_ITERATIONS = 80
# Largest number of candidate prices (instances x lenders x grid points) the numeric best
# response evaluates at once. The search keeps about 8 float64 arrays of that many entries
# alive (measured with tracemalloc at N = 1000 and 10^4), so at most about 64 MiB.
NUMERIC_CHUNK_ENTRIES = 1 << 20
# Smallest tolerance the best-response iteration uses when the best response is numeric: a
# golden-section search locates a smooth maximum to about sqrt(machine epsilon).
NUMERIC_TOLERANCE = 1e-7
# Jacobi iterations after which the best-response method switches to Gauss-Seidel sweeps when
# loan bounds bind. A best response that jumps between pieces of the clipped utility can make
# simultaneous updates cycle. NOTE: sequential sweeps are not proven to converge either, and
# an instance that still moves at max_iterations is reported with converged False.
JACOBI_ITERATIONS = 50
# Halvings of a lender's gradient step before the gradient method keeps it anyway.
MAX_STEP_HALVINGS = 30


@dataclass(frozen=True)
class OneToOneGame:
    """Parameters of B instances of the one-to-one lending game.

    Attributes:
        willingness: d, the borrower's willingness towards each lender, (B, N), > 0.
        min_rate: r_min, each lender's minimum lending rate, (B, N), in (0, r_max).
        max_rate: r_max, the cap on every rate, (B,).
        min_loan: x_min, the smallest loan (coins), (B,); 0 leaves it slack.
        max_loan: x_max, the largest loan from each lender (coins), (B, N); inf leaves it slack.
    """

    willingness: np.ndarray
    min_rate: np.ndarray
    max_rate: np.ndarray
    min_loan: np.ndarray
    max_loan: np.ndarray

    @classmethod
    def from_values(
        cls,
        willingness: Any,
        min_rate: Any,
        max_rate: Any,
        min_loan: Any = 0.0,
        max_loan: Any = np.inf,
    ) -> OneToOneGame:
        """Build a game from arrays or lists, broadcasting and checking them.

        ``willingness`` and ``min_rate`` are (N,) for one instance or (B, N); ``max_rate`` and
        ``min_loan`` are scalars or (B,); ``max_loan`` is a scalar, (N,) or (B, N).

        Raises:
            ValueError: If a value is not finite where it must be, d <= 0, r_min <= 0,
                r_min >= r_max, x_min < 0 or x_max < x_min. The message names the value.
        """
        willingness = np.atleast_2d(np.asarray(willingness, dtype=np.float64))
        min_rate = np.atleast_2d(np.asarray(min_rate, dtype=np.float64))
        if willingness.shape != min_rate.shape:
            raise ValueError(
                f"willingness has shape {willingness.shape} but min_rate has shape "
                f"{min_rate.shape}; give one value per lender for both"
            )
        batch = willingness.shape[0]
        max_rate = np.broadcast_to(np.asarray(max_rate, dtype=np.float64), (batch,)).copy()
        min_loan = np.broadcast_to(np.asarray(min_loan, dtype=np.float64), (batch,)).copy()
        max_loan = np.broadcast_to(np.asarray(max_loan, dtype=np.float64), willingness.shape).copy()
        game = cls(willingness, min_rate, max_rate, min_loan, max_loan)
        game.validate()
        return game

    @property
    def batch_size(self) -> int:
        """Number of instances B."""
        return int(self.willingness.shape[0])

    @property
    def n_lenders(self) -> int:
        """Number of lenders N."""
        return int(self.willingness.shape[1])

    @property
    def loan_bounds_slack(self) -> bool:
        """Whether no loan bound is set (x_min = 0 and x_max = inf everywhere)."""
        return bool(np.all(self.min_loan == 0.0) and np.all(np.isinf(self.max_loan)))

    def validate(self) -> None:
        """Check the game's scope: the message of each error names the offending value."""
        if self.willingness.ndim != 2 or self.willingness.shape[1] < 1:
            raise ValueError(
                f"willingness must have shape (B, N) with N >= 1, got {self.willingness.shape}"
            )
        for name, values in (
            ("willingness", self.willingness),
            ("min_rate", self.min_rate),
            ("max_rate", self.max_rate),
            ("min_loan", self.min_loan),
        ):
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{name} must be finite, got {values}")
        if np.any(self.willingness <= 0.0):
            raise ValueError(f"willingness d must be above 0, got {self.willingness}")
        if np.any(self.min_rate <= 0.0):
            raise ValueError(f"min_rate r_min must be above 0, got {self.min_rate}")
        if np.any(self.min_rate >= self.max_rate[:, None]):
            raise ValueError(
                f"every min_rate r_min must be below max_rate r_max={self.max_rate}, got "
                f"{self.min_rate}; raise max_rate or lower min_rate"
            )
        if np.any(self.min_loan < 0.0):
            raise ValueError(f"min_loan must be at least 0, got {self.min_loan}")
        if np.any(np.isnan(self.max_loan)) or np.any(self.max_loan < self.min_loan[:, None]):
            raise ValueError(
                f"max_loan must be at least min_loan={self.min_loan}, got {self.max_loan}"
            )

    def instance(self, index: int) -> OneToOneGame:
        """Return the game of one instance, as a batch of one."""
        part = slice(index, index + 1)
        return OneToOneGame(
            self.willingness[part],
            self.min_rate[part],
            self.max_rate[part],
            self.min_loan[part],
            self.max_loan[part],
        )


@dataclass(frozen=True)
class OneToOneEquilibrium:
    """The Stackelberg equilibrium of B one-to-one lending games.

    Attributes:
        rates: Equilibrium rates r*, (B, N).
        prices: Equilibrium prices y* = 1 / r*, (B, N).
        loans: The borrower's loans x* from each lender (coins), (B, N).
        lender_utilities: LU* (coins), (B, N).
        borrower_utilities: BU* for each lender's loan (coins), (B, N).
        borrower_utility: The borrower's utility, BU of the loan it takes (coins), (B,).
        optimal_lender: Index of the lender the borrower takes its loan from, (B,).
        welfare: Sum of the lenders' utilities and the borrower's utility (coins), (B,).
        at_max_rate: Whether a rate sits at the cap r_max (not interior), (B, N).
        iterations: Iterations each instance needed, (B,).
        converged: Whether each instance met the tolerance, (B,).
        method: ``"best_response"`` or ``"gradient"``.
        numeric_best_response: Whether binding loan bounds made the best response numeric.
    """

    rates: np.ndarray
    prices: np.ndarray
    loans: np.ndarray
    lender_utilities: np.ndarray
    borrower_utilities: np.ndarray
    borrower_utility: np.ndarray
    optimal_lender: np.ndarray
    welfare: np.ndarray
    at_max_rate: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    method: str
    numeric_best_response: bool

    def to_dict(self, index: int = 0) -> dict[str, Any]:
        """Return one instance's equilibrium as plain Python values (for JSON)."""
        return {
            "method": self.method,
            "rates": self.rates[index].tolist(),
            "prices": self.prices[index].tolist(),
            "loans": self.loans[index].tolist(),
            "lender_utilities": self.lender_utilities[index].tolist(),
            "borrower_utilities": self.borrower_utilities[index].tolist(),
            "borrower_utility": float(self.borrower_utility[index]),
            "optimal_lender": int(self.optimal_lender[index]),
            "welfare": float(self.welfare[index]),
            "at_max_rate": self.at_max_rate[index].tolist(),
            "iterations": int(self.iterations[index]),
            "converged": bool(self.converged[index]),
            "numeric_best_response": self.numeric_best_response,
        }


def closed_form_best_response(
    beta: np.ndarray, min_rate: np.ndarray, max_rate: np.ndarray
) -> np.ndarray:
    """Lender's best-response price y* = sqrt(beta^2 + beta / r_min) - beta, clipped.

    Evaluated as (beta / r_min) / (sqrt(beta^2 + beta / r_min) + beta), which is the same
    number without the cancellation of the printed form at large beta. At beta = 0 the root is
    0 and the clip gives 1 / r_max.

    Args:
        beta: beta_i, (B, N), >= 0.
        min_rate: r_min,i, (B, N).
        max_rate: r_max, broadcastable to (B, N).

    Returns:
        Prices y* in [1 / r_max, 1 / r_min,i], (B, N).
    """
    ratio = beta / min_rate
    denominator = np.sqrt(beta * beta + ratio) + beta
    root = np.divide(ratio, denominator, out=np.zeros_like(ratio), where=denominator > 0.0)
    return np.clip(root, 1.0 / max_rate, 1.0 / min_rate)


def best_response(
    others_borrower_utility: np.ndarray, game: OneToOneGame
) -> tuple[np.ndarray, np.ndarray]:
    """Compute each lender's best-response price and utility, the others' offers held fixed.

    The others enter only through sum_{j != i} BU_j, so this also serves a learned borrower
    whose loans differ from its best response: with the borrower's response to lender i's own
    price, LU_i = N d_i y (1 - y r_min,i) / (y + beta_i) with beta_i = e sum_{j != i} BU_j / d_i,
    and with slack loan bounds the closed form applies. With binding bounds the clipped
    utility is maximized numerically (grid, then golden section).

    Args:
        others_borrower_utility: sum over j != i of BU_j (coins), (B, N).
        game: The game.

    Returns:
        Best-response prices (B, N) and the utilities LU_i they attain (B, N).
    """
    if game.loan_bounds_slack:
        beta = np.e * others_borrower_utility / game.willingness
        prices = closed_form_best_response(beta, game.min_rate, game.max_rate[:, None])
        return prices, _utility_at_price(prices, others_borrower_utility, game)
    # Each lender's search reads only its own column, so the lenders are searched in chunks
    # that bound the memory of the (B, lenders, GRID_POINTS) candidate arrays.
    chunk = max(1, NUMERIC_CHUNK_ENTRIES // (game.batch_size * GRID_POINTS))
    if chunk >= game.n_lenders:
        return _numeric_best_response(others_borrower_utility, game)
    prices = np.empty_like(others_borrower_utility)
    utilities = np.empty_like(others_borrower_utility)
    for start in range(0, game.n_lenders, chunk):
        lenders = slice(start, start + chunk)
        prices[:, lenders], utilities[:, lenders] = _numeric_best_response(
            others_borrower_utility[:, lenders], game, lenders
        )
    return prices, utilities


def solve(
    game: OneToOneGame,
    method: Method = "best_response",
    *,
    tol: float = 1e-12,
    max_iterations: int = 10_000,
    initial_prices: np.ndarray | None = None,
) -> OneToOneEquilibrium:
    """Compute the lenders' equilibrium rates and the borrower's response.

    Args:
        game: B instances of the game.
        method: ``"best_response"`` (Jacobi best responses) or ``"gradient"`` (the source's
            Algorithm 1 with a curvature-scaled, projected step; slack loan bounds only).
        tol: Stop when the largest relative change of a price in one iteration (best response)
            or the largest curvature-scaled projected gradient relative to the price
            (gradient) falls below this. With binding loan bounds the best-response method
            uses at least ``NUMERIC_TOLERANCE``.
        max_iterations: Iteration cap; instances that do not meet ``tol`` by then have
            ``converged`` False.
        initial_prices: Starting prices (B, N); by default the middle of each lender's interval.

    Returns:
        The equilibrium of every instance.

    Raises:
        ValueError: For an unknown method, a game outside the solver's scope, or the gradient
            method with loan bounds.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    game.validate()
    low = np.broadcast_to(1.0 / game.max_rate[:, None], game.willingness.shape)
    high = 1.0 / game.min_rate
    if initial_prices is None:
        prices = 0.5 * (low + high)
    else:
        prices = np.clip(np.asarray(initial_prices, dtype=np.float64), low, high)

    if method == "best_response":
        if not game.loan_bounds_slack:
            tol = max(tol, NUMERIC_TOLERANCE)
        prices, iterations, converged = _iterate_best_responses(prices, game, tol, max_iterations)
    else:
        if not game.loan_bounds_slack:
            raise ValueError(
                "the gradient method assumes slack loan bounds (min_loan = 0, max_loan = inf); "
                "use method='best_response' (--method best_response on the command line), which "
                "handles binding bounds numerically"
            )
        prices, iterations, converged = _gradient_ascent(prices, game, tol, max_iterations)
    return _equilibrium_at(prices, game, method, iterations, converged)


def outcome(rates: np.ndarray, loans: np.ndarray, game: OneToOneGame) -> dict[str, np.ndarray]:
    """Utilities of a round in which the lenders posted ``rates`` and the borrower took ``loans``.

    Returns:
        ``lender_utilities`` (B, N), ``borrower_utilities`` (B, N), ``borrower_utility`` (B,),
        ``optimal_lender`` (B,) and ``welfare`` (B,), all in coins except the index.
    """
    borrower = borrower_utilities(loans, rates, game.willingness)
    lenders = lender_utilities_given(borrower, loans, rates, game.min_rate)
    best = optimal_lender(borrower)
    # The optimal lender's BU, read through flat indices (faster than take_along_axis).
    batch, n = borrower.shape
    borrower_utility = borrower.reshape(-1)[np.arange(batch) * n + best]
    return {
        "lender_utilities": lenders,
        "borrower_utilities": borrower,
        "borrower_utility": borrower_utility,
        "optimal_lender": best,
        "welfare": row_sum(lenders) + borrower_utility,
    }


def best_response_loans(rates: np.ndarray, game: OneToOneGame) -> np.ndarray:
    """Compute the borrower's best-response loans to posted rates (coins), (B, N)."""
    return borrower_best_response(
        prices_from_rates(rates), game.willingness, game.min_loan[:, None], game.max_loan
    )


# --------------------------------------------------------------------------------------------


def _utility_at_price(
    prices: np.ndarray, others_borrower_utility: np.ndarray, game: OneToOneGame
) -> np.ndarray:
    """LU_i when lender i offers ``prices`` (B, N) and the borrower responds to it."""
    return _lender_utility_of_price(
        prices,
        others_borrower_utility,
        game.willingness,
        game.min_rate,
        game.min_loan[:, None],
        game.max_loan,
        game.n_lenders,
    )


def _lender_utility_of_price(
    prices: np.ndarray,
    others_borrower_utility: np.ndarray,
    willingness: np.ndarray,
    min_rate: np.ndarray,
    min_loan: np.ndarray,
    max_loan: np.ndarray,
    n_lenders: int,
) -> np.ndarray:
    """LU_i of a price with the borrower's clipped response inside; arguments broadcast."""
    loans = borrower_best_response(prices, willingness, min_loan, max_loan)
    rates = 1.0 / prices
    own = borrower_utilities(loans, rates, willingness)
    return lender_utility_against(own, others_borrower_utility, loans, rates, min_rate, n_lenders)


def _others_borrower_utility(prices: np.ndarray, game: OneToOneGame) -> np.ndarray:
    """sum over j != i of BU_j when the borrower best-responds to every price, (B, N)."""
    rates = 1.0 / prices
    loans = borrower_best_response(prices, game.willingness, game.min_loan[:, None], game.max_loan)
    utilities = borrower_utilities(loans, rates, game.willingness)
    return utilities.sum(axis=1, keepdims=True) - utilities


def _numeric_best_response(
    others_borrower_utility: np.ndarray,
    game: OneToOneGame,
    lenders: slice = slice(None),
) -> tuple[np.ndarray, np.ndarray]:
    """Maximize the clipped LU_i over the price interval: a grid, then golden-section search.

    Exact when LU_i is unimodal in the bracket around the best grid point; otherwise the best
    point of the grid's best bracket. The loan-bound kinks and the closed-form root are
    candidates too. Each lender's search reads only its own column, so searching a slice of
    ``lenders`` gives the same values as those columns of a search over all of them.

    Args:
        others_borrower_utility: sum over j != i of BU_j (coins), (B, M) for the M lenders
            that ``lenders`` selects.
        game: The game.
        lenders: The lenders to search, a slice of the N columns (all by default).

    Returns:
        Best-response prices and the utilities LU_i they attain, (B, M) each.
    """
    willingness = game.willingness[:, lenders]
    min_rate = game.min_rate[:, lenders]
    max_loan = game.max_loan[:, lenders]
    low = np.broadcast_to(1.0 / game.max_rate[:, None], willingness.shape)
    high = 1.0 / min_rate

    def utility(prices: np.ndarray) -> np.ndarray:
        # prices has a trailing axis of candidates: (B, M, K).
        return _lender_utility_of_price(
            prices,
            others_borrower_utility[..., None],
            willingness[..., None],
            min_rate[..., None],
            game.min_loan[:, None, None],
            max_loan[..., None],
            game.n_lenders,
        )

    # A geometric grid: the interval [1 / r_max, 1 / r_min,i] can span several orders of
    # magnitude, and a uniform grid would skip a narrow peak near 1 / r_max (a high rate).
    grid = low[..., None] * (high / low)[..., None] ** np.linspace(0.0, 1.0, GRID_POINTS)
    values = utility(grid)
    best = np.argmax(values, axis=-1)[..., None]
    best_price = np.take_along_axis(grid, best, axis=-1)[..., 0]
    a = np.take_along_axis(grid, np.maximum(best - 1, 0), axis=-1)[..., 0]
    b = np.take_along_axis(grid, np.minimum(best + 1, GRID_POINTS - 1), axis=-1)[..., 0]

    inverse_golden = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(GOLDEN_ITERATIONS):
        c = b - inverse_golden * (b - a)
        d = a + inverse_golden * (b - a)
        pair = utility(np.stack([c, d], axis=-1))
        keep_left = pair[..., 0] >= pair[..., 1]
        b = np.where(keep_left, d, b)
        a = np.where(keep_left, a, c)
    # The closed-form root is exact wherever the loan at the optimum is not clipped, which a
    # golden-section search would only locate to about sqrt(machine epsilon).
    closed_form = closed_form_best_response(
        np.e * others_borrower_utility / willingness, min_rate, game.max_rate[:, None]
    )
    # The kinks where the borrower's loan d_i y reaches x_min or x_max,i, where the clipped
    # utility often peaks.
    kinks = [
        np.clip(game.min_loan[:, None] / willingness, low, high),
        np.clip(max_loan / willingness, low, high),
    ]
    candidates = np.stack([best_price, 0.5 * (a + b), closed_form, *kinks], axis=-1)
    values = utility(candidates)
    pick = np.argmax(values, axis=-1)[..., None]
    return (
        np.take_along_axis(candidates, pick, axis=-1)[..., 0],
        np.take_along_axis(values, pick, axis=-1)[..., 0],
    )


def _iterate_best_responses(
    prices: np.ndarray, game: OneToOneGame, tol: float, max_iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iterations = np.zeros(game.batch_size, dtype=np.int64)
    converged = np.zeros(game.batch_size, dtype=bool)
    for iteration in range(1, max_iterations + 1):
        if game.loan_bounds_slack or iteration <= JACOBI_ITERATIONS:
            new_prices, _ = best_response(_others_borrower_utility(prices, game), game)
        else:
            new_prices = _gauss_seidel_sweep(prices, game)
        change = np.max(np.abs(new_prices - prices) / prices, axis=1)
        active = ~converged
        prices = np.where(active[:, None], new_prices, prices)
        iterations[active] = iteration
        converged |= change <= tol
        if converged.all():
            break
    return prices, iterations, converged


def _gauss_seidel_sweep(prices: np.ndarray, game: OneToOneGame) -> np.ndarray:
    """Update the lenders one after another, each best-responding to the others' latest prices.

    Sweeps run only with binding loan bounds, after Jacobi failed to converge. Each step
    searches the moving lender's price alone, so a sweep runs N one-column searches. The
    others' totals are summed again from all N BU at each step: O(N) array work, small next
    to a search, and the same sums that a Jacobi iteration computes.
    NOTE: the steps are a Python loop over the N lenders, about 3 ms each on a 2-core
    x86_64 machine, so a sweep at N = 1000 takes seconds.
    """
    prices = prices.copy()
    for lender in range(game.n_lenders):
        column = slice(lender, lender + 1)
        others = _others_borrower_utility(prices, game)[:, column]
        answer, _ = _numeric_best_response(others, game, column)
        prices[:, lender] = answer[:, 0]
    return prices


def _gradient_ascent(
    prices: np.ndarray, game: OneToOneGame, tol: float, max_iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low = np.broadcast_to(1.0 / game.max_rate[:, None], game.willingness.shape)
    high = 1.0 / game.min_rate
    n = game.n_lenders
    iterations = np.zeros(game.batch_size, dtype=np.int64)
    converged = np.zeros(game.batch_size, dtype=bool)
    for iteration in range(1, max_iterations + 1):
        weighted = game.willingness * prices
        beta = (weighted.sum(axis=1, keepdims=True) - weighted) / game.willingness
        gradient, curvature = lender_utility_gradient(
            prices, beta, game.willingness, game.min_rate, n
        )
        # Newton step mu_i = 1 / |LU_i''|; with beta = 0 (N = 1) LU_i is linear and falling,
        # so the step runs to the lower price bound.
        step = np.divide(
            gradient, -curvature, out=np.where(gradient > 0, np.inf, -np.inf), where=curvature < 0.0
        )
        candidate = np.clip(prices + step, low, high)
        projected = np.abs(candidate - prices) / prices
        done = np.max(projected, axis=1) <= tol
        # Halve each lender's step while it lowers its own utility (others held fixed).
        others = _others_borrower_utility(prices, game)
        current = _utility_at_price(prices, others, game)
        scale = np.ones_like(prices)
        for _ in range(MAX_STEP_HALVINGS):
            trial = np.clip(prices + scale * (candidate - prices), low, high)
            worse = _utility_at_price(trial, others, game) < current - 1e-15 * np.abs(current)
            if not worse.any():
                break
            scale = np.where(worse, 0.5 * scale, scale)
        candidate = np.clip(prices + scale * (candidate - prices), low, high)
        active = ~converged & ~done
        prices = np.where(active[:, None], candidate, prices)
        iterations[~converged] = iteration
        converged |= done
        if converged.all():
            break
    return prices, iterations, converged


def _equilibrium_at(
    prices: np.ndarray,
    game: OneToOneGame,
    method: str,
    iterations: np.ndarray,
    converged: np.ndarray,
) -> OneToOneEquilibrium:
    rates = 1.0 / prices
    loans = best_response_loans(rates, game)
    result = outcome(rates, loans, game)
    return OneToOneEquilibrium(
        rates=rates,
        prices=prices,
        loans=loans,
        lender_utilities=result["lender_utilities"],
        borrower_utilities=result["borrower_utilities"],
        borrower_utility=result["borrower_utility"],
        optimal_lender=result["optimal_lender"],
        welfare=result["welfare"],
        at_max_rate=np.isclose(rates, game.max_rate[:, None], rtol=1e-12, atol=0.0),
        iterations=iterations,
        converged=converged,
        method=method,
        numeric_best_response=not game.loan_bounds_slack,
    )
