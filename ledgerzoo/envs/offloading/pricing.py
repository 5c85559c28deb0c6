"""Edge servers as pricing leaders: iterated best response on a price grid.

Each edge server k posts a price p_k per cycle from a grid of G evenly spaced prices in
[p_min, p_max] and earns sum over the tasks it runs of (p_k - c_k) C_i. The devices respond to
every price vector with the Nash equilibrium of their offloading game that
:func:`equilibrium.solve_nash` reaches from the all-local profile with a fixed seed and
order, so each price vector maps to one device profile and one profit per edge.

Procedure, per instance: start from the game's edge prices, each moved to the nearest grid
point. In every sweep the edges update in index order. Edge k evaluates its profit at every
grid price, the others' prices fixed, and moves to the most profitable one (the lowest on
ties) if that beats its current profit by more than ``tol`` times its absolute value. A
sweep in which no edge moves ends the procedure: the prices are a pure equilibrium of the
pricing game on the grid. Devices choose discretely, so profits jump with price and such
an equilibrium may not exist. The procedure is deterministic, so if the prices at the end
of a sweep repeat those at the end of an earlier sweep, the procedure cycles. It then stops
and reports the sequence of end-of-sweep price vectors that repeats.

With one edge server there is no competition, and the first sweep finds the exact
Stackelberg optimum on the grid: the best grid price given the devices' response.

Each edge update solves the devices' game for G price vectors of every unfinished instance
in one batch, so a sweep costs K batched solves of B G instances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.equilibrium import NashEquilibrium, Order, solve_nash
from ledgerzoo.envs.offloading.game import OffloadingGame

# Grid prices per edge server.
GRID_POINTS = 21
# Sweeps after which an instance that neither converged nor cycled stops.
MAX_SWEEPS = 100
# An edge moves only when the new price beats its current profit by this fraction.
PROFIT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PricingResult:
    """Outcome of iterated best response among the edge servers of B instances.

    Attributes:
        prices: Final price of each edge (coins per cycle), (B, K).
        price_indices: Grid index of each final price, (B, K) int64.
        price_grid: The grid (coins per cycle), (G,).
        profits: Each edge's profit at the final prices (coins), (B, K).
        equilibrium: The devices' equilibrium at the final prices.
        sweeps: Sweeps each instance ran, including the last one in which nothing moved or
            the prices repeated, (B,) int64.
        converged: Whether a sweep ended with no edge moving, (B,) bool.
        cycles: Per instance, ``None`` unless the prices cycled, else the end-of-sweep price
            vectors that repeat, in order, (cycle length, K). The final prices are the
            first vector of the cycle.
    """

    prices: np.ndarray
    price_indices: np.ndarray
    price_grid: np.ndarray
    profits: np.ndarray
    equilibrium: NashEquilibrium
    sweeps: np.ndarray
    converged: np.ndarray
    cycles: tuple[np.ndarray | None, ...]


def price_grid(low: float, high: float, points: int = GRID_POINTS) -> np.ndarray:
    """Return ``points`` evenly spaced prices from ``low`` to ``high`` (coins per cycle).

    Raises:
        ValueError: If ``points`` < 1, a bound is negative or not finite, or low > high.
    """
    if points < 1:
        raise ValueError(f"grid_points must be at least 1, got {points}")
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or low > high:
        raise ValueError(
            f"the price range must satisfy 0 <= p_min <= p_max, got p_min={low}, p_max={high}"
        )
    return np.linspace(low, high, points)


def edge_profit_curves(
    game: OffloadingGame,
    price_indices: np.ndarray,
    edge: int,
    grid: np.ndarray,
    *,
    seed: int = 0,
    order: Order = "random",
) -> np.ndarray:
    """Compute edge ``edge``'s profit at every grid price, the other prices fixed (coins).

    Args:
        game: B instances.
        price_indices: Grid index of every edge's current price, (B, K).
        edge: The edge server whose price varies.
        grid: The price grid (coins per cycle), (G,).
        seed: Seed of the devices' best-response order.
        order: Order rule of the devices' best response.

    Returns:
        Profits (coins), (B, G).
    """
    batch, points = game.batch_size, grid.size
    indices = np.repeat(price_indices, points, axis=0)
    indices[:, edge] = np.tile(np.arange(points), batch)
    candidates = game.take(np.repeat(np.arange(batch), points)).with_edge_prices(grid[indices])
    equilibrium = solve_nash(candidates, seed=seed, order=order)
    profits = model.edge_profits(candidates, equilibrium.profile)[:, edge]
    return profits.reshape(batch, points)


def solve_edge_pricing(
    game: OffloadingGame,
    *,
    grid_points: int = GRID_POINTS,
    price_range: tuple[float, float] | None = None,
    seed: int = 0,
    order: Order = "random",
    max_sweeps: int = MAX_SWEEPS,
    tol: float = PROFIT_TOLERANCE,
) -> PricingResult:
    """Run iterated best response among the edge servers on a price grid.

    Args:
        game: B instances, whose edge prices are the starting point.
        grid_points: Number G of grid prices.
        price_range: (p_min, p_max) in coins per cycle, the scenario's ``price_range`` by
            default.
        seed: Seed of the devices' best-response order, the same for every price vector.
        order: Order rule of the devices' best response.
        max_sweeps: Sweeps after which an unfinished instance stops, neither converged nor
            cycled.
        tol: Relative profit gain an edge needs to move.

    Returns:
        The final prices, profits and device equilibrium, and how each instance ended.

    Raises:
        ValueError: If the grid is invalid or ``max_sweeps`` < 1.
    """
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be at least 1, got {max_sweeps}")
    low, high = game.scenario.price_range if price_range is None else price_range
    grid = price_grid(low, high, grid_points)
    batch, n_edges = game.batch_size, game.n_edges

    indices = np.abs(game.edge_prices[:, :, None] - grid[None, None, :]).argmin(axis=2)
    seen: list[dict[tuple[int, ...], int]] = [{tuple(row): 0} for row in indices.tolist()]
    history: list[list[np.ndarray]] = [[row.copy()] for row in indices]
    cycles: list[np.ndarray | None] = [None] * batch
    sweeps = np.zeros(batch, dtype=np.int64)
    converged = np.zeros(batch, dtype=bool)
    active = np.ones(batch, dtype=bool)

    for sweep in range(1, max_sweeps + 1):
        running = np.flatnonzero(active)
        if running.size == 0:
            break
        sweeps[running] = sweep
        moved = np.zeros(running.size, dtype=bool)
        for edge in range(n_edges):
            profits = edge_profit_curves(
                game.take(running), indices[running], edge, grid, seed=seed, order=order
            )
            rows = np.arange(running.size)
            current = profits[rows, indices[running, edge]]
            best = np.argmax(profits, axis=1)
            better = profits[rows, best] > current + tol * np.abs(current)
            indices[running[better], edge] = best[better]
            moved |= better

        converged[running[~moved]] = True
        active[running[~moved]] = False
        for b in running[moved].tolist():
            key = tuple(indices[b].tolist())
            if key in seen[b]:
                cycles[b] = grid[np.stack(history[b][seen[b][key] :])]
                active[b] = False
            else:
                seen[b][key] = sweep
                history[b].append(indices[b].copy())

    final = game.with_edge_prices(grid[indices])
    equilibrium = solve_nash(final, seed=seed, order=order)
    return PricingResult(
        prices=grid[indices],
        price_indices=indices,
        price_grid=grid,
        profits=model.edge_profits(final, equilibrium.profile),
        equilibrium=equilibrium,
        sweeps=sweeps,
        converged=converged,
        cycles=tuple(cycles),
    )
