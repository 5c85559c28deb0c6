"""The batched shortcuts of the offloading market against the plain computations they replace.

Each instance draws its episode in one ``rng.random`` call, the cost sums run entry by entry,
and the market keeps its action masks and deviation costs for a round. Every check here is
bit for bit, because the vector env must equal the PettingZoo env exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.baselines import random_profile
from ledgerzoo.envs.offloading.game import draw_instances, sample_games, sample_tasks
from ledgerzoo.envs.offloading.market import OffloadingMarket
from ledgerzoo.envs.offloading.scenario import OffloadingScenario
from ledgerzoo.envs.offloading.topology import sample_device_positions

SCENARIO = OffloadingScenario(n_devices=8, n_edges=2, side=150.0, radio_range=50.0)


def uniform_call_tasks(scenario: OffloadingScenario, rng: np.random.Generator) -> dict:
    """Draw one instance's tasks with one numpy call per quantity, in the documented order."""
    n = scenario.n_devices
    cpu = rng.uniform(*scenario.device_cpu_speed_range, size=n)
    bits = rng.uniform(*scenario.task_bits_range, size=n)
    cycles = rng.uniform(*scenario.task_cycles_range, size=n)
    mining = rng.random(n) < scenario.mining_task_share
    share = np.where(mining, rng.uniform(*scenario.hash_share_range, size=n), 0.0)
    weight = rng.uniform(*scenario.delay_weight_range, size=n)
    return {
        "device_cpu_speed": cpu,
        "task_bits": bits,
        "task_cycles": cycles,
        "is_mining": mining,
        "hash_share": share,
        "delay_weight": weight,
    }


@pytest.mark.parametrize("seed", range(5))
def test_tasks_equal_uniform_calls(seed: int) -> None:
    tasks = sample_tasks(SCENARIO, np.random.default_rng(seed))
    expected = uniform_call_tasks(SCENARIO, np.random.default_rng(seed))

    for name, values in expected.items():
        assert np.array_equal(getattr(tasks, name)[0], values), f"seed {seed}: {name} differs"


@pytest.mark.parametrize("seed", range(3))
def test_positions_equal_uniform_call(seed: int) -> None:
    positions = sample_device_positions(SCENARIO, np.random.default_rng(seed))
    expected = np.random.default_rng(seed).uniform(0.0, SCENARIO.side, size=(8, 2))

    assert np.array_equal(positions, expected)


def test_draw_instances_match_own_generators() -> None:
    seeds = [3, 14, 15]

    positions, tasks, extra = draw_instances(
        SCENARIO, [np.random.default_rng(seed) for seed in seeds], extra_draws=5
    )

    for index, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        assert np.array_equal(positions[index], sample_device_positions(SCENARIO, rng))
        alone = sample_tasks(SCENARIO, rng)
        for name in ("device_cpu_speed", "task_bits", "is_mining", "hash_share", "delay_weight"):
            assert np.array_equal(getattr(tasks, name)[index], getattr(alone, name)[0]), (
                f"instance {index}: {name} differs from a draw with seed {seed} alone"
            )
        assert np.array_equal(extra[index], rng.random(5)), f"instance {index}: extra draws"


def test_reputation_draws_follow_tasks() -> None:
    """With reputation, an instance draws reliabilities, then failure draws, after its tasks."""
    market = OffloadingMarket(num_instances=2, reputation=True, max_cycles=3)
    market.seed([21, 22])
    market.reset()

    for index, seed in enumerate([21, 22]):
        rng = np.random.default_rng(seed)
        sample_device_positions(market.scenario, rng)
        sample_tasks(market.scenario, rng)
        low, high = market.reliability
        reliabilities = rng.uniform(low, high, size=market.n_edges)
        failure_draws = rng.random((3, market.n_devices))
        assert market.reliabilities is not None and market.failure_draws is not None
        assert np.array_equal(market.reliabilities[index], reliabilities)
        assert np.array_equal(market.failure_draws[index], failure_draws)


@pytest.mark.parametrize("seed", range(4))
def test_route_costs_equal_cumulative_sum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (3, 4, 5, 6)
    alpha = rng.random(shape) * 1e-3
    beta = rng.random(shape) * 1e-2
    others = rng.integers(0, 9, shape)
    weights = rng.random((3, 4, 1)) * 5.0
    private = rng.random((3, 4, 5))

    costs = model.route_costs(alpha, beta, others, weights, private)

    delays = alpha * (others + 1) + beta
    expected = weights * np.cumsum(delays, axis=-1)[..., -1] + private
    assert np.array_equal(costs, expected)


def test_route_costs_broadcast_entries() -> None:
    alpha = np.array([[1e-3, 2e-3, 0.0]])
    beta = np.array([0.01, 0.02, 0.0])
    others = np.array([[0, 3, 0], [2, 1, 0]])

    costs = model.route_costs(alpha, beta, others, np.array([1.0, 2.0]), np.zeros(2))

    delays = alpha * (others + 1) + beta
    expected = np.array([1.0, 2.0]) * np.cumsum(delays, axis=-1)[..., -1]
    assert np.array_equal(costs, expected)


@pytest.mark.parametrize("seed", range(4))
def test_others_on_routes_equal_pairwise_check(seed: int) -> None:
    game = sample_games(SCENARIO, range(seed * 10, seed * 10 + 5))
    actions = random_profile(game, seed)
    candidates = game.topology.route_resources
    routes = model.chosen_routes(candidates, actions)
    loads = model.resource_loads(routes, game.topology.n_resources + 1)

    others = model.others_on_routes(candidates, routes, loads)

    own = (candidates[:, :, :, :, None] == routes[:, :, None, None, :]).any(axis=-1)
    assert np.array_equal(others, model.gather(loads, candidates) - own)


def test_chosen_routes_pick_action_rows() -> None:
    game = sample_games(SCENARIO, [1, 2])
    actions = random_profile(game, 0)

    routes = model.chosen_routes(game.topology.route_resources, actions)

    for b in range(2):
        for i in range(SCENARIO.n_devices):
            expected = game.topology.route_resources[b, i, actions[b, i]]
            assert np.array_equal(routes[b, i], expected), f"instance {b}, device {i}"


def test_kept_masks_follow_balances() -> None:
    """With a finite device_balance the masks change as balances do, round by round."""
    market = OffloadingMarket(num_instances=3, device_balance=1.5, max_cycles=6)
    market.seed([4, 5, 6])
    market.reset()
    rng = np.random.default_rng(0)

    for step in range(6):
        mask = market.action_masks()["device"]
        provider, relays = model.action_payments(market.game)
        balance = market.ledger.balances[:, : market.n_devices, None]
        expected = market.game.action_mask & ((provider + relays) <= balance + 1e-9)
        assert np.array_equal(mask, expected), f"step {step}: stale action mask"
        choice = np.argmax(rng.random(mask.shape) * mask, axis=2)
        market.step({"device": choice})


def test_kept_deviation_costs_match_recomputed() -> None:
    market = OffloadingMarket(num_instances=3, reference=True, max_cycles=4)
    market.seed([7, 8, 9])
    market.reset()
    rng = np.random.default_rng(1)

    for step in range(4):
        mask = market.action_masks()["device"]
        choice = np.argmax(rng.random(mask.shape) * mask, axis=2)
        result = market.step({"device": choice})
        costs = model.device_costs(market.game, choice)
        assert np.array_equal(result.infos["device"][keys.COST], costs), f"step {step}: costs"
        deviations = model.deviation_costs(market.game, choice)
        expected_delay = (deviations - market.game.private_costs) / market.game.weights[:, :, None]
        expected_delay = np.where(market.game.action_mask, expected_delay, 0.0)
        assert np.array_equal(market.route_delays(), expected_delay), f"step {step}: delays"
