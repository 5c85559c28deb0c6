"""The RGB frame of one offloading instance: shape, content, congestion and argument checks.

The congestion tests use hand-built games whose loads are known: four devices on a line
that relay to one edge server, and two devices that relay to each other's edge server.
"""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.baselines import nearest_edge_profile, random_profile
from ledgerzoo.envs.offloading.game import OffloadingGame, Tasks, build_game, sample_games
from ledgerzoo.envs.offloading.render import (
    LOAD_COLORMAP,
    _layout,
    _loaded_segments,
    render_frame,
)
from ledgerzoo.envs.offloading.scenario import OffloadingScenario
from ledgerzoo.envs.offloading.topology import build_topology

SAMPLED = OffloadingScenario(n_devices=12, n_edges=2)
# The legend fills the bottom of the frame. Rows above this share of the height show only
# the drawing and the title.
DRAWING_ROWS = 0.8


def hand_game(
    devices: list[tuple[float, float]],
    edges: list[tuple[float, float]],
    radio_range: float,
    edge_range: float,
) -> OffloadingGame:
    """Build one instance with devices and edges at the given points and identical tasks."""
    scenario = OffloadingScenario(
        n_devices=len(devices),
        n_edges=len(edges),
        side=200.0,
        radio_range=radio_range,
        edge_range=edge_range,
        edge_positions=tuple(edges),
    )
    topology = build_topology(
        np.array([devices]), scenario.edge_position_array, radio_range, edge_range
    )
    ones = np.ones((1, len(devices)))
    tasks = Tasks(
        device_cpu_speed=1e9 * ones,
        task_bits=1e6 * ones,
        task_cycles=1e9 * ones,
        is_mining=np.zeros((1, len(devices)), dtype=bool),
        hash_share=0.0 * ones,
        delay_weight=ones,
    )
    return build_game(scenario, topology, tasks)


def line_game() -> OffloadingGame:
    """Devices 0 -> 1 -> 2 -> 3 relay to one edge server past device 3."""
    devices = [(10.0, 100.0), (50.0, 100.0), (90.0, 100.0), (130.0, 100.0)]
    return hand_game(devices, [(170.0, 100.0)], radio_range=45.0, edge_range=45.0)


def crossing_game() -> OffloadingGame:
    """Device 0 reaches edge 1 only through device 1, device 1 reaches edge 0 only through 0.

    Device 2 is isolated, so both of its offloading actions are masked off.
    """
    devices = [(70.0, 100.0), (130.0, 100.0), (100.0, 190.0)]
    return hand_game(devices, [(30.0, 100.0), (170.0, 100.0)], radio_range=60.0, edge_range=45.0)


def dark_load_pixels(frame: np.ndarray) -> int:
    """Count the drawing's pixels close to the darkest load color, the most congested links."""
    darkest = np.asarray(LOAD_COLORMAP(1.0)[:3]) * 255.0
    drawing = frame[: int(DRAWING_ROWS * frame.shape[0])].astype(np.float64)
    distance = np.linalg.norm(drawing - darkest, axis=2)
    return int((distance < 40.0).sum())


def changed_pixels(frame: np.ndarray, reference: np.ndarray) -> int:
    """Count the drawing's pixels whose color differs from the reference frame."""
    rows = int(DRAWING_ROWS * frame.shape[0])
    return int((frame[:rows] != reference[:rows]).any(axis=2).sum())


@pytest.mark.parametrize(("width", "height"), [(640, 640), (300, 200), (97, 211)])
def test_frame_shape_and_dtype(width: int, height: int) -> None:
    game = sample_games(SAMPLED, [0, 1])
    frame = render_frame(game, nearest_edge_profile(game), 1, width=width, height=height)
    assert frame.shape == (height, width, 3)
    assert frame.dtype == np.uint8


@pytest.mark.parametrize("with_actions", [False, True])
def test_frame_not_blank(with_actions: bool) -> None:
    game = sample_games(SAMPLED, [0])
    actions = random_profile(game, seed=0) if with_actions else None
    frame = render_frame(game, actions)
    # One integer per pixel, 0xRRGGBB, because np.unique over rows is slow.
    packed = frame.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    colors = np.unique(packed)
    assert colors.size > 20, f"only {colors.size} distinct colors"
    assert frame.min() < frame.max()
    assert (frame == 255).all(axis=2).mean() > 0.3, "the background should stay mostly white"


def test_actions_change_frame() -> None:
    game = sample_games(SAMPLED, [0])
    without = render_frame(game, None)
    nearest = render_frame(game, nearest_edge_profile(game))
    local = render_frame(game, np.zeros((1, SAMPLED.n_devices), dtype=np.int64))
    assert changed_pixels(nearest, without) > 0
    assert changed_pixels(local, without) > 0
    assert changed_pixels(nearest, local) > 0


def test_render_repeats_exactly() -> None:
    game = sample_games(SAMPLED, [0, 1])
    actions = random_profile(game, seed=1)
    first = render_frame(game, actions, 0)
    render_frame(game, nearest_edge_profile(game), 1, width=200, height=300, title="other")
    again = render_frame(game, actions, 0)
    np.testing.assert_array_equal(first, again)


def test_instance_profile_matches_batch() -> None:
    game = sample_games(SAMPLED, [0, 1])
    actions = random_profile(game, seed=2)
    from_batch = render_frame(game, actions, 1)
    from_row = render_frame(game, actions[1], 1)
    np.testing.assert_array_equal(from_batch, from_row)


def test_title_is_drawn() -> None:
    game = sample_games(SAMPLED, [0])
    default = render_frame(game, None)
    titled = render_frame(game, None, title="step 7")
    assert changed_pixels(titled, default) > 0


def test_congested_link_drawn_dark_and_wide() -> None:
    game = line_game()
    idle = render_frame(game, np.array([[0, 0, 0, 0]]))
    # Device 0 alone: every link on its route carries 1 task.
    light = render_frame(game, np.array([[1, 0, 0, 0]]))
    # All four offload: links 0->1, 1->2, 2->3 carry 1, 2, 3 tasks and the access link 4.
    congested = render_frame(game, np.array([[1, 1, 1, 1]]))
    assert dark_load_pixels(idle) == 0
    assert dark_load_pixels(light) == 0
    assert dark_load_pixels(congested) > 50
    assert changed_pixels(congested, idle) > changed_pixels(light, idle)


def test_congested_backhaul_drawn_dark() -> None:
    game = line_game()
    one_to_cloud = render_frame(game, np.array([[0, 0, 0, 2]]))
    # In both frames the access link carries 4 tasks, the largest load. Only the second
    # sends them on over the backhaul, which adds a second dark line.
    all_to_edge = render_frame(game, np.array([[1, 1, 1, 1]]))
    all_to_cloud = render_frame(game, np.array([[2, 2, 2, 2]]))
    assert dark_load_pixels(one_to_cloud) == 0
    assert dark_load_pixels(all_to_cloud) > dark_load_pixels(all_to_edge)


def test_loaded_segments_match_model_loads() -> None:
    game = line_game()
    actions = np.array([[1, 1, 2, 1]])
    loads = model.resource_loads(
        model.chosen_routes(game.topology.route_resources, actions), game.topology.n_resources + 1
    )[0]
    layout = _layout(game, 0)
    segments, segment_loads = _loaded_segments(game, 0, layout, loads)
    drawn = {
        (tuple(start), tuple(end)): load
        for (start, end), load in zip(segments.tolist(), segment_loads.tolist(), strict=True)
    }
    devices = [tuple(point) for point in layout.devices.tolist()]
    edge = tuple(layout.edges[0].tolist())
    cloud = tuple(layout.cloud.tolist())
    assert drawn == {
        (devices[0], devices[1]): 1.0,
        (devices[1], devices[2]): 2.0,
        (devices[2], devices[3]): 3.0,
        (devices[3], edge): 4.0,
        (edge, cloud): 1.0,
    }


def test_opposite_links_drawn_apart() -> None:
    game = crossing_game()
    # Device 0 goes to edge 1 through device 1, and device 1 to edge 0 through device 0.
    actions = np.array([[2, 1, 0]])
    loads = model.resource_loads(
        model.chosen_routes(game.topology.route_resources, actions), game.topology.n_resources + 1
    )[0]
    layout = _layout(game, 0)
    segments, segment_loads = _loaded_segments(game, 0, layout, loads)
    assert segment_loads.tolist() == [1.0, 1.0, 1.0, 1.0]
    forward, backward = segments[0], segments[1]
    assert not np.allclose(forward, backward[::-1]), "the two directions cover each other"
    # Both lines stay parallel to the device pair, one on each side.
    assert forward[0, 1] == forward[1, 1]
    assert backward[0, 1] == backward[1, 1]
    assert forward[0, 1] != backward[0, 1]


@pytest.mark.parametrize(
    ("instance", "match"),
    [
        (-1, r"instance -1 is out of range.*\[0, 2\)"),
        (2, r"instance 2 is out of range.*\[0, 2\)"),
        (1.0, r"instance must be an integer.*1\.0"),
        (True, r"instance must be an integer.*True"),
    ],
)
def test_bad_instance_raises(instance: object, match: str) -> None:
    game = sample_games(SAMPLED, [0, 1])
    with pytest.raises(ValueError, match=match):
        render_frame(game, None, instance)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (
            np.zeros((1, 4), dtype=np.int64),
            r"shape \(B, N\) = \(1, 3\) or \(N,\) = \(3,\).*\(1, 4\)",
        ),
        (np.zeros(2, dtype=np.int64), r"got \(2,\)"),
        (np.zeros((1, 3, 1), dtype=np.int64), r"got \(1, 3, 1\)"),
        (np.array([[0.0, 1.0, 0.0]]), r"integers.*float64"),
        (np.array([[0, 5, 0]]), r"action 5 of device 1 in instance 0 is outside \[0, 5\)"),
        (np.array([0, -1, 0]), r"action -1 of device 1 in instance 0 is outside"),
        (np.array([[0, 0, 1]]), r"action 1 of device 2 in instance 0 is masked off"),
        (np.array([0, 0, 4]), r"action 4 of device 2 in instance 0 is masked off"),
    ],
)
def test_bad_actions_raise(actions: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render_frame(crossing_game(), actions)


def test_bad_action_of_other_instance_raises() -> None:
    game = sample_games(SAMPLED, [0, 1])
    actions = nearest_edge_profile(game)
    actions[1, 0] = game.n_actions
    with pytest.raises(ValueError, match=r"device 0 in instance 1 is outside"):
        render_frame(game, actions, 0)


def test_row_profile_error_names_drawn_instance() -> None:
    game = sample_games(SAMPLED, [0, 1])
    row = np.zeros(SAMPLED.n_devices, dtype=np.int64)
    row[3] = -2
    with pytest.raises(ValueError, match=r"action -2 of device 3 in instance 1"):
        render_frame(game, row, 1)


@pytest.mark.parametrize(
    ("size", "match"),
    [
        ({"width": 63}, r"width must be at least 64 pixels, got 63"),
        ({"height": 0}, r"height must be at least 64 pixels, got 0"),
        ({"width": 640.0}, r"width must be an integer number of pixels, got 640\.0"),
        ({"height": False}, r"height must be an integer number of pixels, got False"),
    ],
)
def test_bad_frame_size_raises(size: dict[str, object], match: str) -> None:
    game = sample_games(SAMPLED, [0])
    with pytest.raises(ValueError, match=match):
        render_frame(game, None, **size)  # type: ignore[arg-type]
