"""Topology: minimum-hop routes against scipy's shortest paths, resource indices and masks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from ledgerzoo.envs.offloading.game import sample_games
from ledgerzoo.envs.offloading.scenario import OffloadingScenario
from ledgerzoo.envs.offloading.topology import (
    UNREACHABLE,
    ResourceKind,
    Topology,
    action_edge,
    build_topology,
    cloud_action,
    edge_action,
    is_cloud_action,
    n_resources,
    resource_edges,
    resource_kinds,
)

# Scenarios with sparse and dense networks, so that some edges are unreachable and some
# routes need several relays.
SCENARIOS = [
    OffloadingScenario(),
    OffloadingScenario(n_devices=25, n_edges=3, side=300.0, radio_range=60.0, edge_range=50.0),
    OffloadingScenario(n_devices=8, n_edges=1, side=150.0, radio_range=40.0, edge_range=30.0),
]


def hops_by_scipy(topology: Topology, b: int) -> np.ndarray:
    """Relay hops to every edge from scipy's unweighted shortest paths, -1 if unreachable.

    The graph has the N devices and K edge nodes. A route to edge k is one access link plus
    its device links, so relays = path length - 1.
    """
    n, k = topology.n_devices, topology.n_edges
    graph = np.zeros((n + k, n + k))
    graph[:n, :n] = topology.adjacency[b]
    graph[:n, n:] = topology.access[b]
    lengths = shortest_path(csr_matrix(graph), method="D", directed=True, unweighted=True)
    to_edges = lengths[:n, n:]
    return np.where(np.isinf(to_edges), UNREACHABLE, to_edges - 1).astype(np.int64)


def physical_route(topology: Topology, b: int, device: int, edge: int) -> list[int]:
    """Devices on the route from ``device`` to ``edge``, following next_hop, device first."""
    path = [device]
    while topology.next_hop[b, path[-1], edge] >= 0:
        path.append(int(topology.next_hop[b, path[-1], edge]))
        assert len(path) <= topology.n_devices, f"next_hop loops: {path}"
    return path


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hops_match_scipy(scenario: OffloadingScenario) -> None:
    game = sample_games(scenario, range(12))
    topology = game.topology
    for b in range(topology.batch_size):
        np.testing.assert_array_equal(
            topology.relay_hops[b], hops_by_scipy(topology, b), err_msg=f"instance {b}"
        )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_routes_are_minimum_hop_paths(scenario: OffloadingScenario) -> None:
    game = sample_games(scenario, range(12))
    topology = game.topology
    positions = topology.device_positions
    for b in range(topology.batch_size):
        scipy_hops = hops_by_scipy(topology, b)
        for i in range(topology.n_devices):
            for k in range(topology.n_edges):
                if scipy_hops[i, k] == UNREACHABLE:
                    assert topology.next_hop[b, i, k] == -1
                    continue
                path = physical_route(topology, b, i, k)
                assert len(path) - 1 == scipy_hops[i, k], f"instance {b} device {i} edge {k}"
                for u, v in itertools.pairwise(path):
                    distance = np.linalg.norm(positions[b, u] - positions[b, v])
                    assert distance <= scenario.radio_range
                last = np.linalg.norm(positions[b, path[-1]] - topology.edge_positions[b, k])
                assert last <= scenario.edge_range


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_next_hop_is_lowest_index_tie(scenario: OffloadingScenario) -> None:
    game = sample_games(scenario, range(12))
    topology = game.topology
    for b in range(topology.batch_size):
        hops = hops_by_scipy(topology, b)
        for i in range(topology.n_devices):
            for k in range(topology.n_edges):
                if hops[i, k] < 1:
                    continue
                closer = [
                    u
                    for u in range(topology.n_devices)
                    if topology.adjacency[b, i, u] and hops[u, k] == hops[i, k] - 1
                ]
                assert topology.next_hop[b, i, k] == min(closer)


def test_line_routes_exact() -> None:
    # Devices 40 m apart on a line, the edge 40 m beyond device 3: device 0 needs 3 relays.
    devices = np.array([[[10.0, 0.0], [50.0, 0.0], [90.0, 0.0], [130.0, 0.0]]])
    topology = build_topology(devices, [[170.0, 0.0]], radio_range=45.0, edge_range=45.0)
    n, k = 4, 1
    padding = n_resources(n, k)
    np.testing.assert_array_equal(topology.relay_hops[0, :, 0], [3, 2, 1, 0])
    np.testing.assert_array_equal(topology.next_hop[0, :, 0], [1, 2, 3, -1])
    access_3 = n * k + 3 * k + 0
    edge_cpu, backhaul = 2 * n * k, 2 * n * k + k
    # Device link slots v*K + j, here v.
    assert topology.route_resources[0, 0, 1].tolist() == [access_3, edge_cpu, 0, 1, 2]
    assert topology.route_resources[0, 0, 2].tolist() == [access_3, backhaul, 0, 1, 2]
    assert topology.route_resources[0, 3, 1].tolist() == [access_3, edge_cpu] + [padding] * 3
    assert topology.route_resources[0, 2, 0].tolist() == [padding] * 5
    assert topology.route_relays[0, 0, 1].tolist() == [1, 2, 3]
    assert topology.route_relays[0, 1, 2].tolist() == [2, 3, n]
    assert topology.action_mask.all()


def test_tie_goes_to_lower_index_neighbour() -> None:
    # Device 0 reaches the edge through device 1 or device 2, both one hop closer.
    devices = np.array([[[0.0, 0.0], [30.0, 20.0], [30.0, -20.0]]])
    topology = build_topology(devices, [[60.0, 0.0]], radio_range=40.0, edge_range=40.0)
    np.testing.assert_array_equal(topology.relay_hops[0, :, 0], [1, 0, 0])
    assert topology.next_hop[0, 0, 0] == 1


def test_unreachable_edge_masked() -> None:
    # Device 1 is far from device 0 and from both edges, and edge 0 is near device 0 only.
    devices = np.array([[[0.0, 0.0], [500.0, 500.0]]])
    topology = build_topology(
        devices, [[10.0, 0.0], [900.0, 900.0]], radio_range=50.0, edge_range=50.0
    )
    np.testing.assert_array_equal(topology.relay_hops[0], [[0, -1], [-1, -1]])
    np.testing.assert_array_equal(
        topology.action_mask[0],
        [[True, True, False, True, False], [True, False, False, False, False]],
    )
    padding = topology.n_resources
    assert np.all(topology.route_resources[0, 1] == padding)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_masks_mark_exactly_unreachable(scenario: OffloadingScenario) -> None:
    game = sample_games(scenario, range(12))
    topology = game.topology
    k = topology.n_edges
    for b in range(topology.batch_size):
        reachable = hops_by_scipy(topology, b) >= 0
        mask = topology.action_mask[b]
        assert mask[:, 0].all(), "local must always be legal"
        np.testing.assert_array_equal(mask[:, 1 : 1 + k], reachable)
        np.testing.assert_array_equal(mask[:, 1 + k :], reachable)
    some_unreachable = [not topology.action_mask[b].all() for b in range(topology.batch_size)]
    assert any(some_unreachable), "the scenarios are meant to leave some edges unreachable"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_resource_indices_match_physical_links(scenario: OffloadingScenario) -> None:
    game = sample_games(scenario, range(8))
    topology = game.topology
    n, k = topology.n_devices, topology.n_edges
    kinds = resource_kinds(n, k)
    edges_of = resource_edges(n, k)
    for b in range(topology.batch_size):
        index_of_link: dict[tuple[int, int], int] = {}
        for i in range(n):
            for edge in range(k):
                if topology.relay_hops[b, i, edge] < 0:
                    continue
                path = physical_route(topology, b, i, edge)
                for action in (edge_action(edge), cloud_action(edge, k)):
                    route = topology.route_resources[b, i, action]
                    links = route[2 : 2 + len(path) - 1]
                    for (u, v), resource in zip(itertools.pairwise(path), links, strict=True):
                        assert kinds[resource] == ResourceKind.DEVICE_LINK
                        assert resource // k == u, "a link's slot must belong to its sender"
                        # One index per physical link, one physical link per index.
                        assert index_of_link.setdefault((u, v), int(resource)) == resource
                    assert kinds[route[0]] == ResourceKind.ACCESS_LINK
                    assert route[0] == n * k + path[-1] * k + edge
                    assert edges_of[route[0]] == edge
                    second = (
                        ResourceKind.EDGE_CPU
                        if action == edge_action(edge)
                        else ResourceKind.BACKHAUL
                    )
                    assert kinds[route[1]] == second
                    assert edges_of[route[1]] == edge
                    assert np.all(route[2 + len(path) - 1 :] == topology.n_resources)
        assert len(set(index_of_link.values())) == len(index_of_link)


def test_resource_layout() -> None:
    kinds = resource_kinds(3, 2)
    assert kinds.shape == (n_resources(3, 2) + 1,)
    assert kinds.tolist() == [0] * 6 + [1] * 6 + [2] * 2 + [3] * 2 + [4]
    assert resource_edges(3, 2).tolist() == [-1] * 6 + [0, 1] * 3 + [0, 1, 0, 1, -1]


def test_action_helpers() -> None:
    actions = np.array([0, 1, 2, 3, 4])
    np.testing.assert_array_equal(action_edge(actions, 2), [-1, 0, 1, 0, 1])
    np.testing.assert_array_equal(is_cloud_action(actions, 2), [False, False, False, True, True])
    assert edge_action(1) == 2
    assert cloud_action(1, 2) == 4


def test_batch_equals_single_instances() -> None:
    scenario = SCENARIOS[1]
    seeds = [11, 12, 13, 14]
    batch = sample_games(scenario, seeds).topology
    for b, seed in enumerate(seeds):
        single = sample_games(scenario, [seed]).topology
        np.testing.assert_array_equal(batch.relay_hops[b], single.relay_hops[0])
        np.testing.assert_array_equal(batch.next_hop[b], single.next_hop[0])
        np.testing.assert_array_equal(batch.action_mask[b], single.action_mask[0])
        length = single.route_length
        np.testing.assert_array_equal(
            batch.route_resources[b, ..., :length], single.route_resources[0]
        )
        assert np.all(batch.route_resources[b, ..., length:] == batch.n_resources)


def test_bad_positions_raise() -> None:
    with pytest.raises(ValueError, match=r"device_positions.*\(B, N, 2\).*\(3, 2\)"):
        build_topology(np.zeros((3, 2)), [[0.0, 0.0]], 1.0, 1.0)
    with pytest.raises(ValueError, match=r"edge_positions.*\(2, 3\)"):
        build_topology(np.zeros((1, 3, 2)), np.zeros((2, 3)), 1.0, 1.0)
