"""The offloading scenario: its defaults and the errors for invalid values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ledgerzoo.envs.offloading.scenario import OffloadingScenario, default_edge_positions


def test_defaults_are_valid() -> None:
    scenario = OffloadingScenario()
    assert scenario.n_actions == 1 + 2 * scenario.n_edges
    assert scenario.edge_prices.shape == (scenario.n_edges,)
    assert scenario.edge_running_costs.shape == (scenario.n_edges,)
    assert scenario.congestion_task_bits == pytest.approx(np.mean(scenario.task_bits_range))
    assert scenario.congestion_task_cycles == pytest.approx(np.mean(scenario.task_cycles_range))
    low, high = scenario.price_range
    assert low <= scenario.edge_prices.min() <= scenario.edge_prices.max() <= high


def test_default_edge_positions_grid() -> None:
    np.testing.assert_allclose(default_edge_positions(2, 200.0), [[50.0, 100.0], [150.0, 100.0]])
    np.testing.assert_allclose(
        default_edge_positions(4, 200.0),
        [[50.0, 50.0], [150.0, 50.0], [50.0, 150.0], [150.0, 150.0]],
    )
    np.testing.assert_allclose(default_edge_positions(1, 10.0), [[5.0, 5.0]])
    three = default_edge_positions(3, 200.0)
    assert three.shape == (3, 2)
    assert np.all((three > 0.0) & (three < 200.0))


def test_explicit_edge_positions_and_prices() -> None:
    scenario = OffloadingScenario(
        n_edges=2,
        edge_positions=((10.0, 20.0), (30.0, 40.0)),
        edge_price=(1e-10, 2e-10),
        edge_running_cost=(0.0, 1e-11),
    )
    np.testing.assert_allclose(scenario.edge_position_array, [[10.0, 20.0], [30.0, 40.0]])
    np.testing.assert_allclose(scenario.edge_prices, [1e-10, 2e-10])
    np.testing.assert_allclose(scenario.edge_running_costs, [0.0, 1e-11])


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"n_devices": 0}, "n_devices.*at least 1.*0"),
        ({"n_devices": 2.5}, r"n_devices.*integer.*2\.5"),
        ({"n_devices": True}, "n_devices.*integer.*True"),
        ({"n_edges": -1}, "n_edges.*-1"),
        ({"side": 0.0}, r"side.*above 0.*0\.0"),
        ({"radio_range": -5.0}, r"radio_range.*-5\.0"),
        ({"edge_range": float("nan")}, "edge_range.*finite.*nan"),
        ({"device_link_rate": float("inf")}, "device_link_rate.*finite.*inf"),
        ({"edge_cpu_speed": 0.0}, "edge_cpu_speed.*above 0"),
        ({"time_weight": 0.0}, "time_weight.*above 0"),
        ({"backhaul_latency": -0.1}, r"backhaul_latency.*at least 0.*-0\.1"),
        ({"energy_weight": -1.0}, "energy_weight.*-1"),
        ({"cloud_price": -1e-10}, "cloud_price.*-1e-10"),
        ({"relay_fee": "free"}, "relay_fee.*number.*'free'"),
        ({"mining_task_share": 1.5}, r"mining_task_share.*\[0, 1\].*1\.5"),
        ({"task_bits_range": (5e6, 1e6)}, "task_bits_range.*low <= high.*5000000"),
        ({"task_cycles_range": (0.0, 1e9)}, "task_cycles_range low end.*above 0"),
        ({"delay_weight_range": (1.0,)}, r"delay_weight_range.*\(low, high\) pair"),
        ({"hash_share_range": (0.1, 2.0)}, r"hash_share_range.*\[0, 1\]"),
        ({"price_range": (5e-10, 1e-10)}, "price_range.*low <= high"),
        ({"edge_price": (1e-10, 2e-10, 3e-10)}, "edge_price.*n_edges=2.*3 numbers"),
        ({"edge_running_cost": (1e-11, -1e-11)}, "edge_running_cost.*-1e-11"),
        ({"reference_task_bits": 0.0}, "reference_task_bits.*above 0"),
        ({"edge_positions": ((10.0, 10.0),)}, r"edge_positions.*n_edges=2.*\(1, 2\)"),
        ({"edge_positions": ((10.0, 10.0), (500.0, 10.0))}, "edge_positions.*inside.*side=200"),
    ],
)
def test_invalid_value_raises(changes: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        OffloadingScenario(**changes)  # type: ignore[arg-type]


def test_replace_validates() -> None:
    scenario = OffloadingScenario()
    with pytest.raises(ValueError, match="radio_range"):
        dataclasses.replace(scenario, radio_range=0.0)
