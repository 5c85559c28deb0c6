"""Best-response Nash equilibrium, exhaustive social optimum and the baselines.

Deviations and optima are checked with the plain-Python costs of ``conftest.py`` and with
itertools enumeration, independent of the vectorized solver code.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ledgerzoo.envs.offloading import equilibrium, model
from ledgerzoo.envs.offloading.baselines import (
    all_local_profile,
    nearest_edge_profile,
    random_profile,
)
from ledgerzoo.envs.offloading.game import OffloadingGame, sample_games
from ledgerzoo.envs.offloading.scenario import OffloadingScenario

from .conftest import ReferenceCosts, ReferencePotential

SCENARIO = OffloadingScenario()
# Four devices and two edges: at most 5^4 = 625 profiles, small enough for itertools.
TINY = OffloadingScenario(n_devices=4, n_edges=2, side=100.0, radio_range=45.0, edge_range=40.0)
# Relative gain below which a deviation does not count, as in the solver.
TOLERANCE = equilibrium.IMPROVEMENT_TOLERANCE
# The equilibrium's mean total cost must be at most this fraction of a baseline's mean over
# 100 seeds of the default scenario. Measured: 0.69 against nearest edge, 0.68 against random.
BASELINE_MARGIN = 0.9
# The median number of moves over 100 seeds must be at most this multiple of N.
# Measured: a median of 9 moves for N = 10 and 21 for N = 20.
MOVES_PER_DEVICE = 2.0


def test_potential_falls_at_every_move(reference_potential: ReferencePotential) -> None:
    game = sample_games(SCENARIO, range(30))
    result = equilibrium.solve_nash(game, seed=4)
    assert result.converged.all()
    start = model.potential(game, all_local_profile(game))
    np.testing.assert_allclose(result.potential_trace[:, 0], start, rtol=1e-12)
    for b in range(game.batch_size):
        moves = int(result.moves[b])
        trace = result.potential_trace[b, : moves + 1]
        assert np.all(np.diff(trace) < 0.0), f"instance {b}: trace {trace}"
        assert np.all(np.isnan(result.potential_trace[b, moves + 1 :]))
        assert trace[-1] == pytest.approx(result.potential[b], rel=1e-12)
        assert result.potential[b] == pytest.approx(
            reference_potential(game, b, result.profile[b].tolist()), rel=1e-12
        )


def test_moves_replay_as_best_responses(reference_costs: ReferenceCosts) -> None:
    """Stopping after t moves replays the run: each move is one device's best response.

    The device that moves lowers its own cost by exactly w_i times the fall of Phi, and
    switches to the cheapest of its legal actions.
    """
    game = sample_games(SCENARIO, range(4))
    full = equilibrium.solve_nash(game, seed=1)
    for b in range(game.batch_size):
        single = game.take(np.array([b]))
        previous = all_local_profile(single)[0]
        for t in range(1, int(full.moves[b]) + 1):
            stopped = equilibrium.solve_nash(single, seed=1, max_moves=t)
            profile = stopped.profile[0]
            changed = np.flatnonzero(profile != previous)
            assert changed.size == 1, f"instance {b} move {t}: devices {changed} changed"
            i = int(changed[0])
            before = reference_costs(game, b, previous.tolist())[i]
            after = reference_costs(game, b, profile.tolist())[i]
            fall = full.potential_trace[b, t - 1] - full.potential_trace[b, t]
            assert before - after == pytest.approx(game.weights[b, i] * fall, rel=1e-9)
            options = []
            for action in np.flatnonzero(game.action_mask[b, i]):
                trial = previous.copy()
                trial[i] = action
                options.append(reference_costs(game, b, trial.tolist())[i])
            assert after == pytest.approx(min(options), rel=1e-12)
            previous = profile
        np.testing.assert_array_equal(previous, full.profile[b])


@pytest.mark.parametrize(
    "scenario",
    [
        SCENARIO,
        TINY,
        OffloadingScenario(n_devices=15, n_edges=3, side=250.0, radio_range=60.0),
    ],
)
@pytest.mark.parametrize("order", ["random", "lowest_index"])
def test_no_profitable_deviation(
    scenario: OffloadingScenario, order: str, reference_costs: ReferenceCosts
) -> None:
    game = sample_games(scenario, range(100, 112))
    result = equilibrium.solve_nash(game, seed=7, order=order)  # type: ignore[arg-type]
    assert result.converged.all()
    for b in range(game.batch_size):
        profile = result.profile[b]
        costs = reference_costs(game, b, profile.tolist())
        np.testing.assert_allclose(result.costs[b], costs, rtol=1e-12)
        for i in range(game.n_devices):
            for action in np.flatnonzero(game.action_mask[b, i]):
                trial = profile.copy()
                trial[i] = action
                deviation = reference_costs(game, b, trial.tolist())[i]
                assert deviation >= costs[i] * (1.0 - TOLERANCE) - 1e-12, (
                    f"instance {b}: device {i} gains by switching {profile[i]} -> {action}: "
                    f"{costs[i]} -> {deviation}"
                )


def test_equilibrium_never_above_all_local() -> None:
    game = sample_games(SCENARIO, range(200))
    result = equilibrium.solve_nash(game)
    local = model.total_cost(game, all_local_profile(game))
    assert np.all(result.total_cost <= local * (1.0 + 1e-12))
    # Every device is at least as well off as alone: local uses no shared resource.
    np.testing.assert_array_less(
        result.costs, model.device_costs(game, all_local_profile(game)) * (1.0 + 1e-12) + 1e-12
    )


def test_equilibrium_beats_baselines_on_average() -> None:
    game = sample_games(SCENARIO, range(100))
    result = equilibrium.solve_nash(game, seed=0)
    nash = result.total_cost.mean()
    nearest = model.total_cost(game, nearest_edge_profile(game)).mean()
    random = model.total_cost(game, random_profile(game, seed=0)).mean()
    assert nash <= BASELINE_MARGIN * nearest, f"NE {nash:.3f} vs nearest edge {nearest:.3f}"
    assert nash <= BASELINE_MARGIN * random, f"NE {nash:.3f} vs random {random:.3f}"


@pytest.mark.parametrize("n_devices", [10, 20])
def test_median_moves_within_multiple_of_n(n_devices: int) -> None:
    scenario = OffloadingScenario(n_devices=n_devices, n_edges=3)
    result = equilibrium.solve_nash(sample_games(scenario, range(100)))
    assert result.converged.all()
    median = float(np.median(result.moves))
    assert median <= MOVES_PER_DEVICE * n_devices, f"median {median} moves for N={n_devices}"


def test_batch_equals_single_instances() -> None:
    seeds = [5, 17, 3, 42, 8]
    batch = sample_games(SCENARIO, seeds)
    result = equilibrium.solve_nash(batch, seed=9)
    for b, seed in enumerate(seeds):
        alone = equilibrium.solve_nash(sample_games(SCENARIO, [seed]), seed=9)
        np.testing.assert_array_equal(result.profile[b], alone.profile[0])
        np.testing.assert_array_equal(result.costs[b], alone.costs[0])
        assert result.potential[b] == alone.potential[0]
        assert result.moves[b] == alone.moves[0]
        moves = int(alone.moves[0])
        np.testing.assert_array_equal(
            result.potential_trace[b, : moves + 1], alone.potential_trace[0]
        )


def test_seed_changes_order_not_validity() -> None:
    game = sample_games(SCENARIO, range(40))
    first = equilibrium.solve_nash(game, seed=0)
    again = equilibrium.solve_nash(game, seed=0)
    other = equilibrium.solve_nash(game, seed=1)
    np.testing.assert_array_equal(first.profile, again.profile)
    assert other.converged.all()
    deviations = model.deviation_costs(game, other.profile)
    assert np.all(deviations.min(axis=2) >= other.costs * (1.0 - TOLERANCE) - 1e-12)


def test_initial_profile_and_move_cap() -> None:
    game = sample_games(SCENARIO, range(10))
    capped = equilibrium.solve_nash(game, max_moves=0)
    np.testing.assert_array_equal(capped.profile, all_local_profile(game))
    assert not capped.converged.any(), "all local is no equilibrium in these instances"
    assert capped.potential_trace.shape == (10, 1)

    start = random_profile(game, seed=3)
    result = equilibrium.solve_nash(game, initial=start)
    assert result.converged.all()
    np.testing.assert_allclose(result.potential_trace[:, 0], model.potential(game, start))
    deviations = model.deviation_costs(game, result.profile)
    assert np.all(deviations.min(axis=2) >= result.costs * (1.0 - TOLERANCE) - 1e-12)


def test_invalid_arguments_raise() -> None:
    game = sample_games(SCENARIO, [0])
    with pytest.raises(ValueError, match="unknown order 'fastest'"):
        equilibrium.solve_nash(game, order="fastest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tol.*-1"):
        equilibrium.solve_nash(game, tol=-1.0)
    with pytest.raises(ValueError, match=r"max_moves.*-2"):
        equilibrium.solve_nash(game, max_moves=-2)
    with pytest.raises(ValueError, match="shape"):
        equilibrium.solve_nash(game, initial=np.zeros(3, dtype=np.int64))


def test_potential_mismatch_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    game = sample_games(SCENARIO, [0])

    def rising(*args: np.ndarray) -> np.ndarray:
        return np.full(args[2].shape[0], np.inf)

    monkeypatch.setattr(model, "potential_terms", rising)
    with pytest.raises(RuntimeError, match="did not lower the potential"):
        equilibrium.solve_nash(game)


def brute_force_optimum(
    game: OffloadingGame, b: int, reference_costs: ReferenceCosts
) -> tuple[list[int], float, int]:
    """First profile of minimum total cost in lexicographic order, by itertools."""
    mask = game.action_mask[b]
    choices = [np.flatnonzero(row).tolist() for row in mask]
    best_profile: list[int] = []
    best_cost = math.inf
    count = 0
    for profile in itertools.product(*choices):
        count += 1
        cost = sum(reference_costs(game, b, profile))
        if cost < best_cost:
            best_profile, best_cost = list(profile), cost
    return best_profile, best_cost, count


def test_exhaustive_optimum_matches_itertools(reference_costs: ReferenceCosts) -> None:
    game = sample_games(TINY, range(12))
    optimum = equilibrium.social_optimum(game)
    assert optimum.n_profiles.max() == 5**4, "some instance should have every action legal"
    nash = equilibrium.solve_nash(game)
    for b in range(game.batch_size):
        profile, cost, count = brute_force_optimum(game, b, reference_costs)
        assert optimum.n_profiles[b] == count
        assert optimum.total_cost[b] == pytest.approx(cost, rel=1e-12)
        assert sum(reference_costs(game, b, optimum.profile[b].tolist())) == pytest.approx(
            cost, rel=1e-12
        )
        assert optimum.profile[b].tolist() == profile
    poa = equilibrium.price_of_anarchy(nash.total_cost, optimum.total_cost)
    assert np.all(poa >= 1.0 - 1e-12), f"price of anarchy below 1: {poa}"


def test_exhaustive_optimum_default_scenario() -> None:
    game = sample_games(OffloadingScenario(n_devices=7), range(6))
    optimum = equilibrium.social_optimum(game)
    nash = equilibrium.solve_nash(game)
    poa = equilibrium.price_of_anarchy(nash.total_cost, optimum.total_cost)
    assert np.all(poa >= 1.0 - 1e-12)
    for baseline in (all_local_profile(game), nearest_edge_profile(game), random_profile(game)):
        assert np.all(model.total_cost(game, baseline) >= optimum.total_cost * (1.0 - 1e-12))


def test_exhaustive_search_limit() -> None:
    game = sample_games(SCENARIO, [0])
    count = math.prod(int(c) for c in game.action_mask[0].sum(axis=1))
    with pytest.raises(ValueError, match=f"instance 0 has {count} legal.*max_profiles=10"):
        equilibrium.social_optimum(game, max_profiles=10)


def test_local_search_bounds_optimum() -> None:
    game = sample_games(TINY, range(10))
    nash = equilibrium.solve_nash(game)
    optimum = equilibrium.social_optimum(game)
    local = equilibrium.improve_social_cost(game, nash.profile)
    assert local.converged.all()
    assert np.all(local.total_cost <= nash.total_cost * (1.0 + 1e-12))
    assert np.all(local.total_cost >= optimum.total_cost * (1.0 - 1e-12))


@pytest.mark.parametrize("seed", range(3))
def test_social_cost_changes_match_totals(seed: int) -> None:
    game = sample_games(SCENARIO, range(seed * 5, seed * 5 + 3))
    actions = random_profile(game, seed)
    changes = equilibrium.social_cost_changes(game, actions)
    total = model.total_cost(game, actions)
    for b in range(game.batch_size):
        for i in range(game.n_devices):
            for action in range(game.n_actions):
                if not game.action_mask[b, i, action]:
                    assert np.isinf(changes[b, i, action])
                    continue
                trial = actions.copy()
                trial[b, i] = action
                expected = model.total_cost(game, trial)[b] - total[b]
                assert changes[b, i, action] == pytest.approx(expected, abs=1e-11 * total[b])


def test_baselines_are_legal() -> None:
    game = sample_games(OffloadingScenario(n_devices=12, n_edges=3, edge_range=40.0), range(20))
    for profile in (all_local_profile(game), nearest_edge_profile(game), random_profile(game, 4)):
        model.validate_profile(game, profile)
    nearest = nearest_edge_profile(game)
    hops = game.topology.relay_hops
    for b in range(game.batch_size):
        for i in range(game.n_devices):
            reachable = np.flatnonzero(hops[b, i] >= 0)
            if reachable.size == 0:
                assert nearest[b, i] == 0
                continue
            edge = nearest[b, i] - 1
            assert hops[b, i, edge] == hops[b, i, reachable].min()


def test_random_baseline_uniform_over_legal() -> None:
    game = sample_games(SCENARIO, [0])
    counts = np.zeros((game.n_devices, game.n_actions))
    for seed in range(600):
        profile = random_profile(game, seed)[0]
        counts[np.arange(game.n_devices), profile] += 1
    mask = game.action_mask[0]
    assert np.all(counts[~mask] == 0)
    legal = mask.sum(axis=1, keepdims=True)
    expected = np.where(mask, 600 / legal, 0.0)
    # The binomial standard deviation is at most sqrt(600 / 4) = 12.2, so allow about 5.
    assert np.all(np.abs(counts - expected) <= 60)


def test_thousand_devices_converge() -> None:
    """N = 1000 devices and K = 4 edges on a 1 km square converge in about 400 moves."""
    scenario = OffloadingScenario(
        n_devices=1000, n_edges=4, side=1000.0, radio_range=60.0, edge_range=150.0
    )
    game = sample_games(scenario, [0])
    result = equilibrium.solve_nash(game)
    assert result.converged.all()
    assert result.moves[0] <= MOVES_PER_DEVICE * scenario.n_devices
    deviations = model.deviation_costs(game, result.profile)
    assert np.all(deviations.min(axis=2) >= result.costs * (1.0 - TOLERANCE) - 1e-12)
    trace = result.potential_trace[0, : int(result.moves[0]) + 1]
    assert np.all(np.diff(trace) < 0.0)
    local = model.total_cost(game, all_local_profile(game))
    assert result.total_cost[0] <= local[0]


@pytest.mark.parametrize(
    "scenario",
    [
        OffloadingScenario(n_devices=1, n_edges=1),
        OffloadingScenario(n_devices=3, n_edges=1, radio_range=1.0, edge_range=1.0),
    ],
)
def test_degenerate_games(scenario: OffloadingScenario) -> None:
    """One device, or devices that reach no edge: the solvers still agree."""
    game = sample_games(scenario, [0, 1])
    nash = equilibrium.solve_nash(game)
    optimum = equilibrium.social_optimum(game)
    assert nash.converged.all()
    np.testing.assert_allclose(nash.total_cost, optimum.total_cost, rtol=1e-12)
    no_edge = ~game.action_mask[:, :, 1:].any(axis=2)
    assert np.all(nash.profile[no_edge] == 0)
