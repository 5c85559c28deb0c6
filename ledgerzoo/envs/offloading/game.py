"""Instances of the offloading game: a topology, one task per device, prices and delays.

A batch of B instances is one :class:`OffloadingGame`. :func:`sample_games` draws each
instance from its own seed, so instance b of a batch equals the game drawn alone from the
same seed, whatever the batch around it.

The congestion delay of a resource shared by n tasks is alpha n + beta seconds (see
``model.py``). alpha is the time a reference task (``OffloadingScenario.congestion_task_bits``
bits, ``congestion_task_cycles`` cycles) occupies the resource, and beta its fixed latency:

    device link   alpha = B_ref / R_device    beta = device_link_latency
    access link   alpha = B_ref / R_access    beta = access_link_latency
    edge CPU      alpha = C_ref / F_edge      beta = 0
    backhaul      alpha = B_ref / R_backhaul  beta = backhaul_latency
    padding       alpha = 0                   beta = 0
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.scenario import OffloadingScenario, uniform_in_range
from ledgerzoo.envs.offloading.topology import (
    Topology,
    build_topology,
    positions_from_uniforms,
    resource_kinds,
)

# Uniform draws per device for its task: CPU speed, bits, cycles, mining flag, hash share and
# delay weight.
TASK_DRAWS_PER_DEVICE = 6


@dataclass(frozen=True)
class Tasks:
    """The devices and their tasks in B instances, drawn every round.

    Attributes:
        device_cpu_speed: CPU speed F_i of each device (Hz), (B, N).
        task_bits: Input size B_i of each task (bits), (B, N).
        task_cycles: CPU cycles C_i of each task (cycles), (B, N).
        is_mining: Whether each task is a mining task, (B, N) bool.
        hash_share: Share of the network's hash power of a mining task, 0 for a data task,
            (B, N).
        delay_weight: Dimensionless delay weight u_i, (B, N). The device values a second of
            delay at w_i = lambda^T u_i coins.
    """

    device_cpu_speed: np.ndarray
    task_bits: np.ndarray
    task_cycles: np.ndarray
    is_mining: np.ndarray
    hash_share: np.ndarray
    delay_weight: np.ndarray

    def take(self, indices: np.ndarray) -> Tasks:
        """Return the tasks of the instances ``indices`` (repeats allowed), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return Tasks(**{name: getattr(self, name)[indices] for name in self.__dataclass_fields__})


@dataclass(frozen=True)
class OffloadingGame:
    """B instances of the offloading game, with every array the cost functions need.

    Attributes:
        scenario: The scenario whose constants the instances use.
        topology: Links, routes and legal actions.
        tasks: The devices' tasks.
        weights: w_i = lambda^T u_i, the value of a second of delay to device i (coins per
            second), (B, N).
        edge_prices: Price p_k of each edge (coins per cycle), (B, K).
        running_costs: Running cost c_k of each edge (coins per cycle), (B, K).
        resource_alpha: Congestion delay alpha of each resource per task using it (s),
            (B, R + 1). The padding resource R has 0.
        resource_beta: Fixed delay beta of each resource (s), (B, R + 1). The padding
            resource R has 0.
        private_costs: h_i(a) of every action (coins), (B, N, A), >= 0 and 0 where the
            action is illegal.
        mining_income: R_block times the hash share of each device (coins), (B, N).
    """

    scenario: OffloadingScenario
    topology: Topology
    tasks: Tasks
    weights: np.ndarray
    edge_prices: np.ndarray
    running_costs: np.ndarray
    resource_alpha: np.ndarray
    resource_beta: np.ndarray
    private_costs: np.ndarray
    mining_income: np.ndarray

    @property
    def batch_size(self) -> int:
        """Number of instances B."""
        return self.topology.batch_size

    @property
    def n_devices(self) -> int:
        """Number of devices N."""
        return self.topology.n_devices

    @property
    def n_edges(self) -> int:
        """Number of edge servers K."""
        return self.topology.n_edges

    @property
    def n_actions(self) -> int:
        """Number of actions A = 1 + 2K of a device."""
        return self.topology.n_actions

    @property
    def action_mask(self) -> np.ndarray:
        """Whether each action is legal, (B, N, A) bool."""
        return self.topology.action_mask

    # The payments and the delays of every candidate route are fixed for a game, and every
    # round reads them.
    @functools.cached_property
    def payments(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~ledgerzoo.envs.offloading.model.action_payments` of the game: the coins every
        action pays its provider and its relays, each (B, N, A), read-only."""
        provider, relays = model.action_payments(self)
        return _read_only(provider), _read_only(relays)

    @functools.cached_property
    def candidate_alpha(self) -> np.ndarray:
        """alpha of each entry of every action's route (s), (B, N, A, L), read-only."""
        return _read_only(model.gather(self.resource_alpha, self.topology.route_resources))

    @functools.cached_property
    def candidate_beta(self) -> np.ndarray:
        """beta of each entry of every action's route (s), (B, N, A, L), read-only."""
        return _read_only(model.gather(self.resource_beta, self.topology.route_resources))

    def with_edge_prices(self, edge_prices: np.ndarray) -> OffloadingGame:
        """Return the same instances with new edge prices p_k (coins per cycle), (B, K)."""
        edge_prices = np.broadcast_to(
            np.asarray(edge_prices, dtype=np.float64), (self.batch_size, self.n_edges)
        ).copy()
        if not np.all(np.isfinite(edge_prices)) or np.any(edge_prices < 0.0):
            raise ValueError(f"edge_prices must be finite and at least 0, got {edge_prices}")
        return build_game(self.scenario, self.topology, self.tasks, edge_prices, self.running_costs)

    def take(self, indices: np.ndarray) -> OffloadingGame:
        """Return the instances ``indices`` (repeats allowed), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            topology=self.topology.take(indices),
            tasks=self.tasks.take(indices),
            weights=self.weights[indices],
            edge_prices=self.edge_prices[indices],
            running_costs=self.running_costs[indices],
            resource_alpha=self.resource_alpha[indices],
            resource_beta=self.resource_beta[indices],
            private_costs=self.private_costs[indices],
            mining_income=self.mining_income[indices],
        )


def sample_tasks(scenario: OffloadingScenario, rng: np.random.Generator) -> Tasks:
    """Draw one instance's devices and tasks as a batch of one.

    It makes one ``rng.random`` call of ``TASK_DRAWS_PER_DEVICE * N`` draws, which
    :func:`tasks_from_uniforms` turns into the tasks.
    """
    uniforms = rng.random((1, TASK_DRAWS_PER_DEVICE * scenario.n_devices))
    return tasks_from_uniforms(scenario, uniforms)


def tasks_from_uniforms(scenario: OffloadingScenario, uniforms: np.ndarray) -> Tasks:
    """Build the devices and tasks of B instances from uniform draws in [0, 1).

    Each instance's row contains N draws for every quantity in this order: CPU speed, task
    bits, task cycles, mining flag (a draw below ``mining_task_share``), hash share (drawn for
    every device, used by mining tasks), delay weight. A range value comes from
    :func:`~ledgerzoo.envs.offloading.scenario.uniform_in_range`, which equals numpy's
    ``rng.uniform`` of the same draw bit for bit.

    Args:
        scenario: Supplies N and the ranges.
        uniforms: Draws in [0, 1), (B, TASK_DRAWS_PER_DEVICE * N).

    Returns:
        The tasks of the B instances.
    """
    n = scenario.n_devices
    draws = uniforms.reshape(uniforms.shape[0], TASK_DRAWS_PER_DEVICE, n)
    is_mining = draws[:, 3] < scenario.mining_task_share
    hash_share = np.where(is_mining, uniform_in_range(draws[:, 4], scenario.hash_share_range), 0.0)
    return Tasks(
        device_cpu_speed=uniform_in_range(draws[:, 0], scenario.device_cpu_speed_range),
        task_bits=uniform_in_range(draws[:, 1], scenario.task_bits_range),
        task_cycles=uniform_in_range(draws[:, 2], scenario.task_cycles_range),
        is_mining=is_mining,
        hash_share=hash_share,
        delay_weight=uniform_in_range(draws[:, 5], scenario.delay_weight_range),
    )


def draw_instances(
    scenario: OffloadingScenario,
    generators: Sequence[np.random.Generator],
    extra_draws: int = 0,
) -> tuple[np.ndarray, Tasks, np.ndarray]:
    """Draw the device positions and tasks of one instance per generator.

    Instance b makes a single ``generators[b].random`` call: 2N draws for the positions,
    then the tasks' draws, then ``extra_draws`` more for the caller. So each instance gets
    what :func:`~ledgerzoo.envs.offloading.topology.sample_device_positions` and
    :func:`sample_tasks` give from its generator, whatever the batch. The loop over
    generators, one call each, is inherent to seeding every instance on its own. The rest is
    vectorized.

    Returns:
        Device positions (m), (B, N, 2); the tasks; the extra draws in [0, 1),
        (B, extra_draws).
    """
    n = scenario.n_devices
    position_draws = 2 * n
    task_draws = TASK_DRAWS_PER_DEVICE * n
    uniforms = np.empty((len(generators), position_draws + task_draws + extra_draws))
    for row, rng in zip(uniforms, generators, strict=True):
        rng.random(out=row)
    positions = positions_from_uniforms(scenario, uniforms[:, :position_draws])
    tasks = tasks_from_uniforms(scenario, uniforms[:, position_draws : position_draws + task_draws])
    return positions, tasks, uniforms[:, position_draws + task_draws :]


def stack_tasks(parts: Sequence[Tasks]) -> Tasks:
    """Join the instances of several task batches into one batch, in order."""
    return Tasks(
        **{
            name: np.concatenate([getattr(part, name) for part in parts], axis=0)
            for name in Tasks.__dataclass_fields__
        }
    )


def sample_games(scenario: OffloadingScenario, seeds: Sequence[int] | np.ndarray) -> OffloadingGame:
    """Draw one game instance per seed.

    Instance b uses ``numpy.random.default_rng(seeds[b])``: first the N device positions,
    then the tasks in the order :func:`sample_tasks` states. The edge prices and running
    costs are the scenario's. To derive B seeds from one base seed, use
    ``ledgerzoo.envs.core.seeding.instance_seeds(seed, B)``.

    Args:
        scenario: The scenario.
        seeds: One non-negative integer seed per instance, at least one.

    Returns:
        The B instances.

    Raises:
        ValueError: If ``seeds`` is empty or a seed is not a non-negative integer.
    """
    # A list is not converted to an array first: seeds of 2**63 and above, which
    # instance_seeds returns, would turn a mixed list into float64 and lose bits.
    seed_list = seeds.tolist() if isinstance(seeds, np.ndarray) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must contain at least one seed, got an empty sequence")
    for seed in seed_list:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"every seed must be a non-negative integer, got {seed!r}")
    generators = [np.random.default_rng(seed) for seed in seed_list]
    positions, tasks, _ = draw_instances(scenario, generators)
    topology = build_topology(
        positions,
        scenario.edge_position_array,
        scenario.radio_range,
        scenario.edge_range,
    )
    return build_game(scenario, topology, tasks)


def build_game(
    scenario: OffloadingScenario,
    topology: Topology,
    tasks: Tasks,
    edge_prices: np.ndarray | None = None,
    running_costs: np.ndarray | None = None,
) -> OffloadingGame:
    """Assemble B game instances from a topology and tasks.

    Args:
        scenario: The scenario that supplies every constant.
        topology: The instances' topology, batch size B.
        tasks: The instances' tasks, batch size B.
        edge_prices: Prices p_k (coins per cycle), broadcastable to (B, K). The scenario's by
            default.
        running_costs: Running costs c_k (coins per cycle), broadcastable to (B, K). The
            scenario's by default.

    Returns:
        The game instances.

    Raises:
        ValueError: If the batch sizes or the numbers of devices or edges disagree.
    """
    batch, n_devices, n_edges = topology.batch_size, topology.n_devices, topology.n_edges
    if tasks.task_bits.shape != (batch, n_devices):
        raise ValueError(
            f"tasks have shape {tasks.task_bits.shape} but the topology has B={batch} "
            f"instances of N={n_devices} devices"
        )
    if n_edges != scenario.n_edges or n_devices != scenario.n_devices:
        raise ValueError(
            f"the topology has N={n_devices}, K={n_edges} but the scenario has "
            f"n_devices={scenario.n_devices}, n_edges={scenario.n_edges}"
        )
    if edge_prices is None:
        edge_prices = scenario.edge_prices
    if running_costs is None:
        running_costs = scenario.edge_running_costs
    edge_prices = np.broadcast_to(np.asarray(edge_prices, np.float64), (batch, n_edges)).copy()
    running_costs = np.broadcast_to(np.asarray(running_costs, np.float64), (batch, n_edges)).copy()

    weights = scenario.time_weight * tasks.delay_weight
    alpha, beta = _resource_delays(scenario, n_devices, n_edges)
    first_hop_rate = np.where(
        topology.relay_hops >= 1, scenario.device_link_rate, scenario.access_link_rate
    )
    private_costs = model.private_costs(
        weights=weights,
        task_bits=tasks.task_bits,
        task_cycles=tasks.task_cycles,
        device_cpu_speed=tasks.device_cpu_speed,
        hash_share=tasks.hash_share,
        relay_hops=topology.relay_hops,
        first_hop_rate=first_hop_rate,
        edge_prices=edge_prices,
        scenario=scenario,
    )
    private_costs = np.where(topology.action_mask, private_costs, 0.0)
    return OffloadingGame(
        scenario=scenario,
        topology=topology,
        tasks=tasks,
        weights=weights,
        edge_prices=edge_prices,
        running_costs=running_costs,
        resource_alpha=np.broadcast_to(alpha, (batch, alpha.size)).copy(),
        resource_beta=np.broadcast_to(beta, (batch, beta.size)).copy(),
        private_costs=private_costs,
        mining_income=scenario.block_reward * tasks.hash_share,
    )


def _resource_delays(
    scenario: OffloadingScenario, n_devices: int, n_edges: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return alpha and beta of every resource index and the padding (s), each (R + 1,)."""
    kinds = resource_kinds(n_devices, n_edges)
    bits = scenario.congestion_task_bits
    # Indexed by ResourceKind: device link, access link, edge CPU, backhaul, padding.
    alpha_of_kind = np.array(
        [
            bits / scenario.device_link_rate,
            bits / scenario.access_link_rate,
            scenario.congestion_task_cycles / scenario.edge_cpu_speed,
            bits / scenario.backhaul_rate,
            0.0,
        ]
    )
    beta_of_kind = np.array(
        [
            scenario.device_link_latency,
            scenario.access_link_latency,
            0.0,
            scenario.backhaul_latency,
            0.0,
        ]
    )
    return alpha_of_kind[kinds], beta_of_kind[kinds]


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
