"""Costs, potential and rewards of the offloading game among IIoT devices.

Each device i has one task and chooses an action a_i: run it locally, on edge server k, or
in the cloud through edge k (the layout is in ``topology.py``). Its route route(a_i) is the
set of shared resources the task uses: directed device links to the relays, an access
link, and the edge CPU or the edge's backhaul. n_res(a) counts the tasks whose route uses
resource res.

Symbols (units):
    w_i        value of a second of delay to device i, w_i = lambda^T u_i (coins per s)
    alpha_res  congestion delay of resource res per task using it (s)
    beta_res   fixed delay of resource res (s)
    h_i(a_i)   cost of device i's own choice that does not depend on the others (coins)
    B_i        task size (bits)
    C_i        task CPU cycles (cycles)
    F_i        device CPU speed (Hz)
    F_cloud    CPU speed the cloud gives each task (Hz)
    p_k        price of edge k (coins per cycle)
    p_c        price of the cloud (coins per cycle)
    c_k        running cost of edge k (coins per cycle)
    lambda^E   value of energy (coins per J)
    kappa      switched capacitance of a device CPU (J s^2)
    P_tx       radio power of a device (W)
    R_first    rate of the first hop of the route (bit/s): a device link when the route
               has relays, else the access link
    d_k(i)     relays on the route of device i to edge k
    f          relay fee (coins per bit)
    R_block    block reward (coins)
    s_i        hash share of device i, 0 for a data task
    lambda_b   block rate (blocks per s)
    z(a_i)     propagation delay of a block mined where the task ran: z_device, z_edge or
               z_cloud (s)

Cost of device i (coins):

    cost_i(a) = w_i sum_{res in route(a_i)} (alpha_res n_res(a) + beta_res) + h_i(a_i)

    h_i(local)        = w_i C_i / F_i + lambda^E kappa F_i^2 C_i + L_i(z_device)
    h_i(edge k)       = p_k C_i + lambda^E P_tx B_i / R_first + f B_i d_k(i) + L_i(z_edge)
    h_i(cloud via k)  = p_c C_i + w_i C_i / F_cloud + lambda^E P_tx B_i / R_first
                        + f B_i d_k(i) + L_i(z_cloud)
    L_i(z)            = R_block s_i (1 - exp(-lambda_b z))     (expected orphaning loss)

The local run time is valued at the device's own w_i = lambda^T u_i, so for u_i = 1 the
term is lambda^T C_i / F_i. Every term is non-negative, and every cost is positive because
local execution and every access link take time.

The game is a weighted potential game with weights w_i and potential (s)

    Phi(a) = sum_res sum_{m=1}^{n_res(a)} (alpha_res m + beta_res) + sum_i h_i(a_i) / w_i
           = sum_res (alpha_res n_res (n_res + 1) / 2 + beta_res n_res) + sum_i h_i(a_i) / w_i

so a unilateral change of device i changes cost_i by exactly w_i times the change of Phi.

Reward of device i (coins): R_block s_i - cost_i(a) + relay income, where the relay income
is f B_j for every task j whose chosen route relays through i. Profit of edge k (coins):
sum over the tasks it runs of (p_k - c_k) C_i. Cloud tasks that pass through edge k pay the
cloud, not edge k.

Every function takes arrays whose leading axis is a batch of B independent instances, and
``actions`` is an integer profile of shape (B, N).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ledgerzoo.envs.offloading.game import OffloadingGame
    from ledgerzoo.envs.offloading.scenario import OffloadingScenario


def orphan_loss(
    hash_share: np.ndarray, block_reward: float, block_rate: float, propagation_delay: float
) -> np.ndarray:
    """Compute the expected mining income lost to orphaning, R_block s_i (1 - exp(-lambda_b z)).

    The result is in coins, with the shape of ``hash_share``.

    1 - exp(-lambda_b z) is the probability that the network finds a competing block while
    the device's block propagates for z seconds.
    """
    return block_reward * hash_share * -np.expm1(-block_rate * propagation_delay)


def private_costs(
    *,
    weights: np.ndarray,
    task_bits: np.ndarray,
    task_cycles: np.ndarray,
    device_cpu_speed: np.ndarray,
    hash_share: np.ndarray,
    relay_hops: np.ndarray,
    first_hop_rate: np.ndarray,
    edge_prices: np.ndarray,
    scenario: OffloadingScenario,
) -> np.ndarray:
    """Compute h_i(a) of every action, the cost that does not depend on the others (coins).

    Args:
        weights: w_i (coins per s), (B, N).
        task_bits: B_i (bits), (B, N).
        task_cycles: C_i (cycles), (B, N).
        device_cpu_speed: F_i (Hz), (B, N).
        hash_share: s_i, 0 for data tasks, (B, N).
        relay_hops: d_k(i), -1 where edge k is unreachable, (B, N, K).
        first_hop_rate: Rate of the first hop of the route to edge k (bit/s), (B, N, K).
        edge_prices: p_k (coins per cycle), (B, K).
        scenario: Supplies lambda^E, kappa, P_tx, p_c, F_cloud, f and the mining constants.

    Returns:
        h (coins), (B, N, 1 + 2K), in the action layout of ``topology.py``. Values of
        unreachable edges are finite but meaningless, and callers mask them.
    """
    s = scenario
    local = (
        weights * task_cycles / device_cpu_speed
        + s.energy_weight * s.switched_capacitance * device_cpu_speed**2 * task_cycles
        + orphan_loss(hash_share, s.block_reward, s.block_rate, s.propagation_delay_device)
    )
    # Costs of sending the task to edge k, shared by the edge and the cloud actions, (B, N, K).
    bits = task_bits[:, :, None]
    relay_fees, edge_bills, cloud_bills = provider_payments(
        task_bits, task_cycles, relay_hops, edge_prices, s
    )
    sending = s.energy_weight * s.transmit_power * bits / first_hop_rate + relay_fees
    edge = (
        sending
        + edge_bills
        + orphan_loss(hash_share, s.block_reward, s.block_rate, s.propagation_delay_edge)[
            :, :, None
        ]
    )
    cloud = (
        sending
        + cloud_bills
        + (weights * task_cycles / s.cloud_cpu_speed)[:, :, None]
        + orphan_loss(hash_share, s.block_reward, s.block_rate, s.propagation_delay_cloud)[
            :, :, None
        ]
    )
    return np.concatenate([local[:, :, None], edge, cloud], axis=2)


def provider_payments(
    task_bits: np.ndarray,
    task_cycles: np.ndarray,
    relay_hops: np.ndarray,
    edge_prices: np.ndarray,
    scenario: OffloadingScenario,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute the coins a device pays for sending its task through edge k and running it.

    Args:
        task_bits: B_i (bits), (B, N).
        task_cycles: C_i (cycles), (B, N).
        relay_hops: d_k(i), -1 where edge k is unreachable, (B, N, K).
        edge_prices: p_k (coins per cycle), (B, K).
        scenario: Supplies p_c and f.

    Returns:
        Relay fees f B_i d_k(i), the edge's bill p_k C_i and the cloud's bill p_c C_i, each
        (B, N, K) coins.
    """
    bits = task_bits[:, :, None]
    cycles = task_cycles[:, :, None]
    relay_fees = scenario.relay_fee * bits * np.maximum(relay_hops, 0)
    edge_bills = edge_prices[:, None, :] * cycles
    cloud_bills = np.broadcast_to(scenario.cloud_price * cycles, relay_fees.shape)
    return relay_fees, edge_bills, cloud_bills


def action_payments(game: OffloadingGame) -> tuple[np.ndarray, np.ndarray]:
    """Return the coins every action pays its provider and its relays, each (B, N, A).

    Local execution pays nothing; edge k is paid p_k C_i, the cloud p_c C_i, and the relays
    of the route f B_i each.
    """
    relay_fees, edge_bills, cloud_bills = provider_payments(
        game.tasks.task_bits,
        game.tasks.task_cycles,
        game.topology.relay_hops,
        game.edge_prices,
        game.scenario,
    )
    zero = np.zeros((*relay_fees.shape[:2], 1))
    provider = np.concatenate([zero, edge_bills, cloud_bills], axis=2)
    relays = np.concatenate([zero, relay_fees, relay_fees], axis=2)
    return provider, relays


def validate_profile(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Check an action profile and return it as int64, (B, N).

    Raises:
        ValueError: If the shape is not (B, N), an action is not an integer in [0, A), or an
            action is masked off. The message names the instance, device and action.
    """
    array = np.asarray(actions)
    expected = (game.batch_size, game.n_devices)
    if array.shape != expected:
        raise ValueError(f"actions must have shape (B, N) = {expected}, got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"actions must be integers in [0, {game.n_actions}), got {array.dtype}")
    outside = (array < 0) | (array >= game.n_actions)
    if outside.any():
        b, i = np.argwhere(outside)[0]
        raise ValueError(
            f"action {array[b, i]} of device {i} in instance {b} is outside [0, {game.n_actions})"
        )
    array = array.astype(np.int64)
    legal = np.take_along_axis(game.action_mask, array[:, :, None], axis=2)[:, :, 0]
    if not legal.all():
        b, i = np.argwhere(~legal)[0]
        raise ValueError(
            f"action {array[b, i]} of device {i} in instance {b} is masked off: its edge is "
            f"unreachable. Legal actions: {np.flatnonzero(game.action_mask[b, i]).tolist()}"
        )
    return array


def chosen_routes(route_resources: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Resource indices of each device's chosen route, padded, (B, N, L)."""
    batch, n_devices, n_actions, length = route_resources.shape
    # One row per device, picked by flat index: faster than take_along_axis at large B.
    flat = route_resources.reshape(batch * n_devices, n_actions, length)
    picked = flat[np.arange(batch * n_devices), np.asarray(actions).reshape(-1)]
    return picked.reshape(batch, n_devices, length)


def resource_loads(routes: np.ndarray, n_slots: int) -> np.ndarray:
    """Count the routes that use each resource: n_res, (B, n_slots) int64.

    Args:
        routes: Resource indices of the chosen routes, (B, N, L), in [0, n_slots).
        n_slots: R + 1: the resources and the padding resource, whose count is meaningless.
    """
    batch = routes.shape[0]
    offsets = (np.arange(batch, dtype=np.int64) * n_slots)[:, None, None]
    counts = np.bincount((routes + offsets).ravel(), minlength=batch * n_slots)
    return counts.reshape(batch, n_slots)


def gather(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Pick values[b, indices[b, ...]] for every instance b: per-instance lookups.

    Args:
        values: Per-instance table, (B, M).
        indices: Indices into the table, (B, ...), in [0, M).

    Returns:
        Array of the shape of ``indices``.
    """
    batch, size = values.shape
    offsets = (np.arange(batch, dtype=np.int64) * size).reshape(
        (batch,) + (1,) * (indices.ndim - 1)
    )
    return values.ravel()[indices + offsets]


def route_costs(
    alpha: np.ndarray,
    beta: np.ndarray,
    others: np.ndarray,
    weights: np.ndarray,
    private: np.ndarray,
) -> np.ndarray:
    """Compute cost_i = w_i sum over a route of (alpha (others + 1) + beta) + h_i (coins).

    ``others`` counts the other tasks on each resource of the route, so ``others + 1`` is
    n_res once the device itself uses the route. This is the one place the cost formula is
    written. The sum over the route adds its entries one after the other in route order, so
    trailing padding, whose alpha and beta are 0, leaves every value bit-identical whatever
    the padded length L of the batch.

    Args:
        alpha: alpha_res of each route entry (s), (..., L).
        beta: beta_res of each route entry (s), (..., L).
        others: Other tasks on each route entry, (..., L) int.
        weights: w_i (coins per s), broadcastable to the leading shape (...).
        private: h_i of the route's action (coins), the leading shape (...).

    Returns:
        Costs (coins), the leading shape (...).
    """
    # A loop over the L route entries, each vectorized over the leading shape. It adds in the
    # order of np.cumsum, which took about 4x longer on (4096, 8, 5, 9) arrays (numpy 2.4).
    alpha, beta, others = np.broadcast_arrays(alpha, beta, others)
    shared_delay = alpha[..., 0] * (others[..., 0] + 1) + beta[..., 0]
    for entry in range(1, alpha.shape[-1]):
        shared_delay = shared_delay + (
            alpha[..., entry] * (others[..., entry] + 1) + beta[..., entry]
        )
    return weights * shared_delay + private


def device_costs(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute every device's cost cost_i(a) (coins), (B, N)."""
    routes = chosen_routes(game.topology.route_resources, actions)
    loads = resource_loads(routes, game.topology.n_resources + 1)
    private = np.take_along_axis(game.private_costs, actions[:, :, None], axis=2)[:, :, 0]
    return route_costs(
        gather(game.resource_alpha, routes),
        gather(game.resource_beta, routes),
        gather(loads, routes) - 1,
        game.weights,
        private,
    )


def deviation_costs(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute cost_i(a_i', a_-i) of every action a_i' of every device, others fixed (coins).

    Entry (b, i, a) is what device i would pay if it alone switched to action a, so entry
    (b, i, actions[b, i]) is its current cost. Illegal actions get +inf.

    Returns:
        Costs (coins), (B, N, A).
    """
    candidates = game.topology.route_resources
    routes = chosen_routes(candidates, actions)
    loads = resource_loads(routes, game.topology.n_resources + 1)
    others = others_on_routes(candidates, routes, loads)
    costs = route_costs(
        game.candidate_alpha,
        game.candidate_beta,
        others,
        game.weights[:, :, None],
        game.private_costs,
    )
    return np.where(game.action_mask, costs, np.inf)


def others_on_routes(candidates: np.ndarray, routes: np.ndarray, loads: np.ndarray) -> np.ndarray:
    """Count the other tasks on every resource of every candidate route, (B, N, A, L) int64.

    Args:
        candidates: Every action's route, (B, N, A, L).
        routes: Each device's chosen route, (B, N, L).
        loads: n_res of the chosen routes, (B, R + 1).
    """
    batch, n_devices, length = routes.shape
    slots = loads.shape[1]
    # on_route[b * N + i, res]: whether device i's chosen route uses resource res. A lookup of
    # every candidate entry in it finds the entries that the device itself already loads.
    on_route = np.zeros((batch * n_devices, slots), dtype=bool)
    rows = np.arange(batch * n_devices)[:, None]
    on_route[rows, routes.reshape(batch * n_devices, length)] = True
    flat_candidates = candidates.reshape(batch * n_devices, -1) + rows * slots
    own = on_route.reshape(-1)[flat_candidates].reshape(candidates.shape)
    return gather(loads, candidates) - own


def potential(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute the weighted potential Phi(a) (s), (B,).

    Phi = sum_res (alpha_res n_res (n_res + 1) / 2 + beta_res n_res) + sum_i h_i(a_i) / w_i.
    """
    routes = chosen_routes(game.topology.route_resources, actions)
    loads = resource_loads(routes, game.topology.n_resources + 1)
    return potential_from_loads(game, loads, actions)


def potential_from_loads(
    game: OffloadingGame, loads: np.ndarray, actions: np.ndarray
) -> np.ndarray:
    """Compute Phi from the resource loads (B, R + 1) of the profile ``actions`` (s), (B,)."""
    private = np.take_along_axis(game.private_costs, actions[:, :, None], axis=2)[:, :, 0]
    return potential_terms(game.resource_alpha, game.resource_beta, loads, private, game.weights)


def potential_terms(
    alpha: np.ndarray,
    beta: np.ndarray,
    loads: np.ndarray,
    private: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Compute Phi = sum_res (alpha n (n + 1) / 2 + beta n) + sum_i h_i / w_i (s), (B,).

    Args:
        alpha: alpha_res (s), (B, R + 1), 0 for the padding resource.
        beta: beta_res (s), (B, R + 1), 0 for the padding resource.
        loads: n_res, (B, R + 1) int.
        private: h_i(a_i) of the chosen actions (coins), (B, N).
        weights: w_i (coins per s), (B, N).
    """
    congestion = alpha * (loads * (loads + 1) // 2) + beta * loads
    return congestion.sum(axis=1) + (private / weights).sum(axis=1)


def total_cost(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute the social cost sum_i cost_i(a) (coins), (B,)."""
    return device_costs(game, actions).sum(axis=1)


def relay_income(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute each device's income as a relay, f B_j per relayed task j (coins), (B, N)."""
    batch, n_devices = actions.shape
    relays = np.take_along_axis(game.topology.route_relays, actions[:, :, None, None], axis=2)[
        :, :, 0, :
    ]
    fees = game.scenario.relay_fee * game.tasks.task_bits
    slots = n_devices + 1  # the relay padding is device index N
    offsets = (np.arange(batch, dtype=np.int64) * slots)[:, None, None]
    income = np.bincount(
        (relays + offsets).ravel(),
        weights=np.broadcast_to(fees[:, :, None], relays.shape).ravel(),
        minlength=batch * slots,
    )
    return income.reshape(batch, slots)[:, :n_devices]


def rewards(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute each device's reward R_block s_i - cost_i(a) + relay income (coins), (B, N)."""
    return game.mining_income - device_costs(game, actions) + relay_income(game, actions)


def edge_tasks(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Return whether each device's task runs on each edge server, (B, N, K) bool."""
    edges = 1 + np.arange(game.n_edges)
    return actions[:, :, None] == edges[None, None, :]


def edge_profits(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute each edge's profit, sum over its tasks of (p_k - c_k) C_i (coins), (B, K)."""
    cycles = (edge_tasks(game, actions) * game.tasks.task_cycles[:, :, None]).sum(axis=1)
    return (game.edge_prices - game.running_costs) * cycles
