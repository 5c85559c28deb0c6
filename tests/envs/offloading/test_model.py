"""Costs, potential, rewards and profits of the offloading model.

The vectorized functions of ``model.py`` are checked against the plain-Python loops of
``conftest.py`` and against hand computations on a line of four devices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.baselines import random_profile
from ledgerzoo.envs.offloading.game import (
    OffloadingGame,
    Tasks,
    build_game,
    sample_games,
    sample_tasks,
)
from ledgerzoo.envs.offloading.scenario import OffloadingScenario
from ledgerzoo.envs.offloading.topology import build_topology

from .conftest import ReferenceCosts, ReferencePotential

SCENARIO = OffloadingScenario(n_devices=8, n_edges=2, side=150.0, radio_range=50.0)
# Relative tolerance of float comparisons between the vectorized and the looped sums.
RELATIVE = 1e-12


def line_game() -> OffloadingGame:
    """Four devices 40 m apart on a line and one edge 40 m past the last: 3, 2, 1, 0 relays."""
    scenario = OffloadingScenario(
        n_devices=4,
        n_edges=1,
        side=200.0,
        radio_range=45.0,
        edge_range=45.0,
        edge_positions=((170.0, 10.0),),
    )
    devices = np.array([[[10.0, 10.0], [50.0, 10.0], [90.0, 10.0], [130.0, 10.0]]])
    topology = build_topology(
        devices, scenario.edge_position_array, scenario.radio_range, scenario.edge_range
    )
    tasks = Tasks(
        device_cpu_speed=np.array([[1e9, 0.8e9, 1.2e9, 0.6e9]]),
        task_bits=np.array([[1e6, 2e6, 3e6, 4e6]]),
        task_cycles=np.array([[1e9, 2e9, 0.5e9, 1.5e9]]),
        is_mining=np.array([[True, False, True, False]]),
        hash_share=np.array([[0.02, 0.0, 0.04, 0.0]]),
        delay_weight=np.array([[1.0, 0.5, 2.0, 1.5]]),
    )
    return build_game(scenario, topology, tasks)


def test_private_costs_by_hand() -> None:
    game = line_game()
    s = game.scenario
    w = s.time_weight * np.array([1.0, 0.5, 2.0, 1.5])
    f = np.array([1e9, 0.8e9, 1.2e9, 0.6e9])
    bits = np.array([1e6, 2e6, 3e6, 4e6])
    cycles = np.array([1e9, 2e9, 0.5e9, 1.5e9])
    share = np.array([0.02, 0.0, 0.04, 0.0])
    relays = np.array([3, 2, 1, 0])

    def loss(z: float) -> np.ndarray:
        return s.block_reward * share * (1.0 - np.exp(-s.block_rate * z))

    local = (
        w * cycles / f
        + s.energy_weight * s.switched_capacitance * f**2 * cycles
        + loss(s.propagation_delay_device)
    )
    first_rate = np.where(relays > 0, s.device_link_rate, s.access_link_rate)
    sending = s.energy_weight * s.transmit_power * bits / first_rate + s.relay_fee * bits * relays
    edge = sending + s.edge_prices[0] * cycles + loss(s.propagation_delay_edge)
    cloud = (
        sending
        + s.cloud_price * cycles
        + w * cycles / s.cloud_cpu_speed
        + loss(s.propagation_delay_cloud)
    )
    expected = np.stack([local, edge, cloud], axis=1)
    np.testing.assert_allclose(game.private_costs[0], expected, rtol=RELATIVE)
    np.testing.assert_allclose(game.weights[0], w)
    np.testing.assert_allclose(game.mining_income[0], s.block_reward * share)


def test_orphan_loss_falls_with_delay() -> None:
    share = np.array([0.0, 0.05])
    assert model.orphan_loss(share, 10.0, 0.1, 0.0).tolist() == [0.0, 0.0]
    losses = [model.orphan_loss(share, 10.0, 0.1, z)[1] for z in (5.0, 1.0, 0.2)]
    assert losses[0] > losses[1] > losses[2] > 0.0
    assert losses[0] == pytest.approx(10.0 * 0.05 * (1.0 - math.exp(-0.5)))


def test_line_costs_by_hand() -> None:
    game = line_game()
    s = game.scenario
    # Devices 0 and 1 offload to the edge, device 2 to the cloud, device 3 runs locally.
    actions = np.array([[1, 1, 2, 0]])
    a_device = s.congestion_task_bits / s.device_link_rate
    a_access = s.congestion_task_bits / s.access_link_rate
    a_cpu = s.congestion_task_cycles / s.edge_cpu_speed
    a_backhaul = s.congestion_task_bits / s.backhaul_rate
    d_device, d_access, d_backhaul = (
        s.device_link_latency,
        s.access_link_latency,
        s.backhaul_latency,
    )
    # Loads: link 0->1: 1 task, 1->2: 2, 2->3: 3, access 3->edge: 3, CPU: 2, backhaul: 1.
    delay_0 = (
        (a_device * 1 + d_device)
        + (a_device * 2 + d_device)
        + (a_device * 3 + d_device)
        + (a_access * 3 + d_access)
        + a_cpu * 2
    )
    delay_1 = (
        (a_device * 2 + d_device)
        + (a_device * 3 + d_device)
        + (a_access * 3 + d_access)
        + a_cpu * 2
    )
    delay_2 = (a_device * 3 + d_device) + (a_access * 3 + d_access) + (a_backhaul * 1 + d_backhaul)
    h = game.private_costs[0]
    w = game.weights[0]
    expected = [
        w[0] * delay_0 + h[0, 1],
        w[1] * delay_1 + h[1, 1],
        w[2] * delay_2 + h[2, 2],
        h[3, 0],
    ]
    np.testing.assert_allclose(model.device_costs(game, actions)[0], expected, rtol=RELATIVE)

    fees = s.relay_fee * np.array([1e6, 2e6, 3e6, 4e6])
    # Device 1 relays task 0, device 2 relays tasks 0 and 1, device 3 relays tasks 0 to 2.
    np.testing.assert_allclose(
        model.relay_income(game, actions)[0],
        [0.0, fees[0], fees[0] + fees[1], fees[0] + fees[1] + fees[2]],
        rtol=RELATIVE,
    )
    profit = (s.edge_prices[0] - s.edge_running_costs[0]) * (1e9 + 2e9)
    np.testing.assert_allclose(model.edge_profits(game, actions)[0], [profit], rtol=RELATIVE)
    np.testing.assert_allclose(
        model.rewards(game, actions),
        game.mining_income - model.device_costs(game, actions) + model.relay_income(game, actions),
    )


@pytest.mark.parametrize("seed", range(5))
def test_costs_match_loops(seed: int, reference_costs: ReferenceCosts) -> None:
    game = sample_games(SCENARIO, range(seed * 10, seed * 10 + 6))
    actions = random_profile(game, seed)
    costs = model.device_costs(game, actions)
    for b in range(game.batch_size):
        np.testing.assert_allclose(
            costs[b], reference_costs(game, b, actions[b].tolist()), rtol=RELATIVE
        )
    np.testing.assert_allclose(model.total_cost(game, actions), costs.sum(axis=1))
    assert np.all(costs > 0.0)
    assert np.all(game.private_costs >= 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_potential_matches_loops(seed: int, reference_potential: ReferencePotential) -> None:
    game = sample_games(SCENARIO, range(seed * 10, seed * 10 + 6))
    actions = random_profile(game, seed)
    phi = model.potential(game, actions)
    for b in range(game.batch_size):
        assert phi[b] == pytest.approx(
            reference_potential(game, b, actions[b].tolist()), rel=RELATIVE
        )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    device=st.integers(0, SCENARIO.n_devices - 1),
    profile_seed=st.integers(0, 10_000),
    action_seed=st.integers(0, 10_000),
)
def test_weighted_potential_property(
    seed: int, device: int, profile_seed: int, action_seed: int
) -> None:
    """cost_i(a_i', a_-i) - cost_i(a) = w_i (Phi(a_i', a_-i) - Phi(a)) for every legal a_i'."""
    game = sample_games(SCENARIO, [seed])
    actions = random_profile(game, profile_seed)
    before_cost = model.device_costs(game, actions)[0, device]
    before_phi = model.potential(game, actions)[0]
    legal = np.flatnonzero(game.action_mask[0, device])
    rng = np.random.default_rng(action_seed)
    for action in rng.permutation(legal):
        changed = actions.copy()
        changed[0, device] = action
        cost_change = model.device_costs(game, changed)[0, device] - before_cost
        phi_change = model.potential(game, changed)[0] - before_phi
        scale = before_cost + abs(cost_change)
        assert cost_change == pytest.approx(
            game.weights[0, device] * phi_change, abs=1e-11 * scale
        ), f"device {device} switching {actions[0, device]} -> {action}"


@pytest.mark.parametrize("seed", range(4))
def test_deviation_costs_equal_switched_costs(seed: int) -> None:
    game = sample_games(SCENARIO, range(seed * 10, seed * 10 + 4))
    actions = random_profile(game, seed)
    deviations = model.deviation_costs(game, actions)
    current = model.device_costs(game, actions)
    np.testing.assert_array_equal(
        np.take_along_axis(deviations, actions[:, :, None], axis=2)[:, :, 0], current
    )
    assert np.all(np.isinf(deviations[~game.action_mask]))
    for b in range(game.batch_size):
        for i in range(game.n_devices):
            for action in np.flatnonzero(game.action_mask[b, i]):
                changed = actions.copy()
                changed[b, i] = action
                assert deviations[b, i, action] == model.device_costs(game, changed)[b, i]


@pytest.mark.parametrize("seed", range(4))
def test_relay_fees_are_conserved(seed: int) -> None:
    """Every relay fee a device pays is another device's relay income."""
    game = sample_games(SCENARIO, range(seed * 10, seed * 10 + 6))
    actions = random_profile(game, seed)
    bits = game.tasks.task_bits
    offloaded = actions > 0
    edges = (actions - 1) % game.n_edges
    hops = np.take_along_axis(game.topology.relay_hops, edges[:, :, None], axis=2)[:, :, 0]
    paid = np.where(offloaded, game.scenario.relay_fee * bits * hops, 0.0).sum(axis=1)
    np.testing.assert_allclose(model.relay_income(game, actions).sum(axis=1), paid, rtol=RELATIVE)


def test_edge_profits_sum_edge_tasks() -> None:
    game = sample_games(SCENARIO, range(6))
    actions = random_profile(game, 2)
    profits = model.edge_profits(game, actions)
    for b in range(game.batch_size):
        for k in range(game.n_edges):
            on_edge = actions[b] == 1 + k
            expected = (game.edge_prices[b, k] - game.running_costs[b, k]) * game.tasks.task_cycles[
                b, on_edge
            ].sum()
            assert profits[b, k] == pytest.approx(expected, rel=RELATIVE)


def test_with_edge_prices_changes_edge_actions_only() -> None:
    game = sample_games(SCENARIO, range(3))
    prices = np.array([[3e-10, 1e-10], [0.0, 5e-10], [2e-10, 2e-10]])
    repriced = game.with_edge_prices(prices)
    change = repriced.private_costs - game.private_costs
    mask = game.action_mask
    k = game.n_edges
    expected_edge = (prices - game.edge_prices)[:, None, :] * game.tasks.task_cycles[:, :, None]
    np.testing.assert_allclose(
        change[:, :, 1 : 1 + k], np.where(mask[:, :, 1 : 1 + k], expected_edge, 0.0), atol=1e-15
    )
    np.testing.assert_array_equal(change[:, :, 0], 0.0)
    np.testing.assert_array_equal(change[:, :, 1 + k :], 0.0)
    with pytest.raises(ValueError, match=r"edge_prices.*-1"):
        game.with_edge_prices(np.full((3, 2), -1.0))


def test_take_selects_instances() -> None:
    game = sample_games(SCENARIO, range(5))
    part = game.take(np.array([3, 1, 3]))
    actions = random_profile(game, 0)
    np.testing.assert_array_equal(
        model.device_costs(part, actions[[3, 1, 3]]), model.device_costs(game, actions)[[3, 1, 3]]
    )


def test_validate_profile_errors() -> None:
    game = line_game()
    assert model.validate_profile(game, np.array([[0, 1, 2, 0]])).dtype == np.int64
    with pytest.raises(ValueError, match=r"shape \(B, N\) = \(1, 4\).*\(4,\)"):
        model.validate_profile(game, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"integers.*float64"):
        model.validate_profile(game, np.array([[0.0, 1.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"action 3 of device 2 in instance 0 is outside \[0, 3\)"):
        model.validate_profile(game, np.array([[0, 1, 3, 0]]))

    far = OffloadingScenario(n_devices=2, n_edges=1, side=1000.0, edge_positions=((10.0, 10.0),))
    topology = build_topology(
        np.array([[[10.0, 20.0], [900.0, 900.0]]]),
        far.edge_position_array,
        far.radio_range,
        far.edge_range,
    )
    isolated = build_game(far, topology, sample_tasks(far, np.random.default_rng(0)))
    with pytest.raises(
        ValueError, match=r"action 1 of device 1 in instance 0 is masked off.*\[0\]"
    ):
        model.validate_profile(isolated, np.array([[1, 1]]))


def test_sample_games_seeds() -> None:
    seeds = instance_seeds(7, 3)
    game = sample_games(SCENARIO, seeds)
    assert game.batch_size == 3
    again = sample_games(SCENARIO, [seeds[2]])
    np.testing.assert_array_equal(game.tasks.task_bits[2], again.tasks.task_bits[0])
    np.testing.assert_array_equal(
        game.topology.device_positions[2], again.topology.device_positions[0]
    )
    assert np.all(game.tasks.hash_share[~game.tasks.is_mining] == 0.0)
    low, high = SCENARIO.task_cycles_range
    assert np.all((game.tasks.task_cycles >= low) & (game.tasks.task_cycles <= high))
    with pytest.raises(ValueError, match="at least one seed"):
        sample_games(SCENARIO, [])
    with pytest.raises(ValueError, match=r"non-negative integer, got 1\.5"):
        sample_games(SCENARIO, [1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-negative integer, got -1"):
        sample_games(SCENARIO, [-1])


def test_build_game_shape_errors() -> None:
    game = sample_games(SCENARIO, [0, 1])
    with pytest.raises(ValueError, match=r"tasks have shape \(1, 8\).*B=2"):
        build_game(SCENARIO, game.topology, game.tasks.take(np.array([0])))
    other = OffloadingScenario(n_devices=8, n_edges=3)
    with pytest.raises(ValueError, match="n_edges=3"):
        build_game(other, game.topology, game.tasks)
