"""Draw one instance of the offloading market as an RGB frame, for render_mode "rgb_array".

The frame shows the square area with its device-to-device links, the K edge servers with
their access ranges, and the cloud above the square with a backhaul line from every edge.
Given an action profile, it also colors each device by the kind of its action and draws
every chosen route. Congestion shows in two ways. Each link and backhaul that carries tasks
gets a color and a width that grow with its load n_res. Each edge server is labeled with
the number of tasks on its CPU and on its backhaul. The loads come from
``model.chosen_routes`` and ``model.resource_loads``, the functions that the costs use.

Every call draws on a new matplotlib ``Figure`` with its own Agg canvas. The module never
imports pyplot and sets no rcParams, so several environments in one process can render in
turn without affecting each other or the user's plots. Calls share only the read-only
colormap below. NOTE: matplotlib does not promise thread safety, and calls from several
threads at once are untested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Colormap, ListedColormap, Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Rectangle

from ledgerzoo.envs.offloading import model
from ledgerzoo.envs.offloading.game import OffloadingGame
from ledgerzoo.envs.offloading.topology import LOCAL_ACTION, action_edge, is_cloud_action

# Smallest accepted frame side in pixels. Fonts shrink with the frame, and by eye the text
# is still readable at 400 pixels but not at 200.
MIN_FRAME_SIDE = 64
# Frame side in pixels at which fonts have their nominal point sizes. The figure's dpi
# scales with the shorter frame side, so text keeps its share of the frame at every size.
NOMINAL_FRAME_SIDE = 640
NOMINAL_DPI = 100.0
# Distance between the lines of u -> v and v -> u when both carry tasks, as a share of side.
OPPOSITE_LINK_OFFSET = 0.012
# Devices get index labels only up to this count, because more labels overlap.
MAX_LABELED_DEVICES = 20

BACKGROUND_COLOR = "white"
AREA_COLOR = "#f4f4f4"
DEVICE_LINK_COLOR = "#c8c8c8"
NEUTRAL_DEVICE_COLOR = "#555555"
LOCAL_COLOR = "#4477aa"
EDGE_COLOR = "#228833"
CLOUD_COLOR = "#aa3377"
SERVER_COLOR = "#222222"
ACCESS_RANGE_COLOR = "#228833"
CLOUD_FILL_COLOR = "#cfe3f5"
# Device colors indexed by action kind: local, edge, cloud.
KIND_COLORS = (LOCAL_COLOR, EDGE_COLOR, CLOUD_COLOR)

# Line width (points) of a loaded link: MIN_LOAD_WIDTH at load 1, growing linearly to
# MAX_LOAD_WIDTH at the largest load of the frame.
MIN_LOAD_WIDTH = 2.5
MAX_LOAD_WIDTH = 7.0
# The light end of YlOrRd is almost white, so the loads use its upper three quarters.
# This module never changes the colormap after building it, so every call can share it.
LOAD_COLORMAP: Colormap = ListedColormap(
    colormaps["YlOrRd"](np.linspace(0.25, 1.0, 256)), name="offloading_load"
)


@dataclass(frozen=True)
class _Layout:
    """Positions of one instance's nodes in the drawing (m)."""

    side: float
    devices: np.ndarray
    edges: np.ndarray
    cloud: np.ndarray


def render_frame(
    game: OffloadingGame,
    actions: np.ndarray | None,
    instance: int = 0,
    *,
    width: int = 640,
    height: int = 640,
    title: str | None = None,
) -> np.ndarray:
    """Draw one instance of ``game`` and its chosen routes as an RGB image.

    Args:
        game: The batch of game instances.
        actions: Action profile, either (B, N) for the whole batch or (N,) for the
            instance drawn, or None to draw the network without choices or loads. Every
            action must be legal, including those of the instances that are not drawn.
        instance: Index b of the instance to draw, in [0, B).
        width: Frame width in pixels, at least ``MIN_FRAME_SIDE``.
        height: Frame height in pixels, at least ``MIN_FRAME_SIDE``.
        title: Title above the drawing. The default names the instance and counts the
            devices of each action kind.

    Returns:
        The frame, (height, width, 3) uint8, a new array on every call.

    Raises:
        ValueError: If ``instance``, ``width`` or ``height`` is out of range, or ``actions``
            has the wrong shape or contains an action that is not an integer, is outside
            [0, A) or is masked off. The message names the value.
    """
    instance = _check_instance(game, instance)
    _check_frame_side("width", width)
    _check_frame_side("height", height)
    profile = None if actions is None else _instance_profile(game, actions, instance)

    dpi = NOMINAL_DPI * min(width, height) / NOMINAL_FRAME_SIDE
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND_COLOR)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0.02, 0.17, 0.96, 0.74))
    layout = _layout(game, instance)
    _draw_network(axes, game, instance, layout)

    if profile is None:
        _draw_devices(axes, layout, np.full(game.n_devices, NEUTRAL_DEVICE_COLOR))
        _draw_edges(axes, layout)
        _label_edges(axes, layout, cpu_loads=None, backhaul_loads=None)
        _add_legend(figure, load_samples=None)
    else:
        loads = _instance_loads(game, instance, profile)
        largest = _draw_congestion(axes, game, instance, layout, profile, loads)
        kinds = _action_kinds(profile, game.n_edges)
        _draw_devices(axes, layout, np.asarray(KIND_COLORS)[kinds])
        _add_legend(figure, load_samples=_load_samples(largest))
    if game.n_devices <= MAX_LABELED_DEVICES:
        _label_devices(axes, layout)

    if title is None:
        title = _default_title(game, instance, profile)
    # A figure text costs less to draw than an axes title, whose position matplotlib
    # recomputes from the tick labels.
    figure.text(0.5, 0.985, title, ha="center", va="top", fontsize=10)
    canvas.draw()
    # buffer_rgba() is a view of the canvas memory, so the slice is copied before returning.
    rgba = np.asarray(canvas.buffer_rgba())
    return _fit_frame(rgba[:, :, :3], height, width)


def _check_instance(game: OffloadingGame, instance: object) -> int:
    if isinstance(instance, bool) or not isinstance(instance, (int, np.integer)):
        raise ValueError(f"instance must be an integer in [0, {game.batch_size}), got {instance!r}")
    if not 0 <= instance < game.batch_size:
        raise ValueError(
            f"instance {instance} is out of range: the game has B={game.batch_size} instances, "
            f"so instance must be in [0, {game.batch_size})"
        )
    return int(instance)


def _check_frame_side(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer number of pixels, got {value!r}")
    if value < MIN_FRAME_SIDE:
        raise ValueError(f"{name} must be at least {MIN_FRAME_SIDE} pixels, got {value}")


def _instance_profile(game: OffloadingGame, actions: object, instance: int) -> np.ndarray:
    """Validate ``actions`` with ``model.validate_profile`` and return instance b's row, (N,).

    A profile of one instance, (N,), is checked inside a (B, N) profile whose other rows are
    local, so that error messages name the instance drawn.
    """
    array = np.asarray(actions)
    batch, n_devices = game.batch_size, game.n_devices
    if array.shape == (n_devices,):
        full = np.full((batch, n_devices), LOCAL_ACTION, dtype=array.dtype)
        full[instance] = array
        array = full
    elif array.shape != (batch, n_devices):
        raise ValueError(
            f"actions must have shape (B, N) = {(batch, n_devices)} or (N,) = ({n_devices},), "
            f"got {array.shape}"
        )
    return model.validate_profile(game, array)[instance]


def _instance_loads(game: OffloadingGame, instance: int, profile: np.ndarray) -> np.ndarray:
    """Count the tasks n_res on every resource of one instance, (R + 1,) int64."""
    route_resources = game.topology.route_resources[instance : instance + 1]
    routes = model.chosen_routes(route_resources, profile[None, :])
    return model.resource_loads(routes, game.topology.n_resources + 1)[0]


def _action_kinds(profile: np.ndarray, n_edges: int) -> np.ndarray:
    """Map each action to its kind: 0 local, 1 edge, 2 cloud, (N,) int64."""
    kinds = np.where(profile == LOCAL_ACTION, 0, 1)
    return np.where(is_cloud_action(profile, n_edges), 2, kinds).astype(np.int64)


def _layout(game: OffloadingGame, instance: int) -> _Layout:
    side = float(game.scenario.side)
    return _Layout(
        side=side,
        devices=game.topology.device_positions[instance],
        edges=game.topology.edge_positions[instance],
        # The cloud sits centred 0.2 side above the top of the square.
        cloud=np.array([0.5 * side, 1.2 * side]),
    )


def _draw_network(axes: Axes, game: OffloadingGame, instance: int, layout: _Layout) -> None:
    """Draw the square, the device-to-device links, access ranges, backhauls and the cloud."""
    side = layout.side
    margin = 0.06 * side
    axes.set_xlim(-margin, side + margin)
    axes.set_ylim(-margin, layout.cloud[1] + 0.09 * side)
    axes.set_aspect("equal", adjustable="box")
    axes.set_axis_off()

    area = Rectangle((0.0, 0.0), side, side, facecolor=AREA_COLOR, edgecolor="#888888", zorder=0)
    axes.add_patch(area)
    axes.text(side, -0.02 * side, f"{side:g} m", ha="right", va="top", fontsize=8, color="#555555")

    pairs = np.argwhere(np.triu(game.topology.adjacency[instance], k=1))
    segments = layout.devices[pairs]
    axes.add_collection(
        LineCollection(list(segments), colors=DEVICE_LINK_COLOR, linewidths=0.6, zorder=1)
    )

    edge_range = float(game.scenario.edge_range)
    for position in layout.edges:
        circle = Circle(
            (float(position[0]), float(position[1])),
            edge_range,
            facecolor=to_rgba(ACCESS_RANGE_COLOR, 0.05),
            edgecolor=to_rgba(ACCESS_RANGE_COLOR, 0.35),
            linewidth=0.8,
            linestyle="--",
            zorder=1,
        )
        axes.add_patch(circle)
        # Access links exist only inside the square, so the range is drawn only there.
        circle.set_clip_path(area)

    backhauls = [[position, layout.cloud] for position in layout.edges]
    axes.add_collection(
        LineCollection(backhauls, colors="#9fb8cf", linewidths=1.0, linestyles="--", zorder=1)
    )
    axes.scatter(
        [layout.cloud[0]],
        [layout.cloud[1]],
        s=900,
        marker="o",
        color=CLOUD_FILL_COLOR,
        edgecolors="#5a7fa6",
        linewidths=1.2,
        zorder=6,
    )
    axes.text(
        layout.cloud[0], layout.cloud[1], "cloud", ha="center", va="center", fontsize=8, zorder=7
    )


def _draw_congestion(
    axes: Axes,
    game: OffloadingGame,
    instance: int,
    layout: _Layout,
    profile: np.ndarray,
    loads: np.ndarray,
) -> int:
    """Draw the loaded links and backhauls, the chosen routes and the edge loads.

    Returns:
        The largest load of a link or backhaul, 0 when every task runs locally.
    """
    n_devices, n_edges = game.n_devices, game.n_edges
    cpu_start = 2 * n_devices * n_edges
    cpu_loads = loads[cpu_start : cpu_start + n_edges]
    backhaul_loads = loads[cpu_start + n_edges : cpu_start + 2 * n_edges]
    segments, segment_loads = _loaded_segments(game, instance, layout, loads)
    # The scale covers links and backhauls only. An edge CPU often carries many more tasks
    # than any link, and would leave every link at the pale end of the scale.
    largest = int(segment_loads.max(initial=0))

    if segment_loads.size:
        # The most loaded segments come last, so they are drawn on top.
        order = np.argsort(segment_loads, kind="stable")
        colors, widths = _load_style(segment_loads[order], largest)
        axes.add_collection(
            LineCollection(
                list(segments[order]), colors=colors, linewidths=widths, capstyle="round", zorder=3
            )
        )

    routes, route_colors = _route_polylines(game, instance, layout, profile)
    if routes:
        axes.add_collection(LineCollection(routes, colors=route_colors, linewidths=0.8, zorder=4))

    _draw_edges(axes, layout)
    _label_edges(axes, layout, cpu_loads=cpu_loads, backhaul_loads=backhaul_loads)
    return largest


def _load_style(loads: np.ndarray, largest: int) -> tuple[np.ndarray, np.ndarray]:
    """Map link loads (>= 1) to RGBA colors (M, 4) and line widths (M,) in points.

    Load 1 gets the pale end of the colormap and ``MIN_LOAD_WIDTH``, and ``largest`` the
    dark end and ``MAX_LOAD_WIDTH``. The scale is relative to the frame's largest load, so
    one color means different loads in two frames. The legend lists sample loads.
    """
    # With largest = 1 every loaded link has load 1, and the scale runs to 2 to stay defined.
    norm = Normalize(vmin=1.0, vmax=float(max(largest, 2)))
    fraction = np.clip(norm(np.asarray(loads, dtype=np.float64)), 0.0, 1.0)
    widths = MIN_LOAD_WIDTH + (MAX_LOAD_WIDTH - MIN_LOAD_WIDTH) * fraction
    return LOAD_COLORMAP(fraction), widths


def _load_samples(largest: int) -> list[int]:
    """Pick the loads the legend shows: 1, the middle and the largest, without repeats."""
    if largest < 1:
        return []
    return sorted({1, (1 + largest) // 2, largest})


def _loaded_segments(
    game: OffloadingGame, instance: int, layout: _Layout, loads: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the end points (M, 2, 2) and loads (M,) of every link and backhaul with a task.

    The resource index layout is the one of ``topology.py``. Device link slot v*K + j is the
    link from device v to its next hop towards edge j.
    """
    n_devices, n_edges = game.n_devices, game.n_edges
    links = n_devices * n_edges
    next_hop = game.topology.next_hop[instance]

    device_slots = np.flatnonzero(loads[:links])
    senders = device_slots // n_edges
    receivers = next_hop[senders, device_slots % n_edges]
    device_segments = np.stack([layout.devices[senders], layout.devices[receivers]], axis=1)
    device_segments = _separate_opposite_links(device_segments, senders, receivers, layout.side)

    access_slots = np.flatnonzero(loads[links : 2 * links])
    access_segments = np.stack(
        [layout.devices[access_slots // n_edges], layout.edges[access_slots % n_edges]], axis=1
    )

    backhaul_start = 2 * links + n_edges
    backhaul_edges = np.flatnonzero(loads[backhaul_start : backhaul_start + n_edges])
    cloud = np.broadcast_to(layout.cloud, (backhaul_edges.size, 2))
    backhaul_segments = np.stack([layout.edges[backhaul_edges], cloud], axis=1)

    segments = np.concatenate([device_segments, access_segments, backhaul_segments], axis=0)
    segment_loads = np.concatenate(
        [
            loads[device_slots],
            loads[links + access_slots],
            loads[backhaul_start + backhaul_edges],
        ]
    )
    return segments.reshape(-1, 2, 2), segment_loads.astype(np.float64)


def _separate_opposite_links(
    segments: np.ndarray, senders: np.ndarray, receivers: np.ndarray, side: float
) -> np.ndarray:
    """Shift each loaded link whose reverse link is also loaded to the right of its direction.

    u -> v and v -> u are two resources with their own loads. Without the shift the two
    lines would cover each other.
    """
    directed = set(zip(senders.tolist(), receivers.tolist(), strict=True))
    both_ways = np.array(
        [(v, u) in directed for u, v in zip(senders.tolist(), receivers.tolist(), strict=True)],
        dtype=bool,
    )
    if not both_ways.any():
        return segments
    direction = segments[:, 1] - segments[:, 0]
    length = np.linalg.norm(direction, axis=1, keepdims=True)
    # Linked devices are never at the same point in a sampled game, but a hand-built one may be.
    unit = np.divide(direction, length, out=np.zeros_like(direction), where=length > 0)
    right = np.stack([unit[:, 1], -unit[:, 0]], axis=1) * (OPPOSITE_LINK_OFFSET * side)
    shifted = segments.copy()
    shifted[both_ways] += right[both_ways, None, :]
    return shifted


def _route_polylines(
    game: OffloadingGame, instance: int, layout: _Layout, profile: np.ndarray
) -> tuple[list[np.ndarray], list[str]]:
    """Return each offloaded task's route, device -> relays -> edge (-> cloud), and its color."""
    n_devices, n_edges = game.n_devices, game.n_edges
    relays = game.topology.route_relays[instance]
    edges = action_edge(profile, n_edges)
    to_cloud = is_cloud_action(profile, n_edges)
    polylines: list[np.ndarray] = []
    colors: list[str] = []
    for device in np.flatnonzero(profile != LOCAL_ACTION).tolist():
        route_relays = relays[device, profile[device]]
        points = [layout.devices[device]]
        points.extend(layout.devices[route_relays[route_relays < n_devices]])
        points.append(layout.edges[edges[device]])
        if to_cloud[device]:
            points.append(layout.cloud)
        polylines.append(np.asarray(points))
        colors.append(CLOUD_COLOR if to_cloud[device] else EDGE_COLOR)
    return polylines, colors


def _draw_devices(axes: Axes, layout: _Layout, colors: np.ndarray) -> None:
    axes.scatter(
        layout.devices[:, 0],
        layout.devices[:, 1],
        s=28,
        c=colors,
        edgecolors="white",
        linewidths=0.6,
        zorder=5,
    )


def _label_devices(axes: Axes, layout: _Layout) -> None:
    offset = 0.012 * layout.side
    for index, (x, y) in enumerate(layout.devices.tolist()):
        axes.text(x + offset, y + offset, str(index), fontsize=7, color="#333333", zorder=7)


def _draw_edges(axes: Axes, layout: _Layout) -> None:
    axes.scatter(
        layout.edges[:, 0],
        layout.edges[:, 1],
        s=110,
        marker="s",
        color=BACKGROUND_COLOR,
        edgecolors=SERVER_COLOR,
        linewidths=1.6,
        zorder=6,
    )


def _label_edges(
    axes: Axes,
    layout: _Layout,
    *,
    cpu_loads: np.ndarray | None,
    backhaul_loads: np.ndarray | None,
) -> None:
    """Write each edge's index and, given loads, its CPU tasks and cloud tasks next to it."""
    offset = 0.03 * layout.side
    for edge, (x, y) in enumerate(layout.edges.tolist()):
        text = f"E{edge}"
        if cpu_loads is not None and backhaul_loads is not None:
            text += f": {cpu_loads[edge]} on CPU\n{backhaul_loads[edge]} to cloud"
        axes.text(
            x + offset,
            y - offset,
            text,
            ha="left",
            va="top",
            fontsize=8,
            zorder=8,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )


def _add_legend(figure: Figure, *, load_samples: list[int] | None) -> None:
    """Add the legend below the drawing. ``load_samples`` is None when no actions are drawn."""

    def dot(color: str) -> Line2D:
        return Line2D([], [], linestyle="", marker="o", markersize=6, color=color)

    handles: list[Artist] = []
    labels: list[str] = []
    if load_samples is None:
        handles.append(dot(NEUTRAL_DEVICE_COLOR))
        labels.append("device")
    else:
        handles += [dot(LOCAL_COLOR), dot(EDGE_COLOR), dot(CLOUD_COLOR)]
        labels += ["device: local", "device: to edge", "device: to cloud"]
    handles += [
        Line2D(
            [], [], linestyle="", marker="s", markersize=7, markerfacecolor="white", color="black"
        ),
        Line2D([], [], linestyle="", marker="o", markersize=9, markerfacecolor=CLOUD_FILL_COLOR),
        Line2D([], [], color=DEVICE_LINK_COLOR, linewidth=1.0),
        Patch(
            facecolor=to_rgba(ACCESS_RANGE_COLOR, 0.1),
            edgecolor=to_rgba(ACCESS_RANGE_COLOR, 0.5),
            linestyle="--",
        ),
    ]
    labels += ["edge server", "cloud", "device link", "edge access range"]
    if load_samples is not None:
        handles += [
            Line2D([], [], color=EDGE_COLOR, linewidth=0.8),
            Line2D([], [], color=CLOUD_COLOR, linewidth=0.8),
        ]
        labels += ["route to edge", "route to cloud"]
        largest = max(load_samples, default=0)
        colors, widths = _load_style(np.asarray(load_samples), largest)
        for load, color, line_width in zip(load_samples, colors, widths, strict=True):
            handles.append(Line2D([], [], color=color, linewidth=line_width))
            labels.append(f"link with {load} task{'s' if load > 1 else ''}")
    figure.legend(
        handles,
        labels,
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
        columnspacing=1.2,
        handlelength=1.8,
    )


def _default_title(game: OffloadingGame, instance: int, profile: np.ndarray | None) -> str:
    title = f"Offloading instance {instance}: {game.n_devices} devices, {game.n_edges} edges"
    if profile is None:
        return title
    counts = np.bincount(_action_kinds(profile, game.n_edges), minlength=3)
    return f"{title}\n{counts[0]} local, {counts[1]} on edges, {counts[2]} in the cloud"


def _fit_frame(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Copy the frame into an exact (height, width, 3) uint8 array.

    Agg sizes the canvas as figure inches times dpi, truncated to integers, so a float error
    could cost a row or a column. A missing row or column is filled with the background
    color, and an extra one is dropped.
    """
    frame = np.full((height, width, 3), 255, dtype=np.uint8)
    rows = min(height, rgb.shape[0])
    columns = min(width, rgb.shape[1])
    frame[:rows, :columns] = rgb[:rows, :columns]
    return frame
