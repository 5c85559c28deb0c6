"""Hypothesis strategies of every registered market's constructor arguments.

Each argument has a pair of strategies: valid values from the range its docs page and
constructor document (docs/lending.md, docs/offloading.md, docs/data_market.md), edge values
included, and invalid values tagged with the names their error must contain.
:func:`market_arguments` draws a whole set of keyword arguments with at most one invalid value.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ledgerzoo.envs.data_market.scenario import DataMarketScenario
from ledgerzoo.envs.offloading.scenario import OffloadingScenario
from ledgerzoo.ledger.core import LedgerConfig
from ledgerzoo.ledger.tangle import TangleConfig
from tests.hardening.fuzzing import constructor_parameters

#: Magnitudes that the random draws stay between, apart from 0 and the documented ends of each
#: range. Values beyond them (1e-300, 1e300) overflow the markets' arithmetic or their float32
#: observations, a gap that test_extreme_values records argument by argument.
SMALLEST = 1e-6
LARGEST = 1e9
UNBOUNDED = LARGEST

#: Largest agent counts drawn, to keep the reference solvers fast.
MAX_AGENTS = 4


@dataclass(frozen=True)
class Invalid:
    """An argument value outside its documented range.

    Attributes:
        value: The value passed to the constructor.
        names: Words the error message must contain one of: the argument, or the field of a
            scenario or ledger mapping that is wrong.
    """

    value: Any
    names: tuple[str, ...]


Context = dict[str, Any]
Strategy = Callable[[Context], st.SearchStrategy]


# ------------------------------------------------------------------------------------------------
# Numbers and scenario values


def numbers(
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    edges: tuple[float, ...] = (),
) -> st.SearchStrategy:
    """Floats in the range from low to high (ends excluded where open): 0 where allowed, the
    closed ends and ``edges`` often, and otherwise magnitudes between ``SMALLEST`` and
    ``LARGEST``."""
    parts = []
    for smallest, largest in ((SMALLEST, LARGEST), (-LARGEST, -SMALLEST)):
        start, stop = max(low, smallest), min(high, largest)
        if start < stop:
            parts.append(
                st.floats(
                    start,
                    stop,
                    exclude_min=low_open and start == low,
                    exclude_max=high_open and stop == high,
                )
            )
    ends = [value for value, open_ in ((low, low_open), (high, high_open)) if not open_]
    special = [
        value for value in (0.0, *ends, *edges) if _inside(value, low, high, low_open, high_open)
    ]
    if special:
        parts.append(st.sampled_from(sorted(set(special))))
    return st.one_of(*parts)


def _inside(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def outside_numbers(
    low: float | None, high: float | None, *, low_open: bool, high_open: bool
) -> list[Any]:
    """Numbers and non-numbers that a numeric argument with these bounds must reject."""
    values: list[Any] = [math.nan, math.inf, -math.inf, "1.0", True, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    if low is not None:
        values.append(low if low_open else low - max(1.0, abs(low)) * 1e-3)
        values.append(-1e300 if low > -1e300 else math.nan)
    if high is not None:
        values.append(high if high_open else high + max(1.0, abs(high)) * 1e-3)
        values.append(1e300 if high < 1e300 else math.nan)
    return values


def scenario_values(values: st.SearchStrategy, count: int) -> st.SearchStrategy:
    """A scenario value of ``count`` agents: a number, a {low, high} range, a list or an array."""
    ranges = st.tuples(values, values).map(lambda pair: {"low": min(pair), "high": max(pair)})
    lists = st.lists(values, min_size=count, max_size=count)
    return st.one_of(values, ranges, lists, lists.map(np.array))


def outside_scenario_values(name: str, bad: list[Any], count: int, good: float) -> list[Invalid]:
    """Invalid scenario values: bad numbers in each form, swapped ends, wrong keys and lengths."""
    invalid = [Invalid(value, (name,)) for value in bad]
    invalid += [Invalid({"low": good, "high": value}, (name,)) for value in bad[:4]]
    invalid += [Invalid([good] * (count - 1) + [value], (name,)) for value in bad[:3]]
    invalid += [
        Invalid({"low": good * 2 + 1, "high": good}, (name,)),
        Invalid({"low": good}, (name,)),
        Invalid({"low": good, "high": good, "step": 1}, (name,)),
        Invalid([good] * (count + 1), (name,)),
        Invalid(np.full((count, 2), good), (name,)),
        Invalid("uniform", (name,)),
    ]
    return invalid


def count_argument(name: str, high: int = MAX_AGENTS) -> tuple[Strategy, Strategy]:
    """Strategies of an agent count: valid ints in [1, high], invalid other values."""
    return (
        lambda context: st.integers(1, high),
        lambda context: st.sampled_from(
            [Invalid(value, (name,)) for value in (0, -1, 2.0, True, "3", None)]
        ),
    )


def choice_argument(
    name: str, choices: tuple[Any, ...], wrong: tuple[Any, ...]
) -> tuple[Strategy, Strategy]:
    """Strategies of an argument that takes one of a few values."""
    return (
        lambda context: st.sampled_from(choices),
        lambda context: st.sampled_from([Invalid(value, (name,)) for value in wrong]),
    )


def flag_argument(name: str, allow_none: bool = False) -> tuple[Strategy, Strategy]:
    """Strategies of a True/False argument (or None where that means "decide for me")."""
    choices = (True, False, None) if allow_none else (True, False)
    wrong: tuple[Any, ...] = ("yes", 1, 0.0) if allow_none else ("yes", 1, 0.0, None)
    return choice_argument(name, choices, wrong)


def number_argument(
    name: str,
    low: float | None,
    high: float | None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    edges: tuple[float, ...] = (),
    allow_none: bool = False,
) -> tuple[Strategy, Strategy]:
    """Strategies of a plain numeric argument with documented bounds.

    An open-ended range is drawn up to ``UNBOUNDED`` in magnitude.
    """
    valid = numbers(
        -UNBOUNDED if low is None else low,
        UNBOUNDED if high is None else high,
        low_open=low_open,
        high_open=high_open,
        edges=edges,
    )
    if allow_none:
        valid = st.one_of(st.none(), valid)
    bad = outside_numbers(low, high, low_open=low_open, high_open=high_open)
    if not allow_none:
        bad.append(None)
    return (
        lambda context: valid,
        lambda context: st.sampled_from([Invalid(value, (name,)) for value in bad]),
    )


def scenario_argument(
    name: str,
    count_key: str | None,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    edges: tuple[float, ...] = (),
    allow_none: bool = True,
    bounds: Callable[[Context], tuple[float, float]] | None = None,
) -> tuple[Strategy, Strategy]:
    """Strategies of a scenario value (number, range or list per agent) with documented bounds.

    ``bounds`` narrows [low, high] by arguments drawn before (min_rate below max_rate).
    """

    def agents(context: Context) -> int:
        count = context.get(count_key) if count_key else 1
        # An invalid count (drawn to test its own error) leaves the lists at two agents.
        valid_count = isinstance(count, int) and not isinstance(count, bool) and count >= 1
        return count if valid_count else 2

    def valid(context: Context) -> st.SearchStrategy:
        lowest, highest = bounds(context) if bounds else (low, high)
        values = numbers(lowest, highest, low_open=low_open, high_open=high_open, edges=edges)
        drawn = scenario_values(values, agents(context))
        return st.one_of(st.none(), drawn) if allow_none else drawn

    def invalid(context: Context) -> st.SearchStrategy:
        lowest, highest = bounds(context) if bounds else (low, high)
        bad = outside_numbers(lowest, highest, low_open=low_open, high_open=high_open)
        good = lowest if not low_open else (lowest + highest) / 2
        return st.sampled_from(outside_scenario_values(name, bad, max(agents(context), 2), good))

    return valid, invalid


# ------------------------------------------------------------------------------------------------
# Arguments shared by several markets


def ledgers(context: Context) -> st.SearchStrategy:
    chain = st.fixed_dictionaries(
        {"mode": st.just("chain")},
        optional={
            "block_interval": st.integers(1, 3),
            "block_capacity": st.sampled_from([1, 2, 1000, 10_000_000]),
            "confirmations": st.integers(0, 2),
            "queue_capacity": st.sampled_from([64, 4096]),
            "audit": st.booleans(),
        },
    )
    tangle = st.fixed_dictionaries(
        {"mode": st.just("tangle")},
        optional={
            "tangle": st.fixed_dictionaries(
                {},
                optional={
                    "alpha": numbers(0.0, 5.0),
                    "depth": st.integers(1, 6),
                    "confirmation_weight": st.integers(1, 6),
                    "milestone_interval": st.integers(1, 4),
                },
            )
        },
    )
    return st.one_of(st.sampled_from(["instant", "chain", "tangle"]), chain, tangle)


LEDGER_INVALID = [
    Invalid("blockchain", ("mode",)),
    Invalid({"mode": "chain", "block_interval": 0}, ("block_interval",)),
    Invalid({"mode": "chain", "block_interval": 10_000_001}, ("block_interval",)),
    Invalid({"mode": "chain", "block_interval": 1.5}, ("block_interval",)),
    Invalid({"mode": "chain", "confirmations": -1}, ("confirmations",)),
    Invalid({"mode": "chain", "block_capacity": 0}, ("block_capacity",)),
    Invalid({"mode": "chain", "queue_capacity": 0}, ("queue_capacity",)),
    Invalid({"mode": "chain", "blocks": 2}, ("blocks",)),
    Invalid({"mode": "chain", "audit": "yes"}, ("audit",)),
    Invalid({"mode": "tangle", "tangle": {"alpha": -1.0}}, ("alpha",)),
    Invalid({"mode": "tangle", "tangle": {"alpha": math.nan}}, ("alpha",)),
    Invalid({"mode": "tangle", "tangle": {"depth": 0}}, ("depth",)),
    Invalid({"mode": "tangle", "tangle": {"walk": 2}}, ("walk",)),
    Invalid({"mode": "tangle", "tangle": 5}, ("tangle",)),
    Invalid(5, ("ledger",)),
]

COMMON_ARGUMENTS: dict[str, tuple[Strategy, Strategy]] = {
    "max_cycles": (
        lambda context: st.integers(1, 3),
        lambda context: st.sampled_from(
            [Invalid(value, ("max_cycles",)) for value in (0, -5, 2.5, "3", True, None)]
        ),
    ),
    "reward_scale": number_argument(
        "reward_scale", 0.0, None, low_open=True, edges=(1e-6, 1.0, 1e6)
    ),
    "reference": flag_argument("reference"),
    "render_mode": choice_argument("render_mode", (None, "ansi"), ("video", 3, "ANSI")),
    "ledger": (ledgers, lambda context: st.sampled_from(LEDGER_INVALID)),
    "observe_ledger": flag_argument("observe_ledger", allow_none=True),
}


# ------------------------------------------------------------------------------------------------
# Lending markets (docs/lending.md: "Symbols, parameters and defaults" and "On the ledger")

LENDING_COINS = 1e15  # the ledger arguments' upper bound, coins


def _below_max_rate(default_max_rate: float) -> Callable[[Context], tuple[float, float]]:
    return lambda context: (1e-9, float(context.get("max_rate") or default_max_rate))


def _above_min_loan(context: Context) -> tuple[float, float]:
    return float(context.get("min_loan") or 0.0), 1e18


LENDING_ARGUMENTS: dict[str, tuple[Strategy, Strategy]] = {
    "n_lenders": count_argument("n_lenders"),
    "followers": choice_argument("followers", ("analytic", "learned"), ("leader", None, "")),
    "max_rate": number_argument("max_rate", 0.0, 1e3, low_open=True, edges=(1e-9, 0.3, 0.5)),
    "min_loan": number_argument("min_loan", 0.0, None, edges=(1.0, 1e9)),
    "loan_term": (
        lambda context: st.one_of(st.integers(1, 3), st.just(1_000_000)),
        lambda context: st.sampled_from(
            [Invalid(value, ("loan_term",)) for value in (0, 1_000_001, 1.5, True, "2", None)]
        ),
    ),
    "lender_budget": scenario_argument(
        "lender_budget", "n_lenders", 0.0, LENDING_COINS, edges=(1.0,)
    ),
    "borrower_balance": number_argument("borrower_balance", 0.0, LENDING_COINS, edges=()),
    "data_price": number_argument("data_price", 0.0, LENDING_COINS, edges=(1.0,)),
    "data_income": number_argument(
        "data_income", 0.0, LENDING_COINS, edges=(1.0,), allow_none=True
    ),
    "reward_type": choice_argument("reward_type", ("utility", "cashflow"), ("profit", None, 1)),
}

ONE_TO_ONE_ARGUMENTS: dict[str, tuple[Strategy, Strategy]] = {
    "willingness": scenario_argument(
        "willingness", "n_lenders", 0.0, 1e9, low_open=True, edges=(1.0, 5.0)
    ),
    "min_rate": scenario_argument(
        "min_rate", "n_lenders", 1e-9, 0.5, high_open=True, bounds=_below_max_rate(0.5)
    ),
    "max_loan": scenario_argument(
        "max_loan", "n_lenders", 0.0, 1e18, low_open=True, bounds=_above_min_loan
    ),
}

ONE_TO_MANY_ARGUMENTS: dict[str, tuple[Strategy, Strategy]] = {
    "pricing": choice_argument("pricing", ("uniform", "differentiated"), ("discriminating", None)),
    "min_rate": scenario_argument(
        "min_rate", "n_lenders", 1e-9, 0.3, high_open=True, bounds=_below_max_rate(0.3)
    ),
    "max_investment": scenario_argument(
        "max_investment", "n_lenders", 0.0, 1e12, low_open=True, edges=(10.0,)
    ),
    "reward": scenario_argument("reward", None, 0.0, 1e12, low_open=True, edges=(5.0,)),
    "weight": scenario_argument(
        "weight", None, 0.0, 1e12, low_open=True, edges=(1.0,), allow_none=False
    ),
    "valuation": scenario_argument(
        "valuation", None, 0.0, 1e12, low_open=True, edges=(30.0,), allow_none=False
    ),
    "target": scenario_argument("target", None, 0.0, 1e12, edges=(20.0,), allow_none=False),
    "failure_utility": number_argument("failure_utility", None, None, edges=(-50.0, 0.0)),
}


# ------------------------------------------------------------------------------------------------
# Offloading (docs/offloading.md: "Symbols, units and defaults" and the env's arguments)
#
# Each scenario field is drawn around its default, from 1e-3 to 1e3 times it, plus the
# documented lower end (0 where the field may be 0). Values near the float limits (1e300) are
# left to test_extreme_magnitudes, because they are a known gap.

OFFLOADING_POSITIVE = (
    "side",
    "radio_range",
    "edge_range",
    "device_link_rate",
    "access_link_rate",
    "backhaul_rate",
    "edge_cpu_speed",
    "cloud_cpu_speed",
    "time_weight",
)
OFFLOADING_NON_NEGATIVE = (
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
)
OFFLOADING_POSITIVE_RANGES = (
    "device_cpu_speed_range",
    "task_bits_range",
    "task_cycles_range",
    "delay_weight_range",
)
OFFLOADING_DEFAULTS = {
    "side": 200.0,
    "radio_range": 50.0,
    "edge_range": 70.0,
    "device_link_rate": 5e6,
    "access_link_rate": 20e6,
    "backhaul_rate": 50e6,
    "edge_cpu_speed": 10e9,
    "cloud_cpu_speed": 50e9,
    "time_weight": 1.0,
    "device_link_latency": 0.002,
    "access_link_latency": 0.002,
    "backhaul_latency": 0.1,
    "energy_weight": 0.1,
    "switched_capacitance": 1e-27,
    "transmit_power": 0.5,
    "cloud_price": 1.5e-10,
    "block_reward": 10.0,
    "block_rate": 1.0 / 12.0,
    "propagation_delay_device": 5.0,
    "propagation_delay_edge": 1.0,
    "propagation_delay_cloud": 0.2,
    "relay_fee": 2e-8,
    "device_cpu_speed_range": 1e9,
    "task_bits_range": 2e6,
    "task_cycles_range": 1e9,
    "delay_weight_range": 1.0,
    "edge_price": 1e-10,
    "edge_running_cost": 2e-11,
    "price_range": 1e-10,
    "reference_task_bits": 2e6,
    "reference_task_cycles": 1e9,
}


def around(default: float, zero: bool) -> st.SearchStrategy:
    """Values from 1e-3 to 1e3 times ``default`` (log-uniform), and 0 when allowed."""
    scaled = st.floats(-3.0, 3.0).map(lambda exponent: default * 10.0**exponent)
    return st.one_of(scaled, st.just(0.0)) if zero else scaled


def _count(context: Context, key: str) -> int:
    count = context.get(key)
    valid = isinstance(count, int) and not isinstance(count, bool) and count >= 1
    return count if valid else 2


def pairs(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(values, values).map(lambda pair: (min(pair), max(pair)))


@st.composite
def offloading_scenarios(draw: Any, context: Context) -> dict[str, Any]:
    fields: dict[str, st.SearchStrategy] = {}
    for name in OFFLOADING_POSITIVE:
        fields[name] = around(OFFLOADING_DEFAULTS[name], zero=False)
    for name in OFFLOADING_NON_NEGATIVE:
        fields[name] = around(OFFLOADING_DEFAULTS[name], zero=True)
    for name in OFFLOADING_POSITIVE_RANGES:
        fields[name] = pairs(around(OFFLOADING_DEFAULTS[name], zero=False))
    fields["mining_task_share"] = numbers(0.0, 1.0)
    fields["hash_share_range"] = pairs(numbers(0.0, 1.0))
    fields["price_range"] = pairs(around(OFFLOADING_DEFAULTS["price_range"], zero=True))
    edges = _count(context, "n_edges")
    for name in ("edge_price", "edge_running_cost"):
        value = around(OFFLOADING_DEFAULTS[name], zero=True)
        fields[name] = st.one_of(value, st.lists(value, min_size=edges, max_size=edges))
    for name in ("reference_task_bits", "reference_task_cycles"):
        fields[name] = st.one_of(st.none(), around(OFFLOADING_DEFAULTS[name], zero=False))
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), max_size=6, unique=True))
    scenario = {name: draw(fields[name], label=name) for name in chosen}
    if draw(st.booleans(), label="edge_positions given"):
        side = float(scenario.get("side", OFFLOADING_DEFAULTS["side"]))
        point = st.tuples(numbers(0.0, side), numbers(0.0, side))
        scenario["edge_positions"] = draw(st.lists(point, min_size=edges, max_size=edges))
    return scenario


def offloading_scenario_invalid(context: Context) -> st.SearchStrategy:
    edges = _count(context, "n_edges")
    invalid = [
        Invalid({name: value}, (name,)) for name in OFFLOADING_POSITIVE[:4] for value in (0.0, -1.0)
    ]
    invalid += [
        Invalid({name: value}, (name,))
        for name in ("backhaul_latency", "relay_fee", "cloud_price")
        for value in (-1e-12, math.nan, math.inf, "5.0e6", True)
    ]
    invalid += [
        Invalid({"mining_task_share": 1.5}, ("mining_task_share",)),
        Invalid({"task_bits_range": (2e6, 1e6)}, ("task_bits_range",)),
        Invalid({"task_bits_range": (0.0, 1e6)}, ("task_bits_range",)),
        Invalid({"task_bits_range": (1e6,)}, ("task_bits_range",)),
        Invalid({"hash_share_range": (0.5, 1.5)}, ("hash_share_range",)),
        Invalid({"price_range": (-1.0, 1.0)}, ("price_range",)),
        Invalid({"edge_price": [1e-10] * (edges + 1)}, ("edge_price",)),
        Invalid({"edge_running_cost": -1.0}, ("edge_running_cost",)),
        Invalid({"reference_task_bits": 0.0}, ("reference_task_bits",)),
        Invalid({"edge_positions": [(0.0, 0.0)] * (edges + 1)}, ("edge_positions",)),
        Invalid({"edge_positions": [(-1.0, 0.0)] * edges}, ("edge_positions",)),
        Invalid({"edge_positions": "grid"}, ("edge_positions",)),
        Invalid({"n_devices": 3}, ("n_devices",)),
        Invalid({"sides": 100.0}, ("sides",)),
        Invalid("small", ("scenario",)),
        Invalid(5, ("scenario",)),
    ]
    return st.sampled_from(invalid)


OFFLOADING_ARGUMENTS: dict[str, tuple[Strategy, Strategy]] = {
    "n_devices": count_argument("n_devices", high=5),
    "n_edges": count_argument("n_edges", high=3),
    "scenario": (
        lambda context: st.one_of(st.none(), offloading_scenarios(context)),
        offloading_scenario_invalid,
    ),
    "leaders": choice_argument("leaders", ("fixed", "learned"), ("analytic", None)),
    "price_points": (
        lambda context: st.one_of(st.integers(2, 25), st.just(101)),
        lambda context: st.sampled_from(
            [Invalid(value, ("price_points",)) for value in (1, 0, 2.5, True, "21")]
        ),
    ),
    "reputation": flag_argument("reputation"),
    "reliability": (
        lambda context: pairs(numbers(0.0, 1.0)),
        lambda context: st.sampled_from(
            [
                Invalid(value, ("reliability",))
                for value in ((0.9, 0.5), (-0.1, 1.0), (0.0, 1.5), (math.nan, 1.0), (0.5,), 0.5)
            ]
        ),
    ),
    "failure_penalty": number_argument("failure_penalty", 0.0, None, edges=(0.5,)),
    "device_balance": number_argument("device_balance", 0.0, None, edges=(0.2,), allow_none=True),
    "loans": flag_argument("loans"),
    "bank_rate": number_argument("bank_rate", 0.0, None, edges=(0.05,)),
    "render_mode": choice_argument(
        "render_mode", (None, "ansi", "rgb_array"), ("video", 3, "ANSI")
    ),
}


# ------------------------------------------------------------------------------------------------
# Data market (docs/data_market.md: "Symbols, parameters and defaults" and "Scenario values")


def agent_values(values: st.SearchStrategy, count: int) -> st.SearchStrategy:
    """A data-market scenario value: number, range, finite set, or one number per agent."""
    ranges = pairs(values).map(lambda pair: {"low": pair[0], "high": pair[1]})
    choices = st.lists(values, min_size=1, max_size=3).map(lambda items: {"choices": items})
    lists = st.lists(values, min_size=count, max_size=count)
    return st.one_of(values, ranges, choices, lists)


@st.composite
def data_market_scenarios(draw: Any, context: Context) -> dict[str, Any]:
    buyers = draw(st.integers(1, 3), label="n_buyers")
    sellers = draw(st.integers(1, 3), label="n_sellers")
    relays = draw(st.integers(0, 3), label="n_relays")
    scenario: dict[str, Any] = {"n_buyers": buyers, "n_sellers": sellers, "n_relays": relays}
    # The demand floors stay small enough for the feasibility condition in most draws.
    fields = {
        "willingness": agent_values(around(4.0, zero=False), buyers),
        "quality": agent_values(numbers(1e-3, 1.0, edges=(1.0,)), sellers),
        "age": agent_values(numbers(0.0, 10.0, edges=(0.0,)), sellers),
        "perishability": numbers(0.0, 2.0, edges=(0.0,)),
        "hop_efficiency": numbers(1e-3, 1.0, edges=(1.0,)),
        "hops": st.one_of(
            st.integers(0, relays),
            st.lists(st.integers(0, relays), min_size=1, max_size=3).map(
                lambda items: {"choices": items}
            ),
            st.lists(
                st.lists(st.integers(0, relays), min_size=sellers, max_size=sellers),
                min_size=buyers,
                max_size=buyers,
            ),
        ),
        "min_demand": agent_values(numbers(0.0, 0.2, edges=(0.0,)), buyers),
        "max_demand": agent_values(numbers(0.5, 20.0), buyers),
        "max_supply": agent_values(around(7.0, zero=False), sellers),
        "quadratic_cost": agent_values(around(0.01, zero=True), sellers),
        "linear_cost": agent_values(around(0.015, zero=True), sellers),
        "forward_cost": around(0.2, zero=True),
        "receipt_cost": around(0.05, zero=True),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), max_size=6, unique=True))
    scenario.update({name: draw(fields[name], label=name) for name in chosen})
    if draw(st.booleans(), label="relay credits given"):
        beta = draw(around(0.4, zero=True), label="last_reporter_credit")
        scenario["last_reporter_credit"] = beta
        scenario["relay_credit"] = beta + draw(around(0.6, zero=False), label="alpha - beta")
    return scenario


DATA_MARKET_INVALID = [
    Invalid({"n_buyers": 0}, ("n_buyers",)),
    Invalid({"n_sellers": 1.5}, ("n_sellers",)),
    Invalid({"n_relays": -1}, ("n_relays",)),
    Invalid({"willingness": 0.0}, ("willingness",)),
    Invalid({"willingness": {"low": 3.0, "high": 2.0}}, ("willingness",)),
    Invalid({"quality": 1.5}, ("quality",)),
    Invalid({"quality": {"choices": []}}, ("quality",)),
    Invalid({"age": -1.0}, ("age",)),
    Invalid({"perishability": math.nan}, ("perishability",)),
    Invalid({"hop_efficiency": 0.0}, ("hop_efficiency",)),
    Invalid({"hops": 5}, ("hops",)),
    Invalid({"hops": 0.5}, ("hops",)),
    Invalid({"hops": [[0]]}, ("hops",)),
    Invalid({"min_demand": -1.0}, ("min_demand",)),
    Invalid({"min_demand": 1e6}, ("min_demand",)),
    Invalid({"max_demand": 0.0}, ("max_demand",)),
    Invalid({"max_supply": "5"}, ("max_supply",)),
    Invalid({"quadratic_cost": -0.01}, ("quadratic_cost",)),
    Invalid({"linear_cost": [0.1]}, ("linear_cost",)),
    Invalid({"relay_credit": 0.1}, ("relay_credit",)),
    Invalid({"last_reporter_credit": -0.1, "relay_credit": 1.0}, ("last_reporter_credit",)),
    Invalid({"forward_cost": math.inf}, ("forward_cost",)),
    Invalid({"receipt_cost": None}, ("receipt_cost",)),
    Invalid({"buyers": 3}, ("buyers",)),
    Invalid("large", ("large",)),
    Invalid(5, ("scenario",)),
]

DATA_MARKET_ARGUMENTS: dict[str, tuple[Strategy, Strategy]] = {
    "scenario": (
        lambda context: st.one_of(st.none(), st.just("small"), data_market_scenarios(context)),
        lambda context: st.sampled_from(DATA_MARKET_INVALID),
    ),
    "bidding": choice_argument("bidding", ("truthful", "learned"), ("honest", None)),
    "relays": flag_argument("relays"),
}


# ------------------------------------------------------------------------------------------------
# Which table applies to a market


#: Constructor keyword that identifies a market family -> its argument strategies.
FAMILY_ARGUMENTS: dict[str, dict[str, tuple[Strategy, Strategy]]] = {
    "willingness": {**LENDING_ARGUMENTS, **ONE_TO_ONE_ARGUMENTS},
    "max_investment": {**LENDING_ARGUMENTS, **ONE_TO_MANY_ARGUMENTS},
    "n_devices": OFFLOADING_ARGUMENTS,
    "bidding": DATA_MARKET_ARGUMENTS,
}

#: Fields of the mappings that arguments take (scenarios and ledger settings), which an error
#: about a combination may name although the caller left them at their defaults.
NESTED_FIELDS = tuple(
    field.name
    for cls in (OffloadingScenario, DataMarketScenario, LedgerConfig, TangleConfig)
    for field in dataclasses.fields(cls)
)

#: Arguments drawn first, because the ranges of others depend on them.
DRAW_FIRST = ("n_lenders", "n_devices", "n_edges", "max_rate", "min_loan")


def argument_strategies(name: str) -> dict[str, tuple[Strategy, Strategy]]:
    """Return the strategies of every constructor argument of a registered env."""
    parameters = constructor_parameters(name)
    table = dict(COMMON_ARGUMENTS)
    for keyword, arguments in FAMILY_ARGUMENTS.items():
        if keyword in parameters:
            table.update(arguments)
    return {argument: table[argument] for argument in parameters if argument in table}


@st.composite
def market_arguments(draw: Any, name: str) -> tuple[dict[str, Any], Invalid | None, str | None]:
    """Draw (kwargs, the invalid value if one was drawn, the argument it belongs to)."""
    strategies = argument_strategies(name)
    defaults = {
        argument: parameter.default
        for argument, parameter in constructor_parameters(name).items()
        if parameter.default is not inspect.Parameter.empty
    }
    order = [a for a in DRAW_FIRST if a in strategies] + [
        a for a in strategies if a not in DRAW_FIRST
    ]
    corrupt = draw(st.one_of(st.none(), st.sampled_from(order)), label="invalid argument")
    kwargs: dict[str, Any] = {}
    invalid: Invalid | None = None
    for argument in order:
        context = {**defaults, **kwargs}
        valid_strategy, invalid_strategy = strategies[argument]
        if argument == corrupt:
            invalid = draw(invalid_strategy(context), label=argument)
            kwargs[argument] = invalid.value
        elif argument == "max_cycles" or draw(st.booleans(), label=f"{argument} given"):
            kwargs[argument] = draw(valid_strategy(context), label=argument)
    return kwargs, invalid, corrupt


def all_keys(value: Any) -> list[str]:
    """Every mapping key inside ``value``, at any depth."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.append(str(key))
            found.extend(all_keys(item))
    return found
