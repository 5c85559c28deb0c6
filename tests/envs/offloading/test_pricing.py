"""Edge servers as pricing leaders: the grid optimum, equilibrium prices and cycles."""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo.envs.offloading import model, pricing
from ledgerzoo.envs.offloading.equilibrium import solve_nash
from ledgerzoo.envs.offloading.game import OffloadingGame, sample_games
from ledgerzoo.envs.offloading.scenario import OffloadingScenario

ONE_EDGE = OffloadingScenario(n_devices=8, n_edges=1, side=150.0, edge_range=80.0)
TWO_EDGES = OffloadingScenario()
GRID_POINTS = 11


def profit_by_single_solves(game: OffloadingGame, b: int, prices: np.ndarray, edge: int) -> float:
    """Profit of ``edge`` in instance b at ``prices`` (K,), from one solve of that instance."""
    single = game.take(np.array([b])).with_edge_prices(prices[None, :])
    profile = solve_nash(single, seed=0).profile
    return float(model.edge_profits(single, profile)[0, edge])


def test_one_edge_finds_grid_optimum() -> None:
    game = sample_games(ONE_EDGE, range(6))
    result = pricing.solve_edge_pricing(game, grid_points=GRID_POINTS)
    grid = result.price_grid
    assert result.converged.all()
    # One sweep finds the optimum. A second runs only when the first moved the price.
    assert np.all(result.sweeps <= 2)
    for b in range(game.batch_size):
        profits = [profit_by_single_solves(game, b, np.array([p]), 0) for p in grid]
        best = max(profits)
        assert result.profits[b, 0] == pytest.approx(best, rel=1e-12, abs=1e-15)
        chosen = int(result.price_indices[b, 0])
        assert profits[chosen] == pytest.approx(best, rel=1e-12, abs=1e-15)
        assert result.prices[b, 0] == grid[chosen]
    assert np.any(result.profits > 0.0), "some edge should earn a positive profit"


def test_two_edges_converge_or_cycle() -> None:
    """Converged prices admit no profitable grid deviation, and a reported cycle repeats.

    Seeds 0 to 11 of the default scenario contain both outcomes with this grid.
    """
    game = sample_games(TWO_EDGES, range(12))
    result = pricing.solve_edge_pricing(game, grid_points=GRID_POINTS)
    grid = result.price_grid
    assert result.converged.any()
    assert any(cycle is not None for cycle in result.cycles)
    for b in range(game.batch_size):
        if result.converged[b]:
            assert result.cycles[b] is None
            for edge in range(game.n_edges):
                current = result.profits[b, edge]
                for price in grid:
                    prices = result.prices[b].copy()
                    prices[edge] = price
                    deviation = profit_by_single_solves(game, b, prices, edge)
                    assert deviation <= current + pricing.PROFIT_TOLERANCE * abs(current) + 1e-15
            continue
        cycle = result.cycles[b]
        assert cycle is not None, f"instance {b} neither converged nor cycled"
        np.testing.assert_array_equal(result.prices[b], cycle[0])
        assert len({tuple(row) for row in cycle.tolist()}) == len(cycle)
        for j, prices in enumerate(cycle):
            step = pricing.solve_edge_pricing(
                game.take(np.array([b])).with_edge_prices(prices[None, :]),
                grid_points=GRID_POINTS,
                max_sweeps=1,
            )
            np.testing.assert_array_equal(step.prices[0], cycle[(j + 1) % len(cycle)])


def test_profit_curve_matches_single_solves() -> None:
    game = sample_games(TWO_EDGES, range(3))
    grid = pricing.price_grid(*TWO_EDGES.price_range, 7)
    indices = np.array([[2, 5], [0, 0], [6, 3]])
    curves = pricing.edge_profit_curves(game, indices, 1, grid)
    for b in range(game.batch_size):
        for g, price in enumerate(grid):
            prices = grid[indices[b]].copy()
            prices[1] = price
            assert curves[b, g] == profit_by_single_solves(game, b, prices, 1)


def test_batch_equals_single_instances() -> None:
    seeds = [3, 9, 4]
    batch = pricing.solve_edge_pricing(sample_games(TWO_EDGES, seeds), grid_points=GRID_POINTS)
    for b, seed in enumerate(seeds):
        alone = pricing.solve_edge_pricing(sample_games(TWO_EDGES, [seed]), grid_points=GRID_POINTS)
        np.testing.assert_array_equal(batch.prices[b], alone.prices[0])
        np.testing.assert_array_equal(batch.profits[b], alone.profits[0])
        assert batch.sweeps[b] == alone.sweeps[0]
        assert batch.converged[b] == alone.converged[0]


def test_invalid_arguments_raise() -> None:
    game = sample_games(ONE_EDGE, [0])
    with pytest.raises(ValueError, match=r"grid_points.*0"):
        pricing.solve_edge_pricing(game, grid_points=0)
    with pytest.raises(ValueError, match=r"p_min=2\.0, p_max=1\.0"):
        pricing.solve_edge_pricing(game, price_range=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"p_min=-1\.0"):
        pricing.price_grid(-1.0, 1.0)
    with pytest.raises(ValueError, match=r"max_sweeps.*0"):
        pricing.solve_edge_pricing(game, max_sweeps=0)
