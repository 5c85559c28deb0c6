"""Scenario of the data market among robots: who trades, what the data is worth, what it costs.

A :class:`DataMarketScenario` describes how each episode's parameters are drawn. Its
:meth:`~DataMarketScenario.sample` draws B independent instances from a numpy Generator into a
:class:`DataMarket`, whose arrays have the batch as their leading axis. The model, the
auctioneer and the relays read a :class:`DataMarket` only.

Symbols (units; a data unit is whatever the data is counted in, for example a megabyte):
    v_i        willingness of buyer i (coins)
    q_j        quality of seller j's data, in (0, 1]
    a_j        age of seller j's data (rounds)
    delta      perishability: the rate at which data loses value (per round)
    rho        efficiency of one relay hop: the fraction of the data a relay passes on, (0, 1]
    hops_ij    relay hops between seller j and buyer i, an integer >= 0
    c_i^min    buyer i's demand floor (data units)
    c_i^max    buyer i's demand cap (data units)
    d_j^max    seller j's supply cap (data units)
    l1, l2     seller j's cost L_j = l1 D_j^2 + l2 D_j of supplying D_j data units
               (l1 in coins per data unit squared, l2 in coins per data unit)
    alpha      Sprite credit of a reporting relay before the last reporter (coins per message)
    beta       Sprite credit of the last reporting relay, alpha > beta >= 0 (coins per message)
    c_fwd      a relay's cost to forward a message (coins per message)
    c_rcpt     a relay's cost to report a receipt (coins per message)

Per-agent values take one of four forms, in Python or in a YAML config:

- a number: every agent gets it in every episode;
- ``{"low": a, "high": b}`` or :class:`Uniform`: each agent's value is drawn from U[a, b]
  per episode;
- ``{"choices": [x, y, ...]}`` or :class:`Choice`: each agent's value is drawn uniformly
  from the listed values per episode;
- a list of one number per agent: agent k gets the k-th number in every episode.

``hops`` takes an integer, a :class:`Choice` of integers (drawn per buyer-seller pair) or a
list of ``n_buyers`` lists of ``n_sellers`` integers.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ledgerzoo.envs.core.params import describe_value, to_float
from ledgerzoo.envs.data_market import model

#: Largest number of buyers, sellers and relays. The market builds (B, I, J) arrays per step and
#: (B, I, J, R) relay keys per episode, so the cap rejects a mistyped count such as 10**9 before
#: any allocation.
MAX_ROBOTS = 10_000
#: Largest amount in coins (willingness, costs and credits), so that prices, payments and the
#: relays' credits stay finite in float32 observations and in the auctioneer's float64 updates.
MAX_COINS = 1e12


@dataclass(frozen=True)
class Uniform:
    """Draw each agent's value from U[low, high] per episode."""

    low: float
    high: float


@dataclass(frozen=True)
class Choice:
    """Draw each agent's value uniformly from a finite set of values per episode."""

    values: tuple[float, ...]


# A per-agent scenario value after parsing: fixed number, range, finite set, or one per agent.
AgentValue = float | Uniform | Choice | tuple[float, ...]
# Hop counts after parsing: one for every pair, a set drawn per pair, or an (I, J) matrix.
HopValue = int | Choice | tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class DataMarketScenario:
    """The distributions from which each episode of the data market draws its parameters.

    The defaults are the small heterogeneous market (:func:`small_market`). Per-agent fields
    accept the forms of the module docstring. Mappings and lists are converted on
    construction, so a scenario read from YAML and one written in Python compare equal.

    Attributes:
        n_buyers: Number of buyer robots I, an int >= 1.
        n_sellers: Number of seller robots J, an int >= 1.
        n_relays: Number of relay robots R, an int >= the largest hop count.
        willingness: v_i (coins), > 0, per buyer.
        quality: q_j, in (0, 1], per seller.
        age: a_j (rounds), >= 0, per seller, the data's age at the start of an episode.
        perishability: delta (per round), >= 0.
        hop_efficiency: rho, in (0, 1].
        hops: hops_ij, integers in [0, n_relays], per buyer-seller pair.
        min_demand: c_i^min (data units), >= 0, per buyer.
        max_demand: c_i^max (data units), > 0 and >= c_i^min, per buyer.
        max_supply: d_j^max (data units), > 0, per seller.
        quadratic_cost: l1 (coins per data unit squared), >= 0, per seller.
        linear_cost: l2 (coins per data unit), >= 0, per seller.
        relay_credit: alpha (coins per message), above ``last_reporter_credit``.
        last_reporter_credit: beta (coins per message), >= 0.
        forward_cost: c_fwd (coins per message), >= 0.
        receipt_cost: c_rcpt (coins per message), >= 0.

    Raises:
        ValueError: On construction, for a value of the wrong form or outside its bounds, and
            when the demand floors may be infeasible (see :meth:`validate`). The message names
            the field, the value and the fix.
    """

    n_buyers: int = 6
    n_sellers: int = 8
    n_relays: int = 4
    willingness: Any = Uniform(2.0, 6.0)
    quality: Any = Uniform(0.5, 1.0)
    age: Any = Choice((0.0, 1.0, 2.0, 3.0, 4.0, 5.0))
    perishability: float = 0.1
    hop_efficiency: float = 0.9
    hops: Any = Choice((0, 1, 2))
    min_demand: Any = Uniform(1.0, 3.0)
    max_demand: Any = Uniform(8.0, 12.0)
    max_supply: Any = Uniform(5.0, 10.0)
    quadratic_cost: Any = 0.01
    linear_cost: Any = 0.015
    relay_credit: float = 1.0
    last_reporter_credit: float = 0.4
    forward_cost: float = 0.2
    receipt_cost: float = 0.05

    def __post_init__(self) -> None:
        _set(self, "n_buyers", _count("n_buyers", self.n_buyers, minimum=1, maximum=MAX_ROBOTS))
        _set(self, "n_sellers", _count("n_sellers", self.n_sellers, minimum=1, maximum=MAX_ROBOTS))
        _set(self, "n_relays", _count("n_relays", self.n_relays, maximum=MAX_ROBOTS))
        for name in _BUYER_FIELDS:
            _set(self, name, _parse_agent_value(name, getattr(self, name), self.n_buyers))
        for name in _SELLER_FIELDS:
            _set(self, name, _parse_agent_value(name, getattr(self, name), self.n_sellers))
        _set(self, "hops", _parse_hops(self.hops, self.n_buyers, self.n_sellers))
        for name in _SCALAR_FIELDS:
            _set(self, name, _number(name, getattr(self, name)))
        self.validate()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataMarketScenario:
        """Build a scenario from a mapping such as a YAML section, rejecting unknown keys.

        Raises:
            ValueError: For an unknown key (the message lists the valid keys) or an invalid
                value.
        """
        known = [spec.name for spec in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown data market scenario keys {unknown}; valid keys are {known}")
        return cls(**dict(values))

    def validate(self) -> None:
        """Check every value's bounds and that the demand floors can be met.

        The floors are checked with a sufficient condition: every buyer must be able to
        receive the sum of all floors, sum_k c_k^min <= sum_j rho^hops_ij d_j^max, in the worst
        case of the draws (largest floors, smallest supply caps, most hops). Then a
        proportional split of every seller's supply meets all floors at once.

        Raises:
            ValueError: Naming the field, the value and the fix.
        """
        _check_range("willingness", self.willingness, low=0.0, low_open=True, high=MAX_COINS)
        _check_range("quality", self.quality, low=0.0, low_open=True, high=1.0)
        _check_range("age", self.age, low=0.0)
        _check_range("perishability", self.perishability, low=0.0)
        _check_range("hop_efficiency", self.hop_efficiency, low=0.0, low_open=True, high=1.0)
        _check_range("min_demand", self.min_demand, low=0.0)
        _check_range("max_demand", self.max_demand, low=0.0, low_open=True)
        _check_range("max_supply", self.max_supply, low=0.0, low_open=True)
        _check_range("quadratic_cost", self.quadratic_cost, low=0.0, high=MAX_COINS)
        _check_range("linear_cost", self.linear_cost, low=0.0, high=MAX_COINS)
        _check_range("relay_credit", self.relay_credit, high=MAX_COINS)
        _check_range("last_reporter_credit", self.last_reporter_credit, low=0.0, high=MAX_COINS)
        _check_range("forward_cost", self.forward_cost, low=0.0, high=MAX_COINS)
        _check_range("receipt_cost", self.receipt_cost, low=0.0, high=MAX_COINS)
        if not self.relay_credit > self.last_reporter_credit:
            raise ValueError(
                f"invalid value for 'relay_credit': Sprite needs alpha > beta, got "
                f"relay_credit={self.relay_credit} and last_reporter_credit="
                f"{self.last_reporter_credit}; raise relay_credit or lower last_reporter_credit"
            )

        hop_low, hop_high = _hop_bounds(self.hops)
        if hop_low < 0:
            raise ValueError(f"invalid value for 'hops': hop counts must be >= 0, got {self.hops}")
        if hop_high > self.n_relays:
            raise ValueError(
                f"invalid value for 'hops': a path of {hop_high} relay hops needs at least "
                f"{hop_high} relays, but n_relays={self.n_relays}; raise n_relays or lower hops"
            )

        floors = _upper_per_agent(self.min_demand, self.n_buyers)
        caps = _lower_per_agent(self.max_demand, self.n_buyers)
        if np.any(floors > caps):
            buyer = int(np.argmax(floors > caps))
            raise ValueError(
                f"invalid value for 'max_demand': buyer {buyer} can draw min_demand "
                f"{floors[buyer]} above max_demand {caps[buyer]} (min_demand={self.min_demand}, "
                f"max_demand={self.max_demand}); make every max_demand at least the largest "
                "min_demand"
            )
        supply = _lower_per_agent(self.max_supply, self.n_sellers)
        reachable = self.hop_efficiency**hop_high * supply.sum()
        if floors.sum() > reachable:
            raise ValueError(
                f"invalid value for 'min_demand': the demand floors can sum to {floors.sum():.6g} "
                f"data units, but a buyer {hop_high} relay hops from every seller receives at "
                f"most {reachable:.6g} (hop_efficiency^{hop_high} times the smallest total "
                "max_supply); lower min_demand, raise max_supply or use fewer hops"
            )

    def sample(self, rng: np.random.Generator, batch_size: int = 1) -> DataMarket:
        """Draw the parameters of ``batch_size`` independent episodes.

        Values are drawn in a fixed order (willingness, quality, age, min_demand, max_demand,
        max_supply, quadratic_cost, linear_cost, hops, relay paths), so the same Generator
        state gives the same market.

        Args:
            rng: The env's numpy Generator.
            batch_size: Number of instances B, >= 1.

        Returns:
            The sampled market, arrays of leading axis B.

        Raises:
            ValueError: If ``batch_size`` < 1.
        """
        batch = _count("batch_size", batch_size, minimum=1)
        return self._build(self._draw_all(rng, batch))

    def sample_instances(self, generators: Sequence[np.random.Generator]) -> DataMarket:
        """Draw one instance per Generator, each exactly as ``sample(generator, 1)`` would.

        A vector env gives instance b its own Generator (seeded from ``SeedSequence(s)``'s
        b-th child), so that instance b matches a single env reset with that seed. Each
        instance makes the draw calls of ``sample(generator, 1)`` in a Python loop, once per
        episode. Stacking, the relay paths and validation then run once for the whole batch.

        Raises:
            ValueError: If ``generators`` is empty.
        """
        if len(generators) == 0:
            raise ValueError("sample_instances needs at least one Generator, got none")
        parts = [self._draw_all(generator, 1) for generator in generators]
        draws = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return self._build(draws)

    def _draw_all(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
        """Make every draw of ``batch`` instances from ``rng``, in the order of :meth:`sample`.

        Returns the per-agent values, the hop counts and the random keys that order each
        path's relays, all with leading axis ``batch``.
        """
        buyers, sellers = self.n_buyers, self.n_sellers
        draws = {
            name: _draw(getattr(self, name), rng, (batch, buyers)) for name in _BUYER_FIELDS
        } | {name: _draw(getattr(self, name), rng, (batch, sellers)) for name in _SELLER_FIELDS}
        draws["hops"] = _draw_hops(self.hops, rng, (batch, buyers, sellers))
        draws["relay_keys"] = _draw_relay_keys(rng, draws["hops"], self.n_relays, self._max_hops)
        return draws

    @property
    def _max_hops(self) -> int:
        return int(_hop_bounds(self.hops)[1])

    def _build(self, draws: Mapping[str, np.ndarray]) -> DataMarket:
        """Assemble and validate the market of the draws of :meth:`_draw_all`."""
        hops = draws["hops"]
        batch = hops.shape[0]
        relay_paths = _relay_paths_from_keys(draws["relay_keys"], hops, self._max_hops)
        # A drawn min_demand never exceeds a drawn max_demand, because validate() compares the
        # largest floor with the smallest cap of every buyer.
        return DataMarket(
            willingness=draws["willingness"],
            quality=draws["quality"],
            age=draws["age"],
            perishability=np.full(batch, self.perishability),
            hop_efficiency=np.full(batch, self.hop_efficiency),
            hops=hops,
            relay_paths=relay_paths,
            min_demand=draws["min_demand"],
            max_demand=draws["max_demand"],
            max_supply=draws["max_supply"],
            quadratic_cost=draws["quadratic_cost"],
            linear_cost=draws["linear_cost"],
            n_relays=self.n_relays,
            relay_credit=self.relay_credit,
            last_reporter_credit=self.last_reporter_credit,
            forward_cost=self.forward_cost,
            receipt_cost=self.receipt_cost,
        )


@dataclass(frozen=True)
class DataMarket:
    """Parameters of B instances of the data market, as drawn for one episode.

    Build it with :meth:`DataMarketScenario.sample` or :meth:`from_values`, which both validate
    it.

    Attributes:
        willingness: v (coins), (B, I), > 0.
        quality: q, (B, J), in (0, 1].
        age: a (rounds), (B, J), >= 0.
        perishability: delta (per round), (B,), >= 0.
        hop_efficiency: rho, (B,), in (0, 1].
        hops: hops_ij, (B, I, J), int64 >= 0.
        relay_paths: Relay indices on the path from seller j to buyer i in path order (from
            the seller), -1 past the path's end, (B, I, J, H) int64 with H the largest hop
            count.
        min_demand: c^min (data units), (B, I), >= 0.
        max_demand: c^max (data units), (B, I), >= c^min and > 0.
        max_supply: d^max (data units), (B, J), > 0.
        quadratic_cost: l1 (coins per data unit squared), (B, J), >= 0.
        linear_cost: l2 (coins per data unit), (B, J), >= 0.
        n_relays: Number of relays R.
        relay_credit: Sprite's alpha (coins per message).
        last_reporter_credit: Sprite's beta (coins per message).
        forward_cost: c_fwd (coins per message).
        receipt_cost: c_rcpt (coins per message).
    """

    willingness: np.ndarray
    quality: np.ndarray
    age: np.ndarray
    perishability: np.ndarray
    hop_efficiency: np.ndarray
    hops: np.ndarray
    relay_paths: np.ndarray
    min_demand: np.ndarray
    max_demand: np.ndarray
    max_supply: np.ndarray
    quadratic_cost: np.ndarray
    linear_cost: np.ndarray
    n_relays: int
    relay_credit: float
    last_reporter_credit: float
    forward_cost: float
    receipt_cost: float

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_values(
        cls,
        willingness: Any,
        value_factors: Any = None,
        *,
        quality: Any = None,
        age: Any = 0.0,
        perishability: Any = 0.0,
        hop_efficiency: Any = 0.9,
        hops: Any = 1,
        min_demand: Any = 0.0,
        max_demand: Any,
        max_supply: Any,
        quadratic_cost: Any = 0.01,
        linear_cost: Any = 0.015,
        relay_paths: Any = None,
        n_relays: int | None = None,
        relay_credit: float = 1.0,
        last_reporter_credit: float = 0.4,
        forward_cost: float = 0.2,
        receipt_cost: float = 0.05,
    ) -> DataMarket:
        """Build a market from arrays or lists, broadcasting them to the batch.

        ``willingness`` fixes the shape: (I,) for one instance or (B, I). Per-seller values are
        (J,) or (B, J), per-pair values (I, J) or (B, I, J), per-instance values scalars or
        (B,). Give either ``value_factors`` (q exp(-delta a), taken as the quality of fresh data
        that does not perish) or ``quality`` with ``age`` and ``perishability``. Without
        ``relay_paths``, the path from seller j to buyer i runs through relays 0, 1, ...,
        hops_ij - 1.

        Raises:
            ValueError: For inconsistent shapes or values outside their bounds; the message
                names the value.
        """
        willingness = np.atleast_2d(np.asarray(willingness, dtype=np.float64))
        batch, buyers = willingness.shape
        if (value_factors is None) == (quality is None):
            raise ValueError("give exactly one of value_factors and quality")
        if value_factors is not None:
            quality, age, perishability = value_factors, 0.0, 0.0
        quality = np.asarray(quality, dtype=np.float64)
        sellers = quality.shape[-1] if quality.ndim else _infer_sellers(max_supply)

        def per_seller(name: str, value: Any) -> np.ndarray:
            return _broadcast(name, value, (batch, sellers))

        def per_buyer(name: str, value: Any) -> np.ndarray:
            return _broadcast(name, value, (batch, buyers))

        hops_array = _broadcast("hops", hops, (batch, buyers, sellers)).astype(np.int64)
        if np.any(hops_array != _broadcast("hops", hops, (batch, buyers, sellers))):
            raise ValueError(f"invalid value for 'hops': hop counts must be integers, got {hops}")
        max_hops = int(hops_array.max(initial=0))
        if relay_paths is None:
            positions = np.arange(max_hops)
            relay_paths = np.where(positions < hops_array[..., None], positions, -1)
        relay_paths = np.broadcast_to(
            np.asarray(relay_paths, dtype=np.int64), (batch, buyers, sellers, max_hops)
        ).copy()
        return cls(
            willingness=willingness,
            quality=per_seller("quality", quality),
            age=per_seller("age", age),
            perishability=_broadcast("perishability", perishability, (batch,)),
            hop_efficiency=_broadcast("hop_efficiency", hop_efficiency, (batch,)),
            hops=hops_array,
            relay_paths=relay_paths,
            min_demand=per_buyer("min_demand", min_demand),
            max_demand=per_buyer("max_demand", max_demand),
            max_supply=per_seller("max_supply", max_supply),
            quadratic_cost=per_seller("quadratic_cost", quadratic_cost),
            linear_cost=per_seller("linear_cost", linear_cost),
            n_relays=max_hops if n_relays is None else n_relays,
            relay_credit=relay_credit,
            last_reporter_credit=last_reporter_credit,
            forward_cost=forward_cost,
            receipt_cost=receipt_cost,
        )

    @property
    def batch_size(self) -> int:
        """Number of instances B."""
        return int(self.willingness.shape[0])

    @property
    def n_buyers(self) -> int:
        """Number of buyers I."""
        return int(self.willingness.shape[1])

    @property
    def n_sellers(self) -> int:
        """Number of sellers J."""
        return int(self.quality.shape[1])

    # The two derived arrays are computed once per market and read-only, because the env reads
    # them several times a round.
    @functools.cached_property
    def value_factors(self) -> np.ndarray:
        """f_j = q_j exp(-delta a_j), (B, J), read-only."""
        return _read_only(model.value_factors(self.quality, self.age, self.perishability))

    @functools.cached_property
    def efficiency(self) -> np.ndarray:
        """rho_ij = rho^hops_ij, the fraction of what seller j sends that reaches buyer i, (B, I, J),
        read-only."""
        return _read_only(model.path_efficiency(self.hop_efficiency, self.hops))

    def aged(self, rounds: int) -> DataMarket:
        """Return the market with every seller's data ``rounds`` rounds older.

        Aging keeps every bound that :meth:`validate` checks (ages only grow), so the copy is
        not validated again. The env ages its market every round.

        Raises:
            ValueError: If ``rounds`` is negative.
        """
        if rounds < 0:
            raise ValueError(f"invalid rounds {rounds}: expected an int >= 0")
        if rounds == 0:
            return self
        older = object.__new__(DataMarket)
        for spec in dataclasses.fields(self):
            object.__setattr__(older, spec.name, getattr(self, spec.name))
        object.__setattr__(older, "age", self.age + rounds)
        return older

    def validate(self) -> None:
        """Check shapes and bounds; each error names the value and the fix.

        The demand floors are checked per instance with the sufficient condition of
        :meth:`DataMarketScenario.validate`: sum_k c_k^min <= sum_j rho_ij d_j^max for every
        buyer i.
        """
        batch, buyers = self.willingness.shape
        sellers = self.quality.shape[-1]
        shapes = {
            "willingness": (batch, buyers),
            "quality": (batch, sellers),
            "age": (batch, sellers),
            "perishability": (batch,),
            "hop_efficiency": (batch,),
            "hops": (batch, buyers, sellers),
            "min_demand": (batch, buyers),
            "max_demand": (batch, buyers),
            "max_supply": (batch, sellers),
            "quadratic_cost": (batch, sellers),
            "linear_cost": (batch, sellers),
        }
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape:
                raise ValueError(
                    f"invalid shape for '{name}': expected {shape} (B={batch}, I={buyers}, "
                    f"J={sellers}), got {value.shape}"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"invalid value for '{name}': every value must be finite")
        if batch < 1 or buyers < 1 or sellers < 1:
            raise ValueError(
                f"a market needs B >= 1 instances, I >= 1 buyers and J >= 1 sellers, got "
                f"B={batch}, I={buyers}, J={sellers}"
            )
        _check_array("willingness", self.willingness, low=0.0, low_open=True)
        _check_array("quality", self.quality, low=0.0, low_open=True, high=1.0)
        _check_array("age", self.age, low=0.0)
        _check_array("perishability", self.perishability, low=0.0)
        _check_array("hop_efficiency", self.hop_efficiency, low=0.0, low_open=True, high=1.0)
        _check_array("hops", self.hops, low=0.0)
        _check_array("min_demand", self.min_demand, low=0.0)
        _check_array("max_demand", self.max_demand, low=0.0, low_open=True)
        _check_array("max_supply", self.max_supply, low=0.0, low_open=True)
        _check_array("quadratic_cost", self.quadratic_cost, low=0.0)
        _check_array("linear_cost", self.linear_cost, low=0.0)
        for name in _CREDIT_FIELDS:
            _number(name, getattr(self, name))
        _check_range("last_reporter_credit", self.last_reporter_credit, low=0.0)
        _check_range("forward_cost", self.forward_cost, low=0.0)
        _check_range("receipt_cost", self.receipt_cost, low=0.0)
        if not self.relay_credit > self.last_reporter_credit:
            raise ValueError(
                f"invalid value for 'relay_credit': Sprite needs alpha > beta, got "
                f"relay_credit={self.relay_credit} and last_reporter_credit="
                f"{self.last_reporter_credit}; raise relay_credit or lower last_reporter_credit"
            )
        if np.any(self.min_demand > self.max_demand):
            raise ValueError(
                "invalid value for 'max_demand': every max_demand must be at least the "
                f"buyer's min_demand, got min_demand={self.min_demand} and "
                f"max_demand={self.max_demand}; raise max_demand or lower min_demand"
            )
        max_hops = int(self.hops.max(initial=0))
        shape = self.relay_paths.shape
        # Paths may be padded past the longest drawn path (to the scenario's largest hop
        # count), so that every episode of a scenario has the same shape.
        if len(shape) != 4 or shape[:3] != (batch, buyers, sellers) or shape[3] < max_hops:
            raise ValueError(
                f"invalid shape for 'relay_paths': expected {(batch, buyers, sellers)} followed "
                f"by at least {max_hops} (one relay index per hop of the longest path), got "
                f"{shape}"
            )
        on_path = np.arange(shape[3]) < self.hops[..., None]
        if np.any(self.relay_paths[on_path] < 0) or np.any(
            self.relay_paths[on_path] >= self.n_relays
        ):
            raise ValueError(
                f"invalid value for 'relay_paths': every hop needs a relay index in "
                f"[0, n_relays={self.n_relays}); raise n_relays or fix the paths"
            )
        reachable = (self.efficiency * self.max_supply[:, None, :]).sum(axis=2)
        floors = self.min_demand.sum(axis=1, keepdims=True)
        if np.any(floors > reachable):
            instance, buyer = np.argwhere(floors > reachable)[0]
            raise ValueError(
                f"invalid value for 'min_demand': in instance {instance} the demand floors sum "
                f"to {floors[instance, 0]:.6g} data units, but buyer {buyer} receives at most "
                f"{reachable[instance, buyer]:.6g} (sum over sellers of rho_ij d_j^max); lower "
                "min_demand, raise max_supply or use fewer hops"
            )

    def instance(self, index: int) -> DataMarket:
        """Return one instance as a batch of one."""
        part = slice(index, index + 1)
        arrays = {
            spec.name: getattr(self, spec.name)[part]
            for spec in dataclasses.fields(self)
            if isinstance(getattr(self, spec.name), np.ndarray)
        }
        return dataclasses.replace(self, **arrays)


def stack_markets(markets: Sequence[DataMarket]) -> DataMarket:
    """Join markets of the same shape and credits into one batch, in order.

    Raises:
        ValueError: If the markets differ in their numbers of agents, relays or credits.
    """
    first = markets[0]
    for market in markets[1:]:
        same_shape = market.relay_paths.shape[1:] == first.relay_paths.shape[1:]
        same_scalars = all(
            getattr(market, name) == getattr(first, name) for name in ("n_relays", *_CREDIT_FIELDS)
        )
        if not (same_shape and same_scalars):
            raise ValueError(
                "cannot stack markets with different numbers of agents, relays or hops, or "
                "different credits; sample them from one scenario"
            )
    arrays: dict[str, Any] = {
        spec.name: np.concatenate([getattr(market, spec.name) for market in markets])
        for spec in dataclasses.fields(DataMarket)
        if isinstance(getattr(first, spec.name), np.ndarray)
    }
    return dataclasses.replace(first, **arrays)


# --------------------------------------------------------------------------------------------
# Presets.


def kang2017_market() -> DataMarketScenario:
    """Build the electricity market of Kang et al. (IEEE TII 13(6), 2017) mapped onto data.

    Kang et al.'s plug-in hybrid vehicles trade homogeneous, fresh goods: value factor 0.8 for
    every seller (their charging efficiency), one hop with rho = 0.9 (their transmission
    efficiency), willingness v_i = tau / s_i with tau = 0.5 and state of charge s_i drawn from
    {1, ..., 5}, l1 = 0.01, l2 = 0.015, c_i^min from {5, ..., 10}, c_i^max from {12, ..., 18},
    d_j^max from {10, ..., 20}, 35 buyers and 45 sellers.

    NOTE: these settings follow public reimplementations of the paper and were not checked
    against the paper's own table. The reimplementations also subtract c_i^min inside the
    logarithm of the utility, which this model does not. The relay settings (5 relays, one
    relay per path, the default Sprite credits) are this project's, because the paper has no
    relays.
    """
    tau = 0.5
    return DataMarketScenario(
        n_buyers=35,
        n_sellers=45,
        n_relays=5,
        willingness=Choice(tuple(tau / charge for charge in (1.0, 2.0, 3.0, 4.0, 5.0))),
        quality=0.8,
        age=0.0,
        perishability=0.0,
        hop_efficiency=0.9,
        hops=1,
        min_demand=Choice(tuple(float(value) for value in range(5, 11))),
        max_demand=Choice(tuple(float(value) for value in range(12, 19))),
        max_supply=Choice(tuple(float(value) for value in range(10, 21))),
        quadratic_cost=0.01,
        linear_cost=0.015,
    )


def small_market() -> DataMarketScenario:
    """Build the small heterogeneous market: 6 buyers, 8 sellers, 0 to 2 relay hops.

    Buyers' willingness is drawn from U[2, 6] coins. Value factors q exp(-delta a) lie in
    [0.30, 1], from quality U[0.5, 1], age {0, ..., 5} rounds and delta = 0.1 per round. Every
    pair has 0, 1 or 2 relay hops at rho = 0.9. These are the scenario's defaults.
    """
    return DataMarketScenario()


PRESETS: dict[str, Callable[[], DataMarketScenario]] = {
    "kang2017": kang2017_market,
    "small": small_market,
}


def preset(name: str) -> DataMarketScenario:
    """Build a preset scenario by name.

    Raises:
        KeyError: For an unknown name. The message lists the presets.
    """
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(
            f"unknown data market preset {name!r}; presets are {sorted(PRESETS)}"
        ) from None


# --------------------------------------------------------------------------------------------

_BUYER_FIELDS = ("willingness", "min_demand", "max_demand")
_SELLER_FIELDS = ("quality", "age", "max_supply", "quadratic_cost", "linear_cost")
_CREDIT_FIELDS = ("relay_credit", "last_reporter_credit", "forward_cost", "receipt_cost")
_SCALAR_FIELDS = ("perishability", "hop_efficiency", *_CREDIT_FIELDS)
_VALUE_FORMS = (
    "a number, {low: a, high: b}, {choices: [x, y, ...]} or a list of one number per agent"
)


def _set(scenario: DataMarketScenario, name: str, value: Any) -> None:
    # The dataclass is frozen, so normalized values are written past its __setattr__.
    object.__setattr__(scenario, name, value)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _number(name: str, value: Any) -> float:
    # to_float turns a Python int beyond the float range into inf, rejected here.
    if not _is_number(value) or not np.isfinite(to_float(value)):
        raise ValueError(
            f"invalid value for '{name}': expected a finite number, got {describe_value(value)}"
        )
    return float(value)


def _count(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"invalid value for '{name}': expected an int >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(
            f"invalid value for '{name}': expected an int in [{minimum}, {maximum}], got "
            f"{describe_value(value)}"
        )
    return int(value)


def _parse_agent_value(name: str, value: Any, count: int) -> AgentValue:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Uniform):
        value = {"low": value.low, "high": value.high}
    if isinstance(value, Choice):
        value = {"choices": list(value.values)}
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"low", "high"}:
            low, high = _number(name, value["low"]), _number(name, value["high"])
            if low > high:
                raise ValueError(
                    f"invalid range for '{name}': low={low} is above high={high}; swap them"
                )
            return Uniform(low, high)
        if keys == {"choices"}:
            choices = value["choices"]
            if (
                isinstance(choices, (str, bytes))
                or not isinstance(choices, Sequence)
                or not choices
            ):
                raise ValueError(
                    f"invalid value for '{name}': 'choices' needs a non-empty list of numbers, "
                    f"got {choices!r}"
                )
            return Choice(tuple(_number(name, choice) for choice in choices))
        raise ValueError(
            f"invalid value for '{name}': a mapping needs the keys 'low' and 'high' or the key "
            f"'choices', got {sorted(map(str, keys))}"
        )
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != count:
            raise ValueError(
                f"invalid value for '{name}': a list needs one number per agent ({count}), got "
                f"{len(value)} numbers; give {count} numbers or a single number"
            )
        return tuple(_number(name, item) for item in value)
    if not _is_number(value):
        raise ValueError(f"invalid value for '{name}': expected {_VALUE_FORMS}, got {value!r}")
    return _number(name, value)


def _parse_hops(value: Any, buyers: int, sellers: int) -> HopValue:
    def integer(item: Any) -> int:
        if not _is_number(item) or to_float(item) != int(item):
            raise ValueError(f"invalid value for 'hops': hop counts are integers, got {item!r}")
        return int(item)

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Choice):
        value = {"choices": list(value.values)}
    if isinstance(value, Mapping):
        choices = value.get("choices") if set(value) == {"choices"} else None
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise ValueError(
                f"invalid value for 'hops': a mapping needs the single key 'choices' with a "
                f"non-empty list of integers, got {value!r}"
            )
        return Choice(tuple(integer(choice) for choice in choices))
    if isinstance(value, Sequence) and not isinstance(value, str):
        rows = [row for row in value if isinstance(row, Sequence) and len(row) == sellers]
        if len(value) != buyers or len(rows) != buyers:
            raise ValueError(
                f"invalid value for 'hops': a matrix needs {buyers} rows (one per buyer) of "
                f"{sellers} integers (one per seller), got {value!r}"
            )
        return tuple(tuple(integer(item) for item in row) for row in rows)
    return integer(value)


def _bounds(value: Any) -> tuple[float, float]:
    if isinstance(value, Uniform):
        return value.low, value.high
    if isinstance(value, Choice):
        return min(value.values), max(value.values)
    if isinstance(value, tuple):
        flat = np.asarray(value, dtype=np.float64)
        return float(flat.min()), float(flat.max())
    return float(value), float(value)


def _hop_bounds(value: HopValue) -> tuple[int, int]:
    low, high = _bounds(value)
    return int(low), int(high)


def _upper_per_agent(value: AgentValue, count: int) -> np.ndarray:
    if isinstance(value, tuple):
        return np.asarray(value, dtype=np.float64)
    return np.full(count, _bounds(value)[1])


def _lower_per_agent(value: AgentValue, count: int) -> np.ndarray:
    if isinstance(value, tuple):
        return np.asarray(value, dtype=np.float64)
    return np.full(count, _bounds(value)[0])


def _check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
) -> None:
    smallest, largest = _bounds(value)
    if low is not None and (smallest < low or (low_open and smallest == low)):
        relation = "above" if low_open else "at least"
        raise ValueError(
            f"invalid value for '{name}': every value must be {relation} {low}, got {value}; "
            f"raise its smallest value"
        )
    if high is not None and largest > high:
        raise ValueError(
            f"invalid value for '{name}': every value must be at most {high}, got {value}; "
            f"lower its largest value"
        )


def _check_array(
    name: str,
    value: np.ndarray,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
) -> None:
    if low is not None and np.any(value < low if not low_open else value <= low):
        relation = "above" if low_open else "at least"
        raise ValueError(
            f"invalid value for '{name}': every value must be {relation} {low}, got "
            f"{float(np.min(value))}"
        )
    if high is not None and np.any(value > high):
        raise ValueError(
            f"invalid value for '{name}': every value must be at most {high}, got "
            f"{float(np.max(value))}"
        )


def _draw(value: AgentValue, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(value, Uniform):
        return rng.uniform(value.low, value.high, shape)
    if isinstance(value, Choice):
        return rng.choice(np.asarray(value.values, dtype=np.float64), size=shape)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()


def _draw_hops(value: HopValue, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(value, Choice):
        return rng.choice(np.asarray(value.values, dtype=np.int64), size=shape)
    return np.broadcast_to(np.asarray(value, dtype=np.int64), shape).copy()


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _draw_relay_keys(
    rng: np.random.Generator, hops: np.ndarray, n_relays: int, max_hops: int
) -> np.ndarray:
    """Draw the random keys whose order picks every path's relays, (B, I, J, R) or (B, I, J, 0)."""
    if max_hops == 0:
        return np.zeros((*hops.shape, 0))
    return rng.random((*hops.shape, n_relays))


def _relay_paths_from_keys(keys: np.ndarray, hops: np.ndarray, max_hops: int) -> np.ndarray:
    """Pick distinct relays for every path, in path order, -1 past each path's end.

    A path takes the first ``max_hops`` relays of the random permutation that sorting its keys
    gives. Each path's keys are sorted on their own, so a batch gives every instance the paths
    it gets alone.
    """
    if max_hops == 0:
        return np.zeros((*hops.shape, 0), dtype=np.int64)
    order = np.argsort(keys, axis=-1)[..., :max_hops]
    return np.where(np.arange(max_hops) < hops[..., None], order, -1).astype(np.int64)


def _broadcast(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(array, shape).copy()
    except ValueError:
        raise ValueError(
            f"invalid shape for '{name}': expected a value broadcastable to {shape}, got "
            f"shape {array.shape}"
        ) from None


def _infer_sellers(max_supply: Any) -> int:
    shape = np.shape(max_supply)
    if not shape:
        raise ValueError(
            "cannot infer the number of sellers: give quality, value_factors or max_supply as "
            "an array with one value per seller"
        )
    return int(shape[-1])
