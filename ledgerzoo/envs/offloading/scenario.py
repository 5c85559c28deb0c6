"""Scenario of the edge and cloud computation offloading market for blockchain IIoT.

A scenario fixes the constants of the market and the ranges that each episode draws from:
N industrial IoT devices in a square, K edge servers at fixed points, and a cloud that every
edge reaches through its backhaul. Each round every device has one task, a data task or a
mining task, and runs it locally, on an edge server or in the cloud (see ``model.py``).

Units are SI throughout: metres, seconds, bits, bit/s, CPU cycles, Hz (cycles per second),
joules and watts. Money is in coins. Prices per cycle are small numbers, so the docstrings
also give them per 10^9 cycles (one gigacycle).

The model keeps the structure of two papers: multi-hop routes, data and mining tasks,
congestion, and a potential game solved by distributed best response. They are W. Chen,
Z. Zhang, Z. Hong et al., "Cooperative and Distributed Computation Offloading for
Blockchain-Empowered Industrial Internet of Things", IEEE Internet of Things Journal 6(5),
2019, and Z. Hong, W. Chen et al., "Multi-Hop Cooperative Computation Offloading for
Industrial IoT-Edge-Cloud Computing Environments", IEEE TPDS 30(12), 2019. The cost formulas
are this project's own, and so are the default values, which are picked so that local
execution, the edges and the cloud all attract tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ledgerzoo.envs.core.params import describe_value, to_float

Range = tuple[float, float]

#: Largest number of devices and of edge servers. Building the topology allocates (B, N, N)
#: device adjacency and (B, N, K, K) route arrays, about 10^8 entries per instance at these caps.
# NOTE: no test builds a market near the caps, and the equilibrium search there may be slow.
MAX_DEVICES = 10_000
MAX_EDGES = 100
#: Largest values of the fields whose observation entries or products would otherwise overflow:
#: the side, coins, and the task sizes observed in megabits and gigacycles in float32 (whose
#: largest value is about 3.4e38).
FIELD_MAXIMA = {
    "side": 1e7,  # metres: squared distances stay far below the float64 limit
    "block_reward": 1e12,  # coins
    "task_bits_range": 1e15,  # bits
    "task_cycles_range": 1e18,  # cycles
}


@dataclass(frozen=True)
class OffloadingScenario:
    """Constants and per-episode ranges of the offloading market.

    A ``*_range`` field is a (low, high) pair, and each episode draws every device's value
    uniformly from it. Equal ends fix the value.

    Attributes:
        n_devices: Number of devices N (>= 1).
        n_edges: Number of edge servers K (>= 1).
        side: Side of the square area the devices lie in (m).
        radio_range: Largest distance at which two devices have a link in both directions (m).
        edge_range: Largest distance from an edge server at which a device has an access
            link to it (m).
        edge_positions: Position (x, y) of each edge server (m), inside the square. ``None``
            places them at the centres of the cells of a grid with ceil(sqrt(K)) columns
            and ceil(K / columns) rows, filled row by row from (0, 0).
        device_link_rate: Rate R of every device-to-device link (bit/s).
        access_link_rate: Rate of every access link from a device to an edge server (bit/s).
        backhaul_rate: Rate of each edge server's backhaul to the cloud (bit/s).
        device_link_latency: Fixed delay of one device-to-device hop (s).
        access_link_latency: Fixed delay of an access link (s).
        backhaul_latency: Fixed delay of a backhaul, the round trip to the cloud (s).
        edge_cpu_speed: CPU speed F_k of every edge server, shared by its tasks (Hz).
        cloud_cpu_speed: CPU speed the cloud gives each task, not shared (Hz).
        device_cpu_speed_range: Range of a device's CPU speed F_i (Hz).
        task_bits_range: Range of a task's input size B_i (bits).
        task_cycles_range: Range of a task's CPU cycles C_i (cycles).
        mining_task_share: Probability that a task is a mining task, in [0, 1].
        hash_share_range: Range of a mining device's share of the network's hash power,
            in [0, 1]. Data tasks have a share of 0.
        delay_weight_range: Range of the dimensionless delay weight u_i (> 0). Device i
            values a second of delay at w_i = lambda^T u_i coins.
        time_weight: lambda^T, coins per second of delay for u_i = 1 (> 0).
        energy_weight: lambda^E, coins per joule the device spends (>= 0).
        switched_capacitance: kappa, effective switched capacitance of a device CPU: a cycle
            at speed F costs kappa F^2 joules (J s^2, >= 0).
        transmit_power: Radio power of a device while it sends its task (W).
        edge_price: Price p_k of computing on edge k (coins per cycle, >= 0): one number for
            every edge or K numbers. The default 1e-10 is 0.1 coins per gigacycle.
        cloud_price: Price p_c of computing in the cloud (coins per cycle, >= 0).
        edge_running_cost: Running cost c_k of edge k (coins per cycle, >= 0): one number or
            K numbers.
        price_range: Interval [p_min, p_max] of the prices an edge may post when edges price
            as leaders (coins per cycle).
        block_reward: R_block, the reward for a mined block (coins, >= 0).
        block_rate: lambda_block, the rate at which the network finds blocks (blocks per s,
            >= 0).
        propagation_delay_device: z of a block mined on the device itself (s, >= 0).
        propagation_delay_edge: z of a block mined on an edge server (s, >= 0).
        propagation_delay_cloud: z of a block mined in the cloud (s, >= 0).
        relay_fee: Fee a device pays each relay on its route, per bit it relays (coins per
            bit, >= 0). The default 2e-8 is 0.02 coins per megabit.
        reference_task_bits: Size of the reference task whose transfer time sets the
            congestion delay of a link (bits). ``None`` takes the middle of
            ``task_bits_range``.
        reference_task_cycles: Cycles of the reference task whose run time sets the
            congestion delay of an edge CPU (cycles). ``None`` takes the middle of
            ``task_cycles_range``.

    Raises:
        ValueError: On construction, for any value outside its valid range. The message
            names the field, the value and what is allowed.
    """

    n_devices: int = 10
    n_edges: int = 2
    side: float = 200.0
    radio_range: float = 50.0
    edge_range: float = 70.0
    edge_positions: tuple[tuple[float, float], ...] | None = None
    device_link_rate: float = 5e6
    access_link_rate: float = 20e6
    backhaul_rate: float = 50e6
    device_link_latency: float = 0.002
    access_link_latency: float = 0.002
    backhaul_latency: float = 0.1
    edge_cpu_speed: float = 10e9
    cloud_cpu_speed: float = 50e9
    device_cpu_speed_range: Range = (0.5e9, 1.5e9)
    task_bits_range: Range = (0.5e6, 5e6)
    task_cycles_range: Range = (0.5e9, 3e9)
    mining_task_share: float = 0.3
    hash_share_range: Range = (0.01, 0.05)
    delay_weight_range: Range = (0.5, 2.0)
    time_weight: float = 1.0
    energy_weight: float = 0.1
    switched_capacitance: float = 1e-27
    transmit_power: float = 0.5
    edge_price: float | tuple[float, ...] = 1e-10
    cloud_price: float = 1.5e-10
    edge_running_cost: float | tuple[float, ...] = 2e-11
    price_range: Range = (2e-11, 5e-10)
    block_reward: float = 10.0
    block_rate: float = 1.0 / 12.0
    propagation_delay_device: float = 5.0
    propagation_delay_edge: float = 1.0
    propagation_delay_cloud: float = 0.2
    relay_fee: float = 2e-8
    reference_task_bits: float | None = None
    reference_task_cycles: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_actions(self) -> int:
        """Number of actions of a device, 1 + 2K (local, K edges, the cloud through K edges)."""
        return 1 + 2 * self.n_edges

    @property
    def edge_position_array(self) -> np.ndarray:
        """Positions of the edge servers (m), shape (K, 2), float64."""
        if self.edge_positions is None:
            return default_edge_positions(self.n_edges, self.side)
        return np.asarray(self.edge_positions, dtype=np.float64).reshape(self.n_edges, 2)

    @property
    def edge_prices(self) -> np.ndarray:
        """Price p_k of each edge server (coins per cycle), shape (K,)."""
        return _per_edge(self.edge_price, self.n_edges)

    @property
    def edge_running_costs(self) -> np.ndarray:
        """Running cost c_k of each edge server (coins per cycle), shape (K,)."""
        return _per_edge(self.edge_running_cost, self.n_edges)

    @property
    def congestion_task_bits(self) -> float:
        """Size of the reference task that sets the congestion delay of a link (bits)."""
        if self.reference_task_bits is None:
            return 0.5 * (self.task_bits_range[0] + self.task_bits_range[1])
        return float(self.reference_task_bits)

    @property
    def congestion_task_cycles(self) -> float:
        """Cycles of the reference task that sets the congestion delay of an edge CPU."""
        if self.reference_task_cycles is None:
            return 0.5 * (self.task_cycles_range[0] + self.task_cycles_range[1])
        return float(self.reference_task_cycles)

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value is outside its valid range."""
        _check_count("n_devices", self.n_devices, MAX_DEVICES)
        _check_count("n_edges", self.n_edges, MAX_EDGES)
        for name in (
            "side",
            "radio_range",
            "edge_range",
            "device_link_rate",
            "access_link_rate",
            "backhaul_rate",
            "edge_cpu_speed",
            "cloud_cpu_speed",
            "time_weight",
        ):
            _check_number(name, getattr(self, name), strictly_positive=True)
        for name in (
            "device_link_latency",
            "access_link_latency",
            "backhaul_latency",
            "energy_weight",
            "switched_capacitance",
            "transmit_power",
            "cloud_price",
            "block_reward",
            "block_rate",
            "propagation_delay_device",
            "propagation_delay_edge",
            "propagation_delay_cloud",
            "relay_fee",
        ):
            _check_number(name, getattr(self, name), strictly_positive=False)
        _check_number("mining_task_share", self.mining_task_share, strictly_positive=False)
        if self.mining_task_share > 1.0:
            raise ValueError(
                f"mining_task_share must be a probability in [0, 1], got {self.mining_task_share}"
            )

        for name in (
            "device_cpu_speed_range",
            "task_bits_range",
            "task_cycles_range",
            "delay_weight_range",
        ):
            _check_range(name, getattr(self, name), strictly_positive=True)
        _check_range("hash_share_range", self.hash_share_range, strictly_positive=False)
        if self.hash_share_range[1] > 1.0:
            raise ValueError(
                f"hash_share_range must lie in [0, 1] (a share of the hash power), got "
                f"{self.hash_share_range}"
            )
        _check_range("price_range", self.price_range, strictly_positive=False)

        for name in ("edge_price", "edge_running_cost"):
            values = getattr(self, name)
            if isinstance(values, (tuple, list)) and len(values) != self.n_edges:
                raise ValueError(
                    f"{name} must be one number or n_edges={self.n_edges} numbers, got "
                    f"{len(values)} numbers: {values}"
                )
            for value in np.atleast_1d(np.asarray(values, dtype=object)):
                _check_number(name, value, strictly_positive=False)

        for name in ("reference_task_bits", "reference_task_cycles"):
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value, strictly_positive=True)

        self._validate_edge_positions()

    def _validate_edge_positions(self) -> None:
        if self.edge_positions is None:
            return
        try:
            positions = np.asarray(self.edge_positions, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"edge_positions must be n_edges={self.n_edges} (x, y) pairs in metres, got "
                f"{self.edge_positions!r}"
            ) from error
        if positions.shape != (self.n_edges, 2):
            raise ValueError(
                f"edge_positions must be n_edges={self.n_edges} (x, y) pairs in metres, got "
                f"shape {positions.shape}: {self.edge_positions!r}"
            )
        if (
            not np.all(np.isfinite(positions))
            or np.any(positions < 0.0)
            or np.any(positions > self.side)
        ):
            raise ValueError(
                f"edge_positions must lie inside the square [0, side={self.side}] m, got "
                f"{self.edge_positions!r}. Move the points or enlarge side"
            )


def uniform_in_range(uniforms: np.ndarray, bounds: Range) -> np.ndarray:
    """Map draws u in [0, 1) onto [low, high) as low + (high - low) u.

    numpy's ``rng.uniform(low, high)`` computes exactly this from one draw u per value, so a
    batch built from ``rng.random`` draws equals separate ``rng.uniform`` calls bit for bit.
    """
    low, high = bounds
    return low + (high - low) * uniforms


def default_edge_positions(n_edges: int, side: float) -> np.ndarray:
    """Place K edge servers at the cell centres of a grid over the square (m), shape (K, 2).

    The grid has ceil(sqrt(K)) columns and ceil(K / columns) rows, and edge k sits in
    column k mod columns of row k // columns. Two edges on a 200 m square sit at (50, 100)
    and (150, 100), and four at (50, 50), (150, 50), (50, 150) and (150, 150).
    """
    columns = math.ceil(math.sqrt(n_edges))
    rows = math.ceil(n_edges / columns)
    index = np.arange(n_edges)
    x = (index % columns + 0.5) * side / columns
    y = (index // columns + 0.5) * side / rows
    return np.stack([x, y], axis=1).astype(np.float64)


def _per_edge(value: float | tuple[float, ...], n_edges: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n_edges,)).copy()


def _check_count(name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {describe_value(value)}")


def _check_number(name: str, value: object, *, strictly_positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        hint = ""
        if isinstance(value, str):
            hint = ". YAML reads 5.0e6 as text; write 5.0e+6 or 5000000.0"
        raise ValueError(f"{name} must be a number, got {value!r}{hint}")
    # to_float turns a Python int beyond the float range into inf, rejected here.
    number = to_float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {describe_value(value)}")
    if strictly_positive and number <= 0.0:
        raise ValueError(f"{name} must be above 0, got {value}")
    if not strictly_positive and number < 0.0:
        raise ValueError(f"{name} must be at least 0, got {value}")
    maximum = FIELD_MAXIMA.get(name.removesuffix(" low end").removesuffix(" high end"))
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum:g}, got {value}")


def _check_range(name: str, value: object, *, strictly_positive: bool) -> None:
    if isinstance(value, np.ndarray):
        value = tuple(value.tolist())
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    low, high = value
    _check_number(f"{name} low end", low, strictly_positive=strictly_positive)
    _check_number(f"{name} high end", high, strictly_positive=strictly_positive)
    if low > high:
        raise ValueError(
            f"{name} must have low <= high, got low={low} and high={high}. Swap the ends"
        )
