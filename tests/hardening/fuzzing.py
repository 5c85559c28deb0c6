"""Shared helpers of the hardening tests: hypothesis settings, small markets, adversarial
actions and checks of the env contract's invariants.

The env contract (DESIGN.md, ``BatchedMarket.step`` and ``ledgerzoo.envs.core.actions``):
Box actions outside the space are clipped and counted, float64, integer and boolean arrays are
cast to float32, and NaN, infinite or wrongly shaped actions raise ValueError naming the agent.
Discrete actions out of range, non-integral or masked off raise ValueError. A rejected step
leaves the episode unchanged.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import ledgerzoo
from ledgerzoo import registry
from ledgerzoo.envs.core import keys
from tests.conftest import env_variants, variant_id

#: Hypothesis settings of every hardening test: derandomized, so CI runs the same examples
#: every time. They set no deadline, because a reset that solves an equilibrium can take a
#: second on a busy machine, and keep no example database.
FUZZ_SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Examples per variant that the reference solvers run in: solving each episode's (or each
#: round's) equilibrium makes these examples up to 100 times slower.
REFERENCE_EXAMPLES = 3

#: Rounds per episode in the fuzz tests: enough for rounds that observe an earlier round.
FUZZ_MAX_CYCLES = 3

#: Constructor keyword that identifies a market -> arguments that shrink it for fuzzing. The
#: contract does not depend on the market's size, and small markets keep the reference
#: solvers fast.
SMALL_MARKET_KWARGS: dict[str, dict[str, Any]] = {
    "n_lenders": {"n_lenders": 3},
    "n_devices": {"n_devices": 4},
    "bidding": {
        "scenario": {"n_buyers": 2, "n_sellers": 3, "n_relays": 2, "min_demand": 0.5},
    },
}

#: Box entries far outside [0, 1] or just outside it, in float64: the env must clip them.
OUTSIDE_VALUES = (-1e300, -3.4e38, -1e6, -1.0, -1e-9, 1.0 + 1e-9, 1.5, 1e6, 3.4e38, 1e300)


def fuzz_settings(case: tuple[str, Mapping[str, Any]]) -> settings:
    """Return the hypothesis settings of a fuzz case, with fewer examples for reference runs."""
    _, kwargs = case
    if kwargs.get("reference"):
        return settings(FUZZ_SETTINGS, max_examples=REFERENCE_EXAMPLES)
    return FUZZ_SETTINGS


def constructor_parameters(name: str) -> Mapping[str, inspect.Parameter]:
    """Return the constructor parameters of a registered env's ``raw_env``."""
    return inspect.signature(registry.spec(name).load().raw_env).parameters


def fuzz_kwargs(name: str, variant: Mapping[str, Any]) -> dict[str, Any]:
    """Build the kwargs of a small, short variant of a registered env."""
    parameters = constructor_parameters(name)
    kwargs: dict[str, Any] = {"max_cycles": FUZZ_MAX_CYCLES}
    for keyword, small in SMALL_MARKET_KWARGS.items():
        if keyword in parameters:
            kwargs.update(small)
    kwargs.update(variant)
    return kwargs


def fuzz_cases(vector_only: bool = False) -> list[Any]:
    """List ``pytest.param((name, kwargs))`` for every registered env and variant."""
    cases = []
    for name in ledgerzoo.list_envs():
        module = registry.spec(name).load()
        if vector_only and getattr(module, "market_class", None) is None:
            continue
        for variant in env_variants(name):
            cases.append(
                pytest.param((name, fuzz_kwargs(name, variant)), id=variant_id(name, variant))
            )
    return cases


# ------------------------------------------------------------------------------------------------
# Invariants


def check_observation(space: gymnasium.Space, observation: Any, where: str) -> None:
    """Check that an observation is finite, of the space's dtype and inside the space."""
    if isinstance(space, gymnasium.spaces.Dict):
        assert isinstance(observation, Mapping), f"{where}: expected a dict, got {observation!r}"
        assert set(observation) == set(space.spaces), f"{where}: keys {sorted(observation)}"
        for key, part in space.spaces.items():
            check_observation(part, observation[key], f"{where}[{key!r}]")
        return
    assert isinstance(space, gymnasium.spaces.Box), f"{where}: unexpected space {space}"
    assert isinstance(observation, np.ndarray), f"{where}: {type(observation)} is not an array"
    assert observation.dtype == space.dtype, f"{where}: dtype {observation.dtype}, space {space}"
    assert observation.shape == space.shape, f"{where}: shape {observation.shape}, space {space}"
    finite = np.isfinite(observation)
    assert finite.all(), f"{where}: entries {np.flatnonzero(~finite).tolist()} are not finite"
    outside = (observation < space.low) | (observation > space.high)
    assert not outside.any(), (
        f"{where}: entries {np.flatnonzero(outside).tolist()} = "
        f"{observation[outside].tolist()} lie outside {space}"
    )
    assert space.contains(observation), f"{where}: {observation} not contained in {space}"


def check_parallel_step(env: Any, result: tuple[Any, ...], live: list[str], where: str) -> None:
    """Check one PettingZoo step: the dict keys, observations, finite rewards and the flags."""
    observations, rewards, terminations, truncations, infos = result
    for name, returned in (
        ("observations", observations),
        ("rewards", rewards),
        ("terminations", terminations),
        ("truncations", truncations),
        ("infos", infos),
    ):
        assert sorted(returned) == sorted(live), f"{where}: {name} keys {sorted(returned)}"
    for agent in live:
        check_observation(env.observation_space(agent), observations[agent], f"{where}: {agent}")
        reward = rewards[agent]
        assert isinstance(reward, float), f"{where}: {agent}'s reward {reward!r} is not a float"
        assert math.isfinite(reward), f"{where}: {agent}'s reward {reward} is not finite"


def check_market_step(market: Any, step: Any, where: str) -> None:
    """Check one batched step: observations in the roles' spaces and finite rewards."""
    check_market_observations(market, step.observations, where)
    for role in market.roles:
        reward = step.rewards[role.name]
        assert reward.shape == (market.num_instances, role.count), f"{where}: {reward.shape}"
        assert np.isfinite(reward).all(), f"{where}: {role.name} rewards {reward} not finite"


def check_market_observations(market: Any, observations: Mapping[str, Any], where: str) -> None:
    """Check batched observations (B, count, obs_dim) against every role's space."""
    for role in market.roles:
        batch = observations[role.name]
        expected = (market.num_instances, role.count, *role.observation_space.shape)
        assert batch.shape == expected, f"{where}: {role.name} observations {batch.shape}"
        for instance in range(market.num_instances):
            for index in range(role.count):
                check_observation(
                    role.observation_space,
                    batch[instance, index],
                    f"{where}: {role.name}_{index} in instance {instance}",
                )


# ------------------------------------------------------------------------------------------------
# Comparison of step results


def assert_same(first: Any, second: Any, where: str) -> None:
    """Assert that two step results are equal, array by array (NaN equals NaN)."""
    if isinstance(first, Mapping):
        assert isinstance(second, Mapping), f"{where}: {type(second)} is not a mapping"
        assert sorted(first) == sorted(second), f"{where}: keys {sorted(first)} vs {sorted(second)}"
        for key in first:
            assert_same(first[key], second[key], f"{where}[{key!r}]")
        return
    if isinstance(first, (tuple, list)):
        assert isinstance(second, (tuple, list)), f"{where}: {type(second)} is not a sequence"
        assert len(first) == len(second), f"{where}: lengths {len(first)} vs {len(second)}"
        for index, (left, right) in enumerate(zip(first, second, strict=True)):
            assert_same(left, right, f"{where}[{index}]")
        return
    if hasattr(first, "__dataclass_fields__"):
        for name in first.__dataclass_fields__:
            assert_same(getattr(first, name), getattr(second, name), f"{where}.{name}")
        return
    left, right = np.asarray(first), np.asarray(second)
    assert left.shape == right.shape, f"{where}: shapes {left.shape} vs {right.shape}"
    numeric = left.dtype.kind in "fc" and right.dtype.kind in "fc"
    assert np.array_equal(left, right, equal_nan=numeric), f"{where}: {first!r} vs {second!r}"


def without_clip_counts(infos: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of per-agent or per-role infos without the clipped-action counts."""
    return {
        owner: {key: value for key, value in info.items() if key != keys.CLIPPED_ACTIONS}
        for owner, info in infos.items()
    }


# ------------------------------------------------------------------------------------------------
# Adversarial actions of one agent (the PettingZoo face)


@dataclass(frozen=True)
class AgentAction:
    """An action sent on behalf of one agent, and the env's response that the contract requires.

    Attributes:
        kind: Short label of the case, for failure messages.
        action: What the agent sends.
        accepted: Whether the env must accept the action.
        equivalent: For an accepted action, a valid action in the space with the same effect.
        clipped: Whether the env must count the action as clipped.
    """

    kind: str
    action: Any
    accepted: bool
    equivalent: Any = None
    clipped: bool = False


def box_agent_actions(space: gymnasium.spaces.Box, valid: np.ndarray) -> st.SearchStrategy:
    """Strategy of accepted and rejected actions for an agent with a Box space."""
    shape = space.shape
    size = int(np.prod(shape))
    low = space.low.astype(np.float64)
    high = space.high.astype(np.float64)

    def outside(values: list[float]) -> AgentAction:
        array = np.array(values, dtype=np.float64).reshape(shape)
        equivalent = np.clip(array, low, high).astype(np.float32)
        clipped = bool(np.any((array < low) | (array > high)))
        return AgentAction("outside the box", array, True, equivalent, clipped)

    def cast(kind: str, values: np.ndarray) -> AgentAction:
        array = values.reshape(shape)
        numbers = array.astype(np.float64)
        equivalent = np.clip(numbers, low, high).astype(np.float32)
        clipped = bool(np.any((numbers < low) | (numbers > high)))
        return AgentAction(kind, array, True, equivalent, clipped)

    def with_entry(value: float, kind: str) -> st.SearchStrategy:
        def build(index: int) -> AgentAction:
            array = valid.astype(np.float64).reshape(-1)
            array[index] = value
            return AgentAction(kind, array.reshape(shape), False)

        return st.integers(0, size - 1).map(build)

    in_box = st.floats(0.0, 1.0)
    accepted = [
        st.lists(
            st.one_of(in_box, st.sampled_from(OUTSIDE_VALUES)), min_size=size, max_size=size
        ).map(outside),
        st.just(AgentAction("float64", valid.astype(np.float64), True, valid, False)),
        st.lists(st.integers(-2, 2), min_size=size, max_size=size).map(
            lambda values: cast("integers", np.array(values, dtype=np.int64))
        ),
        st.lists(st.booleans(), min_size=size, max_size=size).map(
            lambda values: cast("booleans", np.array(values, dtype=bool))
        ),
        st.just(AgentAction("nested list", valid.tolist(), True, valid.astype(np.float32), False)),
    ]
    rejected = [
        with_entry(math.nan, "NaN"),
        with_entry(math.inf, "+inf"),
        with_entry(-math.inf, "-inf"),
        st.sampled_from(
            [
                AgentAction("scalar", float(valid.reshape(-1)[0]), False),
                AgentAction("extra axis", valid[None], False),
                AgentAction("one entry more", np.append(valid.reshape(-1), 0.5), False),
                AgentAction("empty", np.zeros(0, dtype=np.float32), False),
                AgentAction("strings", np.array(["0.5"] * size).reshape(shape), False),
                AgentAction("None", None, False),
                AgentAction("complex", valid.astype(np.complex64), False),
                AgentAction("objects", np.array([object()] * size, dtype=object), False),
                AgentAction("text", "half", False),
            ]
        ),
    ]
    return st.one_of(*accepted, *rejected)


def discrete_agent_actions(
    space: gymnasium.spaces.Discrete, valid: int, mask: np.ndarray | None
) -> st.SearchStrategy:
    """Strategy of accepted and rejected actions for an agent with a Discrete space."""
    start, n = int(space.start), int(space.n)
    allowed = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    legal = [start + int(i) for i in np.flatnonzero(allowed)]
    masked = [start + int(i) for i in np.flatnonzero(~allowed)]

    def accepted(choice: int) -> st.SearchStrategy:
        return st.sampled_from(
            [
                AgentAction("int", int(choice), True, choice),
                AgentAction("numpy int64", np.int64(choice), True, choice),
                AgentAction("numpy uint8", np.uint8(choice), True, choice),
                AgentAction("integral float", float(choice), True, choice),
                AgentAction("0-d array", np.array(choice), True, choice),
                AgentAction("one-element array", np.array([choice]), True, choice),
            ]
        )

    rejected = [
        AgentAction("one past the range", start + n, False),
        AgentAction("below the range", start - 1, False),
        AgentAction("huge", 2**62, False),
        AgentAction("huge negative", -(2**62), False),
        AgentAction("non-integral", start + 0.5, False),
        AgentAction("NaN", math.nan, False),
        AgentAction("inf", math.inf, False),
        AgentAction("boolean", True, False),
        AgentAction("two entries", np.array([valid, valid]), False),
        AgentAction("string", "1", False),
        AgentAction("None", None, False),
    ]
    rejected += [AgentAction("masked off", choice, False) for choice in masked]
    return st.one_of(st.sampled_from(legal).flatmap(accepted), st.sampled_from(rejected))


def agent_actions(space: gymnasium.Space, valid: Any, mask: Any) -> st.SearchStrategy:
    """Strategy of adversarial actions for one agent of either kind of space."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return discrete_agent_actions(space, int(valid), mask)
    return box_agent_actions(space, np.asarray(valid))


# ------------------------------------------------------------------------------------------------
# Valid batched actions (the vector face)


def valid_market_actions(market: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw valid actions of every role of a batched market, respecting the action masks."""
    masks = market.action_masks()
    actions: dict[str, np.ndarray] = {}
    for role in market.roles:
        shape = (market.num_instances, role.count)
        if role.is_discrete:
            n = int(role.action_space.n)
            allowed = masks.get(role.name, np.ones((*shape, n), dtype=bool))
            # The allowed choice with the largest random priority, per agent.
            priorities = np.where(allowed, rng.random((*shape, n)), -1.0)
            actions[role.name] = np.argmax(priorities, axis=2) + int(role.action_space.start)
        else:
            space = role.action_space
            draws = rng.random((*shape, *space.shape))
            actions[role.name] = (space.low + draws * (space.high - space.low)).astype(np.float32)
    return actions
