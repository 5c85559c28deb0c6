"""Nash equilibrium and social optimum of the offloading game among IIoT devices.

Nash equilibrium: asynchronous best response, in which devices take turns to update, one
device per slot. It starts from the all-local profile (or a given one). In each slot, every
device computes its best response to the others' current actions: the lowest cost among
its legal actions, the lowest action index on ties. Among the devices whose best response
is cheaper than their current cost by more than ``tol`` times that cost, exactly one
switches to its best response:

- ``order="random"`` (the default): the improving device with the largest key among N keys
  ``numpy.random.default_rng(seed).random(N)``, one draw of N keys per slot. Every instance
  of a batch uses the same key sequence, so an instance reaches the same profile alone or in
  any batch.
- ``order="lowest_index"``: the improving device with the lowest index.

The loop stops when no device can improve. Each switch lowers the device's cost, so it
lowers the weighted potential Phi (``model.py``) by the gain over w_i. Phi is recomputed
from the loads after every move and the solver raises RuntimeError if it did not fall. The
game has the finite improvement property, so the loop ends, at the equilibrium this order
rule reaches. Equilibria need not be unique.

A move costs O(N A L) array work for N devices, A actions and routes of L resources. After
device j switches, the loads change on at most 2L resources. The other devices' counts of
other tasks on each candidate route are updated by that change instead of recounted.

Social optimum: the profile of minimum total cost sum_i cost_i, found by enumerating every
profile of legal actions, in chunks that are evaluated as arrays. That is exact while the
number of profiles prod_i |legal actions of i| is at most ``max_profiles`` (10^7 by
default). Beyond it :func:`social_optimum` raises ValueError. :func:`improve_social_cost` is
a local search whose result bounds the optimum's cost from above, so
cost(NE) / bound is a lower bound on the price of anarchy.

Price of anarchy: cost(NE) / cost(OPT) >= 1, for the equilibrium this solver reaches (not
the worst equilibrium, which the usual definition takes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.game import OffloadingGame
from ledgerzoo.envs.offloading.topology import LOCAL_ACTION

Order = Literal["random", "lowest_index"]
ORDERS: tuple[str, ...] = ("random", "lowest_index")

# A device switches only when its best response is cheaper by more than this fraction of
# its current cost, so that rounding errors cannot make devices cycle.
IMPROVEMENT_TOLERANCE = 1e-9
# Moves per device after which an instance counts as not converged.
MAX_MOVES_PER_DEVICE = 100
# Maximum number of profiles the exhaustive search of the social optimum enumerates per
# instance.
MAX_PROFILES = 10**7
# Route entries (profiles x N x L) evaluated at once in the exhaustive search, which bounds
# its memory: each array of that many int64 or float64 entries takes 16 MiB.
CHUNK_ENTRIES = 1 << 21


@dataclass(frozen=True)
class NashEquilibrium:
    """The pure Nash equilibria that asynchronous best response reached in B instances.

    Attributes:
        profile: Equilibrium actions a*, (B, N) int64.
        costs: cost_i(a*) (coins), (B, N).
        total_cost: sum_i cost_i(a*) (coins), (B,).
        potential: Phi(a*) (s), (B,).
        moves: Number of best-response moves each instance made, (B,) int64.
        converged: Whether no device could improve when the loop stopped, (B,) bool.
        potential_trace: Phi of the starting profile, then after every move (s),
            (B, max(moves) + 1), padded with NaN after an instance's last move.
        order: The order rule, ``"random"`` or ``"lowest_index"``.
        seed: Seed of the random order's keys.
    """

    profile: np.ndarray
    costs: np.ndarray
    total_cost: np.ndarray
    potential: np.ndarray
    moves: np.ndarray
    converged: np.ndarray
    potential_trace: np.ndarray
    order: str
    seed: int

    def to_dict(self, index: int = 0) -> dict[str, Any]:
        """Return one instance's equilibrium as plain Python values (for JSON)."""
        moves = int(self.moves[index])
        return {
            "profile": self.profile[index].tolist(),
            "costs": self.costs[index].tolist(),
            "total_cost": float(self.total_cost[index]),
            "potential": float(self.potential[index]),
            "moves": moves,
            "converged": bool(self.converged[index]),
            "potential_trace": self.potential_trace[index, : moves + 1].tolist(),
            "order": self.order,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SocialOptimum:
    """Profiles of minimum total cost of B instances, found by exhaustive search.

    Attributes:
        profile: The optimal profile, the first in lexicographic order of (a_0, ..., a_N-1)
            among ties, (B, N) int64.
        total_cost: Its total cost sum_i cost_i (coins), (B,).
        n_profiles: Number of legal profiles enumerated, (B,) int64.
    """

    profile: np.ndarray
    total_cost: np.ndarray
    n_profiles: np.ndarray


@dataclass(frozen=True)
class SocialLocalOptimum:
    """Profiles that no single device's switch makes cheaper in total, from local search.

    Attributes:
        profile: The final profile, (B, N) int64.
        total_cost: Its total cost (coins), an upper bound on the optimum's, (B,).
        moves: Switches each instance made, (B,) int64.
        converged: Whether no single switch lowered the total cost at the end, (B,) bool.
    """

    profile: np.ndarray
    total_cost: np.ndarray
    moves: np.ndarray
    converged: np.ndarray


def solve_nash(
    game: OffloadingGame,
    *,
    seed: int = 0,
    order: Order = "random",
    initial: np.ndarray | None = None,
    max_moves: int | None = None,
    tol: float = IMPROVEMENT_TOLERANCE,
) -> NashEquilibrium:
    """Run asynchronous best response to a pure Nash equilibrium in every instance.

    Args:
        game: B instances of the game.
        seed: Seed of the keys that pick the moving device under ``order="random"``.
        order: ``"random"`` or ``"lowest_index"``, as the module docstring describes.
        initial: Starting profile (B, N), all local (action 0) by default.
        max_moves: Moves after which an instance stops with ``converged`` False, by default
            ``MAX_MOVES_PER_DEVICE`` times N.
        tol: A device switches only when that lowers its cost by more than ``tol`` times
            its current cost (>= 0).

    Returns:
        The equilibrium of every instance.

    Raises:
        ValueError: For an unknown order, a negative ``tol`` or ``max_moves``, or an
            illegal initial profile.
        RuntimeError: If a move fails to lower the potential, which would mean the costs
            and the potential disagree.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {list(ORDERS)}")
    if not tol >= 0.0:
        raise ValueError(f"tol must be at least 0, got {tol}")
    batch, n_devices = game.batch_size, game.n_devices
    if max_moves is None:
        max_moves = MAX_MOVES_PER_DEVICE * n_devices
    if max_moves < 0:
        raise ValueError(f"max_moves must be at least 0, got {max_moves}")
    if initial is None:
        actions = np.full((batch, n_devices), LOCAL_ACTION, dtype=np.int64)
    else:
        actions = model.validate_profile(game, initial).copy()

    state = _BestResponseState.start(game, actions)
    rng = np.random.default_rng(seed)
    trace = [state.potential.copy()]
    moves = np.zeros(batch, dtype=np.int64)
    active = np.ones(batch, dtype=bool)
    for _ in range(max_moves):
        keys = rng.random(n_devices) if order == "random" else -np.arange(n_devices, dtype=float)
        mover_instances, devices, best = state.pick_moves(active, keys, tol)
        # Instances with no improving device are at an equilibrium and stay there, so only
        # the movers stay active.
        active[active] = False
        if mover_instances.size == 0:
            break
        active[mover_instances] = True
        state.move(mover_instances, devices, best)
        moves[mover_instances] += 1
        step = np.full(batch, np.nan)
        step[mover_instances] = state.potential[mover_instances]
        trace.append(step)
    else:
        # max_moves ran out: instances that can still improve have not converged.
        mover_instances, _, _ = state.pick_moves(active, np.zeros(n_devices), tol)
        active[:] = False
        active[mover_instances] = True

    actions = state.actions
    costs = model.device_costs(game, actions)
    return NashEquilibrium(
        profile=actions,
        costs=costs,
        total_cost=costs.sum(axis=1),
        potential=model.potential(game, actions),
        moves=moves,
        converged=~active,
        potential_trace=np.stack(trace, axis=1),
        order=order,
        seed=seed,
    )


def profiles_within(game: OffloadingGame, limit: float) -> np.ndarray:
    """Return whether each instance has at most ``limit`` legal action profiles, (B,) bool.

    The count, a product over devices, overflows integers and floats in large games, so it is
    compared in log space (with a little slack for rounding, which only matters at the limit).
    """
    counts = game.action_mask.sum(axis=2).astype(np.float64)
    return np.log(counts).sum(axis=1) <= math.log(limit) + 1e-9


def social_optimum(game: OffloadingGame, *, max_profiles: int = MAX_PROFILES) -> SocialOptimum:
    """Find the profile of minimum total cost of every instance by exhaustive search.

    Profiles are enumerated in lexicographic order of (a_0, ..., a_N-1) over each device's
    legal actions, about ``CHUNK_ENTRIES / (N L)`` at a time, and the first profile of
    minimum cost wins.

    Args:
        game: B instances of the game.
        max_profiles: Largest number of legal profiles an instance may have.

    Returns:
        The optimum of every instance.

    Raises:
        ValueError: If an instance has more than ``max_profiles`` legal profiles. The message
            gives the count. :func:`improve_social_cost` gives an upper bound instead.
    """
    counts = game.action_mask.sum(axis=2)
    sizes = [math.prod(int(c) for c in counts[b]) for b in range(game.batch_size)]
    for b, size in enumerate(sizes):
        if size > max_profiles:
            raise ValueError(
                f"instance {b} has {size} legal action profiles, more than "
                f"max_profiles={max_profiles}. The exhaustive search is feasible only for small "
                f"games. Use improve_social_cost for an upper bound on the optimum's cost, or "
                f"raise max_profiles"
            )
    profiles = np.zeros((game.batch_size, game.n_devices), dtype=np.int64)
    totals = np.zeros(game.batch_size)
    for b in range(game.batch_size):
        profiles[b], totals[b] = _enumerate_instance(game, b, sizes[b])
    return SocialOptimum(
        profile=profiles, total_cost=totals, n_profiles=np.array(sizes, dtype=np.int64)
    )


def price_of_anarchy(equilibrium_cost: np.ndarray, optimum_cost: np.ndarray) -> np.ndarray:
    """Return cost(NE) / cost(OPT) per instance, >= 1 when OPT is exact.

    Every cost of the model is positive (local execution takes time), so the ratio is
    defined.
    """
    return np.asarray(equilibrium_cost, dtype=np.float64) / np.asarray(optimum_cost)


def improve_social_cost(
    game: OffloadingGame,
    initial: np.ndarray,
    *,
    max_moves: int | None = None,
    tol: float = IMPROVEMENT_TOLERANCE,
) -> SocialLocalOptimum:
    """Lower the total cost by single-device switches until none helps (steepest descent).

    In each step, every instance applies the one switch (device i to action a) that lowers
    the total cost the most, lowest (i, a) on ties, if it lowers it by more than ``tol``
    times the total. W_res is the sum of the weights w_j of the tasks on resource res. When
    device i switches from route r to route r', its own cost changes, each other task j on
    a resource in r' but not r pays w_j alpha_res more, which adds alpha_res W_res, and
    each other task on a resource in r but not r' pays less, which subtracts
    alpha_res (W_res - w_i). The result is a local optimum whose cost bounds the
    social optimum's from above. Each step costs O(N A L^2).

    Args:
        game: B instances of the game.
        initial: Starting profile (B, N), for example a Nash equilibrium.
        max_moves: Switches after which an instance stops, ``MAX_MOVES_PER_DEVICE`` times N
            by default.
        tol: Smallest relative improvement of the total cost that counts.

    Returns:
        The local optimum of every instance.
    """
    actions = model.validate_profile(game, initial).copy()
    batch, n_devices = actions.shape
    if max_moves is None:
        max_moves = MAX_MOVES_PER_DEVICE * n_devices
    rows = np.arange(batch)
    moves = np.zeros(batch, dtype=np.int64)
    while True:
        change = social_cost_changes(game, actions).reshape(batch, -1)
        best = np.argmin(change, axis=1)
        improves = change[rows, best] < -tol * model.total_cost(game, actions)
        moving = improves & (moves < max_moves)
        if not moving.any():
            break
        device, action = np.divmod(best[moving], game.n_actions)
        actions[rows[moving], device] = action
        moves[moving] += 1
    return SocialLocalOptimum(
        profile=actions,
        total_cost=model.total_cost(game, actions),
        moves=moves,
        converged=~improves,
    )


def social_cost_changes(game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
    """Compute the change of the total cost if device i alone switched to action a.

    Returns:
        Changes (coins), (B, N, A): +inf for illegal actions and 0 for the current one.
    """
    candidates = game.topology.route_resources
    routes = model.chosen_routes(candidates, actions)
    weight_loads = _weight_loads(routes, game.weights, game.topology.n_resources + 1)
    own_costs = model.deviation_costs(game, actions)
    current = np.take_along_axis(own_costs, actions[:, :, None], axis=2)

    alpha = game.resource_alpha
    # Entries of the candidate route that the current route lacks: the others there pay more.
    on_current = (candidates[..., None] == routes[:, :, None, None, :]).any(axis=-1)
    added = np.where(
        on_current, 0.0, model.gather(alpha, candidates) * model.gather(weight_loads, candidates)
    )
    # Entries of the current route that the candidate lacks: the others there pay less.
    on_candidate = (routes[:, :, None, :, None] == candidates[:, :, :, None, :]).any(axis=-1)
    others_weight = model.gather(weight_loads, routes) - game.weights[:, :, None]
    removed = np.where(
        on_candidate, 0.0, (model.gather(alpha, routes) * others_weight)[:, :, None, :]
    )
    change = own_costs - current + added.sum(axis=-1) - removed.sum(axis=-1)
    return np.where(game.action_mask, change, np.inf)


# --------------------------------------------------------------------------------------------


class _BestResponseState:
    """Profile, loads and per-candidate counts of other tasks, updated move by move."""

    def __init__(
        self,
        game: OffloadingGame,
        actions: np.ndarray,
        loads: np.ndarray,
        others: np.ndarray,
        potential: np.ndarray,
    ) -> None:
        self.game = game
        self.actions = actions
        self.loads = loads
        self.others = others
        self.potential = potential
        self.candidates = game.topology.route_resources
        self.alpha = model.gather(game.resource_alpha, self.candidates)
        self.beta = model.gather(game.resource_beta, self.candidates)

    @classmethod
    def start(cls, game: OffloadingGame, actions: np.ndarray) -> _BestResponseState:
        routes = model.chosen_routes(game.topology.route_resources, actions)
        loads = model.resource_loads(routes, game.topology.n_resources + 1)
        others = model.others_on_routes(game.topology.route_resources, routes, loads)
        potential = model.potential_from_loads(game, loads, actions)
        return cls(game, actions, loads, others, potential)

    def pick_moves(
        self, active: np.ndarray, keys: np.ndarray, tol: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Choose the moving device of each active instance that has an improving device.

        Returns:
            The moving instances (M,), their moving devices (M,) and those devices' best
            responses (M,).
        """
        game = self.game
        instances = np.flatnonzero(active)
        costs = model.route_costs(
            self.alpha[instances],
            self.beta[instances],
            self.others[instances],
            game.weights[instances][:, :, None],
            game.private_costs[instances],
        )
        costs = np.where(game.action_mask[instances], costs, np.inf)
        current = np.take_along_axis(costs, self.actions[instances][:, :, None], axis=2)[:, :, 0]
        best = np.argmin(costs, axis=2)
        best_cost = np.take_along_axis(costs, best[:, :, None], axis=2)[:, :, 0]
        improving = current - best_cost > tol * current
        has_move = improving.any(axis=1)
        device = np.argmax(np.where(improving, keys[None, :], -np.inf), axis=1)
        movers = np.flatnonzero(has_move)
        return instances[movers], device[movers], best[movers, device[movers]]

    def move(self, instances: np.ndarray, devices: np.ndarray, new_actions: np.ndarray) -> None:
        """Switch one device per instance and update loads, counts and the potential."""
        game = self.game
        old_routes = self.candidates[instances, devices, self.actions[instances, devices]]
        new_routes = self.candidates[instances, devices, new_actions]
        delta = np.zeros((instances.size, self.loads.shape[1]), dtype=np.int64)
        rows = np.arange(instances.size)[:, None]
        np.add.at(delta, (rows, old_routes), -1)
        np.add.at(delta, (rows, new_routes), 1)
        self.loads[instances] += delta
        self.actions[instances, devices] = new_actions

        # The other devices' counts change by the change of the loads. The mover's counts
        # are recounted because its own route changed.
        self.others[instances] += model.gather(delta, self.candidates[instances])
        mover_candidates = self.candidates[instances, devices]
        own = (mover_candidates[:, :, :, None] == new_routes[:, None, None, :]).any(axis=-1)
        self.others[instances, devices] = (
            model.gather(self.loads[instances], mover_candidates) - own
        )

        private = np.take_along_axis(
            game.private_costs[instances], self.actions[instances][:, :, None], axis=2
        )[:, :, 0]
        potential = model.potential_terms(
            game.resource_alpha[instances],
            game.resource_beta[instances],
            self.loads[instances],
            private,
            game.weights[instances],
        )
        previous = self.potential[instances]
        if np.any(potential >= previous):
            bad = int(np.argmax(potential >= previous))
            raise RuntimeError(
                f"best-response move of device {devices[bad]} to action {new_actions[bad]} in "
                f"instance {instances[bad]} did not lower the potential: {previous[bad]!r} -> "
                f"{potential[bad]!r}, so the costs and the potential disagree"
            )
        self.potential[instances] = potential


def _weight_loads(routes: np.ndarray, weights: np.ndarray, slots: int) -> np.ndarray:
    """Sum the weights w_i of the tasks on each resource: W_res, (B, slots)."""
    batch = routes.shape[0]
    offsets = (np.arange(batch, dtype=np.int64) * slots)[:, None, None]
    totals = np.bincount(
        (routes + offsets).ravel(),
        weights=np.broadcast_to(weights[:, :, None], routes.shape).ravel(),
        minlength=batch * slots,
    )
    return totals.reshape(batch, slots)


def _enumerate_instance(game: OffloadingGame, b: int, n_profiles: int) -> tuple[np.ndarray, float]:
    """Enumerate the profiles of instance b and return the first cheapest one and its cost."""
    mask = game.action_mask[b]
    n_devices = game.n_devices
    sizes = mask.sum(axis=1)
    # legal[i, d] is device i's d-th legal action in increasing order.
    legal = np.argsort(~mask, axis=1, kind="stable")
    routes_of = game.topology.route_resources[b]
    alpha, beta = game.resource_alpha[b], game.resource_beta[b]
    slots = game.topology.n_resources + 1
    devices = np.arange(n_devices)
    chunk = max(1, CHUNK_ENTRIES // (n_devices * game.topology.route_length))

    best_profile = np.zeros(n_devices, dtype=np.int64)
    best_cost = np.inf
    for start in range(0, n_profiles, chunk):
        index = np.arange(start, min(start + chunk, n_profiles), dtype=np.int64)
        digits = np.empty((index.size, n_devices), dtype=np.int64)
        # Device 0 is the most significant digit, so profiles run in lexicographic order.
        for i in range(n_devices - 1, -1, -1):
            index, digits[:, i] = np.divmod(index, sizes[i])
        actions = legal[devices, digits]
        routes = routes_of[devices, actions]
        loads = model.resource_loads(routes, slots)
        costs = model.route_costs(
            alpha[routes],
            beta[routes],
            model.gather(loads, routes) - 1,
            game.weights[b],
            game.private_costs[b][devices, actions],
        )
        totals = costs.sum(axis=1)
        pick = int(np.argmin(totals))
        if totals[pick] < best_cost:
            best_cost = float(totals[pick])
            best_profile = actions[pick]
    return best_profile, best_cost
