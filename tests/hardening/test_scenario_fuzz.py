"""Random constructor arguments and scenarios for every registered market.

Each example draws a market's keyword arguments from the ranges its docs page and constructor
document (docs/lending.md, docs/offloading.md, docs/data_market.md), edge values included, and
at most one argument from outside them. Construction must either succeed, and then a short
episode keeps every invariant of the env contract, or raise ValueError or TypeError whose
message names the offending argument (or the scenario field, ledger setting or range end).

Every constructor argument of every registered env needs a strategy in
``tests/hardening/arguments.py``: ``test_every_argument_has_a_strategy`` fails for a new
argument without one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledgerzoo
from tests.conftest import action_mask, sample_action
from tests.hardening.arguments import (
    NESTED_FIELDS,
    Invalid,
    all_keys,
    argument_strategies,
    market_arguments,
)
from tests.hardening.fuzzing import (
    FUZZ_SETTINGS,
    check_observation,
    check_parallel_step,
    constructor_parameters,
)

#: Examples per market: each builds the market once and plays up to two rounds.
SCENARIO_EXAMPLES = 50


# ------------------------------------------------------------------------------------------------
# Tests


def test_every_argument_has_a_strategy(env_name: str) -> None:
    parameters = [name for name in constructor_parameters(env_name) if name != "self"]

    missing = sorted(set(parameters) - set(argument_strategies(env_name)))

    assert not missing, f"{env_name}: no fuzz strategy for the arguments {missing}"


@pytest.mark.filterwarnings("ignore:the chain confirms at most:UserWarning")
def test_random_arguments_build_or_name_problem(env_name: str) -> None:
    @settings(FUZZ_SETTINGS, max_examples=SCENARIO_EXAMPLES)
    @given(drawn=market_arguments(env_name), seed=st.integers(0, 2**32 - 1))
    def build(drawn: tuple[dict[str, Any], Invalid | None, str | None], seed: int) -> None:
        kwargs, invalid, corrupt = drawn
        _build_and_play(env_name, kwargs, invalid, corrupt, seed)

    build()


def _build_and_play(
    name: str, kwargs: dict[str, Any], invalid: Invalid | None, corrupt: str | None, seed: int
) -> None:
    where = f"{name}({kwargs!r})"
    try:
        env = ledgerzoo.make(name, **kwargs)
    except (ValueError, TypeError) as error:
        message = str(error)
        # A combination of valid values can be out of range too. The error then names one of
        # the arguments involved, which may be one left at its default.
        arguments = [*constructor_parameters(name), *NESTED_FIELDS, *all_keys(kwargs)]
        named = [key for key in arguments if key in message]
        assert named, f"{where}: the error names no argument: {message}"
        if invalid is not None and not any(word in message for word in invalid.names):
            # Another argument's combination failed first: the invalid value alone must still
            # be rejected with its own name.
            _check_rejected_alone(name, corrupt, invalid, where)
        return
    assert invalid is None, f"{where}: {corrupt}={invalid.value!r} was accepted" if invalid else ""
    _play(env, seed, where)


def _check_rejected_alone(name: str, argument: Any, invalid: Invalid, where: str) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        ledgerzoo.make(name, **{argument: invalid.value})
    message = str(caught.value)
    assert any(word in message for word in invalid.names), (
        f"{where}: {argument}={invalid.value!r} alone: the error does not name "
        f"{invalid.names}: {message}"
    )


def _play(env: Any, seed: int, where: str) -> None:
    observations, _ = env.reset(seed=seed)
    for agent, observation in observations.items():
        check_observation(env.observation_space(agent), observation, f"{where} reset: {agent}")
    rng = np.random.default_rng(seed)
    step = 0
    while env.agents:
        live = list(env.agents)
        actions = {
            agent: sample_action(env.action_space(agent), rng, action_mask(observations[agent]))
            for agent in live
        }
        result = env.step(actions)
        check_parallel_step(env, result, live, f"{where} seed {seed} step {step}")
        observations = result[0]
        step += 1


# ------------------------------------------------------------------------------------------------
# Extreme values inside the documented ranges

#: Market family keyword -> (kwargs, known gap or None): arguments at the far ends of documented
#: ranges that have no finite bound, or whose bound is near the float limits (5e-324 is the
#: smallest positive float64). Each market must reject them naming an argument, or play them
#: with finite observations and rewards.
EXTREME_VALUES: dict[str, tuple[tuple[dict[str, Any], str | None], ...]] = {
    "willingness": (
        ({"n_lenders": 2, "willingness": [5e-324, 1.0]}, None),
        ({"n_lenders": 2, "willingness": [1e-300, 1e9]}, None),
        ({"willingness": 1e9, "min_rate": 1e-9}, None),
        ({"max_rate": 1e3, "min_rate": 999.0}, None),
        ({"max_loan": 1e18}, None),
        ({"min_loan": 1e300}, None),
        ({"lender_budget": 1e15, "data_price": 1e15, "data_income": 1e15}, None),
        ({"reward_scale": 1e300}, None),
    ),
    "max_investment": (
        ({"max_investment": 5e-324}, None),
        ({"max_investment": 1e12, "weight": 1e12, "valuation": 1e12, "reward": 1e12}, None),
        ({"valuation": 5e-324, "weight": 5e-324, "reward": 5e-324}, None),
        ({"max_rate": 1e3, "min_rate": 999.0}, None),
        ({"target": 1e12}, None),
        ({"failure_utility": -1e300}, None),
        ({"reward_scale": 1e300}, None),
    ),
    "n_devices": (
        ({"device_balance": 1e300}, None),
        ({"failure_penalty": 1e300, "reputation": True}, None),
        ({"bank_rate": 1e300, "loans": True, "device_balance": 0.0}, None),
        ({"scenario": {"side": 1e300}}, None),
        ({"scenario": {"task_bits_range": (1e300, 1e300)}}, None),
        ({"scenario": {"block_reward": 1e300}}, None),
        ({"reward_scale": 1e300}, None),
    ),
    "bidding": (
        ({"scenario": {"willingness": 1e300}}, None),
        ({"scenario": {"max_supply": 1e300}}, None),
        ({"scenario": {"hop_efficiency": 1e-300}}, None),
        ({"scenario": {"relay_credit": 1e300}}, None),
        ({"reward_scale": 1e300}, None),
    ),
}


def extreme_cases() -> list[Any]:
    cases = []
    for name in ledgerzoo.list_envs():
        parameters = constructor_parameters(name)
        for keyword, family in EXTREME_VALUES.items():
            if keyword not in parameters:
                continue
            for kwargs, gap in family:
                case_id = f"{name}-" + ",".join(f"{key}={value!r}" for key, value in kwargs.items())
                marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
                cases.append(pytest.param(name, kwargs, id=case_id, marks=marks))
    return cases


@pytest.mark.parametrize(("name", "kwargs"), extreme_cases())
def test_extreme_values(name: str, kwargs: dict[str, Any]) -> None:
    where = f"{name}({kwargs!r})"
    try:
        env = ledgerzoo.make(name, max_cycles=2, **kwargs)
    except (ValueError, TypeError) as error:
        assert any(word in str(error) for word in all_keys(kwargs)), f"{where}: {error}"
        return
    for seed in (0, 1):
        _play(env, seed, where)


# ------------------------------------------------------------------------------------------------
# Python integers beyond the float range

#: A Python int that float() cannot convert (OverflowError).
HUGE_INTEGER = 10**400

#: Market family keyword -> (numeric argument or "scenario.<field>", known gap or None), each
#: given HUGE_INTEGER.
NUMERIC_ARGUMENTS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "willingness": (
        ("n_lenders", None),
        ("willingness", None),
        ("min_rate", None),
        ("max_rate", None),
        ("min_loan", None),
        ("max_loan", None),
        ("max_cycles", None),
        ("reward_scale", None),
        ("loan_term", None),
        ("lender_budget", None),
        ("borrower_balance", None),
        ("data_price", None),
        ("data_income", None),
    ),
    "max_investment": (
        ("n_lenders", None),
        ("max_cycles", None),
        ("min_rate", None),
        ("max_investment", None),
        ("max_rate", None),
        ("reward", None),
        ("weight", None),
        ("valuation", None),
        ("target", None),
        ("failure_utility", None),
        ("reward_scale", None),
    ),
    "n_devices": (
        ("n_devices", None),
        ("n_edges", None),
        ("price_points", None),
        ("failure_penalty", None),
        ("device_balance", None),
        ("bank_rate", None),
        ("max_cycles", None),
        ("reward_scale", None),
        ("scenario.side", None),
        ("scenario.relay_fee", None),
    ),
    "bidding": (
        ("max_cycles", None),
        ("reward_scale", None),
        ("scenario.n_buyers", None),
        ("scenario.n_sellers", None),
        ("scenario.n_relays", None),
        ("scenario.willingness", None),
        ("scenario.perishability", None),
    ),
}


def huge_integer_cases() -> list[Any]:
    cases = []
    for name in ledgerzoo.list_envs():
        parameters = constructor_parameters(name)
        for keyword, arguments in NUMERIC_ARGUMENTS.items():
            if keyword not in parameters:
                continue
            for argument, gap in arguments:
                marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
                cases.append(pytest.param(name, argument, id=f"{name}-{argument}", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "argument"), huge_integer_cases())
def test_integer_beyond_float_range(name: str, argument: str) -> None:
    field = argument.split(".")[-1]
    if argument.startswith("scenario."):
        kwargs: dict[str, Any] = {"scenario": {field: HUGE_INTEGER}}
    else:
        kwargs = {argument: HUGE_INTEGER}
    where = f"{name}({argument}=10**400)"
    try:
        env = ledgerzoo.make(name, **{"max_cycles": 2, **kwargs})
    except (ValueError, TypeError) as error:
        assert field in str(error), f"{where}: the error does not name {field!r}: {error}"
        return
    _play(env, 0, where)


# ------------------------------------------------------------------------------------------------
# Errors that do not name the argument the caller gave


def envs_with_argument(argument: str) -> list[str]:
    return [name for name in ledgerzoo.list_envs() if argument in constructor_parameters(name)]


@pytest.mark.parametrize("value", [("a", 1.0), (None, 1.0)], ids=["text", "None"])
@pytest.mark.parametrize("name", envs_with_argument("reliability"))
def test_reliability_entries_named(name: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        ledgerzoo.make(name, reliability=value)

    assert "reliability" in str(caught.value), str(caught.value)


@pytest.mark.parametrize("name", envs_with_argument("max_rate"))
def test_max_rate_below_default_min_rate_named(name: str) -> None:
    default = constructor_parameters(name)["min_rate"].default
    assert default is None, f"{name}: min_rate defaults to {default!r}, not to a documented range"

    with pytest.raises(ValueError) as caught:
        ledgerzoo.make(name, max_rate=0.01)

    assert "max_rate" in str(caught.value), str(caught.value)
