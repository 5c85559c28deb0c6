"""Network topology of the offloading market: links, minimum-hop routes and resources.

Each instance of a batch has N devices at random points of a square and K edge servers at
fixed points. Two devices within ``radio_range`` of each other have a link in each direction.
A device within ``edge_range`` of edge k has an access link to it, and every edge has a
backhaul link to the cloud.

Routes. A device reaches edge k through d_k(i) relay devices, the minimum over all paths, by
a breadth-first search from the devices that have an access link to k. Among the
minimum-hop paths the route takes, at every hop, the neighbour with the lowest index whose
hop count to k is one less. That rule picks the lexicographically smallest minimum-hop path
and makes the routes to edge k a tree. Edge k is unreachable from device i when no path
exists, and d_k(i) is then -1.

Actions. Device i chooses one of A = 1 + 2K actions:

    0              run the task locally
    1 + k          run it on edge server k, for k = 0 .. K-1
    1 + K + k      run it in the cloud, sending it through edge server k and its backhaul

Both offloading actions through edge k are legal exactly when edge k is reachable.

Resources. Every shared resource of an instance has an integer index in [0, R), with
R = 2NK + 2K, and index R is a padding resource that no route uses and whose delay is zero:

    [0, NK)             device link slot v*K + j: the directed link from device v to the
                        next hop of its route to edge j. When the routes of device v to
                        several edges leave by the same link, they share the slot of the
                        lowest such j, so each physical link has exactly one index.
    [NK, 2NK)           access link NK + v*K + k from device v to edge k
    [2NK, 2NK + K)      CPU of edge k
    [2NK + K, 2NK + 2K) backhaul of edge k to the cloud

A route is an array of L resource indices padded with R. Its layout is [access link, edge
CPU or backhaul, device link of hop 1, ..., device link of hop d, R, ...]. Arrays of every
instance share the same N, K, R and L, so a batch of instances with different topologies is
evaluated with array operations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ledgerzoo.envs.offloading.scenario import OffloadingScenario, uniform_in_range

LOCAL_ACTION = 0
# Relay hop count of an edge that a device cannot reach.
UNREACHABLE = -1


class ResourceKind(enum.IntEnum):
    """Kind of a shared resource (and of the padding resource R)."""

    DEVICE_LINK = 0
    ACCESS_LINK = 1
    EDGE_CPU = 2
    BACKHAUL = 3
    PADDING = 4


def edge_action(edge: int | np.ndarray) -> int | np.ndarray:
    """Return the action that runs the task on edge server ``edge``: 1 + edge."""
    return 1 + edge


def cloud_action(edge: int | np.ndarray, n_edges: int) -> int | np.ndarray:
    """Return the action that runs the task in the cloud through ``edge``: 1 + K + edge."""
    return 1 + n_edges + edge


def action_edge(actions: np.ndarray, n_edges: int) -> np.ndarray:
    """Map actions to the edge server their route ends at or passes, -1 for local actions."""
    actions = np.asarray(actions)
    return np.where(actions == LOCAL_ACTION, -1, (actions - 1) % n_edges)


def is_cloud_action(actions: np.ndarray, n_edges: int) -> np.ndarray:
    """Return whether each action runs its task in the cloud."""
    return np.asarray(actions) > n_edges


def n_resources(n_devices: int, n_edges: int) -> int:
    """Return the number R = 2NK + 2K of shared resources, which is the padding's index."""
    return 2 * n_devices * n_edges + 2 * n_edges


def resource_kinds(n_devices: int, n_edges: int) -> np.ndarray:
    """Return the :class:`ResourceKind` of every resource index and the padding, shape (R + 1,)."""
    links = n_devices * n_edges
    return np.concatenate(
        [
            np.full(links, ResourceKind.DEVICE_LINK),
            np.full(links, ResourceKind.ACCESS_LINK),
            np.full(n_edges, ResourceKind.EDGE_CPU),
            np.full(n_edges, ResourceKind.BACKHAUL),
            [ResourceKind.PADDING],
        ]
    ).astype(np.int64)


def resource_edges(n_devices: int, n_edges: int) -> np.ndarray:
    """Return the edge server of each access link, edge CPU and backhaul, else -1, shape (R + 1,).

    A device link slot v*K + j belongs to no edge: routes to several edges may share it.
    """
    links = n_devices * n_edges
    edges = np.arange(n_edges)
    return np.concatenate(
        [np.full(links, -1), np.tile(edges, n_devices), edges, edges, [-1]]
    ).astype(np.int64)


@dataclass(frozen=True)
class Topology:
    """Links, routes and legal actions of B instances of the market.

    Attributes:
        device_positions: Device positions (m), (B, N, 2).
        edge_positions: Edge server positions (m), (B, K, 2).
        adjacency: Whether devices u and v have a link (symmetric, no self links), (B, N, N).
        access: Whether device v has an access link to edge k, (B, N, K).
        relay_hops: Number of relays d_k(i) on the route of device i to edge k, or
            ``UNREACHABLE`` (-1), (B, N, K) int64.
        next_hop: Next device on the route of device i to edge k, or -1 where i has an
            access link to k or cannot reach it, (B, N, K) int64.
        route_resources: Resource indices of the route of every action, padded with R,
            (B, N, A, L) int64. Local and illegal actions contain only padding.
        route_relays: Relay devices of the route of every action in route order, padded with
            N, (B, N, A, H) int64 with H = L - 2.
        action_mask: Whether each action is legal, (B, N, A) bool. Local is always legal.
    """

    device_positions: np.ndarray
    edge_positions: np.ndarray
    adjacency: np.ndarray
    access: np.ndarray
    relay_hops: np.ndarray
    next_hop: np.ndarray
    route_resources: np.ndarray
    route_relays: np.ndarray
    action_mask: np.ndarray

    @property
    def batch_size(self) -> int:
        """Number of instances B."""
        return int(self.device_positions.shape[0])

    @property
    def n_devices(self) -> int:
        """Number of devices N."""
        return int(self.device_positions.shape[1])

    @property
    def n_edges(self) -> int:
        """Number of edge servers K."""
        return int(self.edge_positions.shape[1])

    @property
    def n_actions(self) -> int:
        """Number of actions A = 1 + 2K of a device."""
        return 1 + 2 * self.n_edges

    @property
    def n_resources(self) -> int:
        """Number of shared resources R, which is also the index of the padding resource."""
        return n_resources(self.n_devices, self.n_edges)

    @property
    def route_length(self) -> int:
        """Padded length L of a route."""
        return int(self.route_resources.shape[-1])

    def take(self, indices: np.ndarray) -> Topology:
        """Return the topology of the instances ``indices`` (repeats allowed), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return Topology(
            **{name: getattr(self, name)[indices] for name in self.__dataclass_fields__}
        )


def sample_device_positions(scenario: OffloadingScenario, rng: np.random.Generator) -> np.ndarray:
    """Draw N device positions uniformly in the square [0, side]^2 (m), shape (N, 2).

    It makes one ``rng.random`` call of 2N draws (:func:`positions_from_uniforms`).
    """
    uniforms = rng.random((1, 2 * scenario.n_devices))
    return positions_from_uniforms(scenario, uniforms)[0]


def positions_from_uniforms(scenario: OffloadingScenario, uniforms: np.ndarray) -> np.ndarray:
    """Place the devices of B instances from 2N uniform draws in [0, 1) per instance.

    The result equals ``rng.uniform(0, side, (N, 2))`` made of the same draws, bit for bit
    (see :func:`~ledgerzoo.envs.offloading.scenario.uniform_in_range`).

    Args:
        scenario: Supplies N and the side of the square.
        uniforms: Draws in [0, 1), (B, 2N), in the order x_0, y_0, x_1, ...

    Returns:
        Device positions (m), (B, N, 2).
    """
    positions = uniform_in_range(uniforms, (0.0, scenario.side))
    return positions.reshape(uniforms.shape[0], scenario.n_devices, 2)


def build_topology(
    device_positions: np.ndarray,
    edge_positions: ArrayLike,
    radio_range: float,
    edge_range: float,
) -> Topology:
    """Build the links, minimum-hop routes, resources and action masks of B instances.

    Args:
        device_positions: Device positions (m), (B, N, 2).
        edge_positions: Edge server positions (m), (K, 2) for all instances or (B, K, 2).
        radio_range: Largest distance of a device-to-device link (m).
        edge_range: Largest distance of an access link (m).

    Returns:
        The topology of every instance.

    Raises:
        ValueError: If the position arrays have the wrong shape.
    """
    device_positions = np.asarray(device_positions, dtype=np.float64)
    if device_positions.ndim != 3 or device_positions.shape[2] != 2:
        raise ValueError(
            f"device_positions must have shape (B, N, 2), got {device_positions.shape}"
        )
    batch, n_devices, _ = device_positions.shape
    edges = np.asarray(edge_positions, dtype=np.float64)
    given_shape = edges.shape
    if edges.ndim == 2:
        edges = np.broadcast_to(edges, (batch, *edges.shape))
    if edges.ndim != 3 or edges.shape[0] != batch or edges.shape[2] != 2:
        raise ValueError(
            f"edge_positions must have shape (K, 2) or (B={batch}, K, 2), got {given_shape}"
        )
    edges = edges.copy()

    device_distance = np.linalg.norm(
        device_positions[:, :, None, :] - device_positions[:, None, :, :], axis=-1
    )
    adjacency = (device_distance <= radio_range) & ~np.eye(n_devices, dtype=bool)
    edge_distance = np.linalg.norm(device_positions[:, :, None, :] - edges[:, None, :, :], axis=-1)
    access = edge_distance <= edge_range

    relay_hops = _hop_counts(adjacency, access)
    next_hop = _next_hops(adjacency, relay_hops)
    route_resources, route_relays = _routes(relay_hops, next_hop)
    action_mask = np.concatenate(
        [np.ones((batch, n_devices, 1), dtype=bool), relay_hops >= 0, relay_hops >= 0], axis=2
    )
    return Topology(
        device_positions=device_positions,
        edge_positions=edges,
        adjacency=adjacency,
        access=access,
        relay_hops=relay_hops,
        next_hop=next_hop,
        route_resources=route_resources,
        route_relays=route_relays,
        action_mask=action_mask,
    )


def _hop_counts(adjacency: np.ndarray, access: np.ndarray) -> np.ndarray:
    """Count the relay hops d_k(i), or -1, by breadth-first search from the access devices.

    The search advances one level per iteration for all instances and edges at once. The
    devices newly reached are the unreached neighbours of the previous level's devices.
    """
    n_devices = adjacency.shape[1]
    hops = np.where(access, 0, UNREACHABLE).astype(np.int64)
    frontier = access.astype(np.float32)
    links = adjacency.astype(np.float32)
    for level in range(1, n_devices):
        reached = (links @ frontier) > 0.0
        new = reached & (hops == UNREACHABLE)
        if not new.any():
            break
        hops[new] = level
        frontier = new.astype(np.float32)
    return hops


def _next_hops(adjacency: np.ndarray, relay_hops: np.ndarray) -> np.ndarray:
    """Find the lowest-index neighbour one hop closer to each edge, else -1.

    The result is -1 where the device has an access link to the edge or cannot reach it.
    """
    batch, n_devices, n_edges = relay_hops.shape
    next_hop = np.full((batch, n_devices, n_edges), -1, dtype=np.int64)
    for edge in range(n_edges):
        hops = relay_hops[:, :, edge]
        # closer[b, v, u]: u is a neighbour of v with one hop fewer to the edge.
        closer = adjacency & (hops[:, None, :] == hops[:, :, None] - 1) & (hops[:, None, :] >= 0)
        has_next = hops >= 1
        next_hop[:, :, edge] = np.where(has_next, np.argmax(closer, axis=2), -1)
    return next_hop


def _routes(relay_hops: np.ndarray, next_hop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Build the padded resource indices and relays of every action's route (module docstring)."""
    batch, n_devices, n_edges = relay_hops.shape
    padding = n_resources(n_devices, n_edges)
    max_hops = max(int(relay_hops.max(initial=0)), 0)
    edges = np.arange(n_edges)

    # The link slot of device v towards edge k is the lowest edge j whose route from v leaves
    # by the same next hop, so routes that share a physical link share its index.
    same_next = next_hop[:, :, :, None] == next_hop[:, :, None, :]
    link_slot = np.argmax(same_next, axis=3)

    reachable = relay_hops >= 0
    device = np.broadcast_to(np.arange(n_devices)[None, :, None], relay_hops.shape).copy()
    links = np.full((batch, n_devices, n_edges, max_hops), padding, dtype=np.int64)
    relays = np.full((batch, n_devices, n_edges, max_hops), n_devices, dtype=np.int64)
    for hop in range(max_hops):
        active = hop < relay_hops
        slot = np.take_along_axis(link_slot, device, axis=1)
        following = np.take_along_axis(next_hop, device, axis=1)
        links[..., hop] = np.where(active, device * n_edges + slot, padding)
        relays[..., hop] = np.where(active, following, n_devices)
        device = np.where(active, following, device)
    # After the walk, ``device`` is the last device of the route: the one with the access link.
    access_link = np.where(reachable, n_devices * n_edges + device * n_edges + edges, padding)
    edge_cpu = np.where(reachable, 2 * n_devices * n_edges + edges, padding)
    backhaul = np.where(reachable, 2 * n_devices * n_edges + n_edges + edges, padding)

    length = 2 + max_hops
    routes = np.full((batch, n_devices, 1 + 2 * n_edges, length), padding, dtype=np.int64)
    routes[:, :, 1 : 1 + n_edges, 0] = access_link
    routes[:, :, 1 : 1 + n_edges, 1] = edge_cpu
    routes[:, :, 1 : 1 + n_edges, 2:] = links
    routes[:, :, 1 + n_edges :, 0] = access_link
    routes[:, :, 1 + n_edges :, 1] = backhaul
    routes[:, :, 1 + n_edges :, 2:] = links

    route_relays = np.full((batch, n_devices, 1 + 2 * n_edges, max_hops), n_devices, dtype=np.int64)
    route_relays[:, :, 1 : 1 + n_edges] = relays
    route_relays[:, :, 1 + n_edges :] = relays
    return routes, route_relays
