"""Adversarial actions at both faces of every registered market.

Each example plays one short episode. In every step one agent (or one role, on the vector face)
may send a corrupted action. The corruptions are NaN, infinities, values outside the Box, wrong
shapes and dtypes, Discrete choices out of range, non-integral or masked off, and a missing or
unknown agent.
The contract decides the outcome. An accepted action must have the same effect as its clipped
or cast equivalent, sent to an untouched copy of the env. A rejected step must raise the
documented error naming the agent and leave the episode unchanged: the next valid step gives
the same result as on the untouched copy. Observations stay finite, of the space's dtype and
inside the space, and rewards stay finite.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledgerzoo
from ledgerzoo import registry
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.seeding import instance_seeds
from tests.conftest import action_mask, sample_action, vector_env_names
from tests.hardening.fuzzing import (
    OUTSIDE_VALUES,
    AgentAction,
    agent_actions,
    assert_same,
    check_market_observations,
    check_market_step,
    check_observation,
    check_parallel_step,
    fuzz_cases,
    fuzz_settings,
    valid_market_actions,
    without_clip_counts,
)

NUM_INSTANCES = 2
SEEDS = st.integers(0, 2**32 - 1)


# ------------------------------------------------------------------------------------------------
# The PettingZoo face


@pytest.mark.parametrize("case", fuzz_cases())
def test_parallel_env_adversarial_actions(case: tuple[str, dict[str, Any]]) -> None:
    @fuzz_settings(case)
    @given(data=st.data())
    def play(data: Any) -> None:
        _play_parallel_episode(case, data)

    play()


def _play_parallel_episode(case: tuple[str, dict[str, Any]], data: Any) -> None:
    name, kwargs = case
    env = ledgerzoo.make(name, **kwargs)
    seed = data.draw(SEEDS, label="seed")
    observations, _ = env.reset(seed=seed)
    for agent, observation in observations.items():
        check_observation(env.observation_space(agent), observation, f"reset: {agent}")
    rng = np.random.default_rng(seed)

    step = 0
    while env.agents:
        where = f"{name} {kwargs} seed {seed} step {step}"
        live = list(env.agents)
        valid = {
            agent: sample_action(env.action_space(agent), rng, action_mask(observations[agent]))
            for agent in live
        }
        untouched = copy.deepcopy(env)
        mode = data.draw(st.sampled_from(["valid", "agent", "missing", "unknown"]), label="mode")

        if mode == "valid":
            result = env.step(valid)
        elif mode in ("missing", "unknown"):
            result = _check_key_error(env, untouched, valid, mode, data, where)
        else:
            agent = data.draw(st.sampled_from(live), label="agent")
            mask = action_mask(observations[agent])
            sent = data.draw(agent_actions(env.action_space(agent), valid[agent], mask))
            where += f" {agent} sends {sent.kind} {sent.action!r}"
            if sent.accepted:
                result = _check_accepted(env, untouched, valid, agent, sent, where)
            else:
                result = _check_rejected(env, untouched, valid, agent, sent, where)

        check_parallel_step(env, result, live, where)
        observations = result[0]
        step += 1


def _check_accepted(
    env: Any, untouched: Any, valid: dict[str, Any], agent: str, sent: AgentAction, where: str
) -> tuple[Any, ...]:
    """Step with the accepted action and compare with its equivalent on the untouched copy."""
    result = env.step({**valid, agent: sent.action})
    expected = untouched.step({**valid, agent: sent.equivalent})

    observations, rewards, terminations, truncations, infos = result
    assert_same(observations, expected[0], f"{where}: observations")
    assert_same(rewards, expected[1], f"{where}: rewards")
    assert_same((terminations, truncations), expected[2:4], f"{where}: flags")
    assert_same(without_clip_counts(infos), without_clip_counts(expected[4]), f"{where}: infos")
    for other, info in infos.items():
        counted = info[keys.CLIPPED_ACTIONS]
        reference = expected[4][other][keys.CLIPPED_ACTIONS]
        extra = 1 if other == agent and sent.clipped else 0
        assert counted == reference + extra, (
            f"{where}: {other} counted {counted}, not {reference} + {extra}"
        )
    return result


def _check_rejected(
    env: Any, untouched: Any, valid: dict[str, Any], agent: str, sent: AgentAction, where: str
) -> tuple[Any, ...]:
    """Check the ValueError naming the agent, then that the episode is unchanged."""
    with pytest.raises(ValueError) as caught:
        env.step({**valid, agent: sent.action})
    assert agent in str(caught.value), f"{where}: the error does not name {agent}: {caught.value}"
    return _check_unchanged(env, untouched, valid, where)


def _check_key_error(
    env: Any, untouched: Any, valid: dict[str, Any], mode: str, data: Any, where: str
) -> tuple[Any, ...]:
    """Send the actions without a live agent, or with an unknown one: KeyError, no change."""
    if mode == "missing":
        agent = data.draw(st.sampled_from(sorted(valid)), label="missing agent")
        actions = {other: action for other, action in valid.items() if other != agent}
    else:
        agent = data.draw(st.sampled_from(["ghost_0", "lender", "", "device_999"]), label="unknown")
        actions = {**valid, agent: next(iter(valid.values()))}
    with pytest.raises(KeyError) as caught:
        env.step(actions)
    assert repr(agent) in str(caught.value), (
        f"{where}: KeyError does not name {agent!r}: {caught.value}"
    )
    return _check_unchanged(env, untouched, valid, f"{where}: {mode} {agent!r}")


def _check_unchanged(
    env: Any, untouched: Any, valid: dict[str, Any], where: str
) -> tuple[Any, ...]:
    result = env.step(valid)
    expected = untouched.step(valid)
    assert_same(result, expected, f"{where}: the step after the rejected one")
    return result


# ------------------------------------------------------------------------------------------------
# The vector face: the batched market


@pytest.mark.parametrize("case", fuzz_cases(vector_only=True))
def test_batched_market_adversarial_actions(case: tuple[str, dict[str, Any]]) -> None:
    @fuzz_settings(case)
    @given(data=st.data())
    def play(data: Any) -> None:
        _play_batched_episode(case, data)

    play()


def _play_batched_episode(case: tuple[str, dict[str, Any]], data: Any) -> None:
    name, kwargs = case
    market = registry.market_class(name)(num_instances=NUM_INSTANCES, **kwargs)
    seed = data.draw(SEEDS, label="seed")
    market.seed(instance_seeds(seed, NUM_INSTANCES))
    check_market_observations(market, market.reset(), f"{name} reset")
    rng = np.random.default_rng(seed)

    step = 0
    while market.round < market.max_cycles:
        where = f"{name} {kwargs} seed {seed} step {step}"
        valid = valid_market_actions(market, rng)
        untouched = copy.deepcopy(market)
        role = data.draw(st.sampled_from(market.roles), label="role")
        corruption = data.draw(
            _role_corruptions(market, role, valid[role.name]), label="corruption"
        )
        kind, actions, expected = corruption
        where += f" {role.name} sends {kind}"

        if expected == "valid":
            result = market.step({**valid, role.name: actions})
            reference = untouched.step({**valid, role.name: _equivalent(role, actions)})
            _compare_with_clipping(market, result, reference, role, actions, where)
        elif expected == "missing":
            without = {other: value for other, value in valid.items() if other != role.name}
            with pytest.raises(KeyError) as missing:
                market.step(without)
            assert repr(role.name) in str(missing.value), f"{where}: {missing.value}"
            result = _check_market_unchanged(market, untouched, valid, where)
        else:
            with pytest.raises(ValueError) as caught:
                market.step({**valid, role.name: actions})
            message = str(caught.value)
            assert expected in message, f"{where}: the error does not name {expected!r}: {message}"
            result = _check_market_unchanged(market, untouched, valid, where)

        check_market_step(market, result, where)
        step += 1


def _role_corruptions(market: Any, role: Any, valid: np.ndarray) -> st.SearchStrategy:
    """Strategy of (kind, actions, expected) for one role's batch: expected is "valid",
    "missing", or the text the ValueError must contain."""
    batch, count = market.num_instances, role.count
    slots = st.tuples(st.integers(0, batch - 1), st.integers(0, count - 1))

    def at_slot(value: Any, kind: str, dtype: Any) -> st.SearchStrategy:
        def build(slot: tuple[int, int]) -> tuple[str, np.ndarray, str]:
            array = valid.astype(dtype)
            array[slot] = value
            return kind, array, f"{role.name}_{slot[1]} in instance {slot[0]}"

        return slots.map(build)

    shapes = [
        ("no instance axis", valid[0]),
        ("one agent fewer", valid[:, :-1]),
        ("extra trailing axis", valid[..., None]),
        ("strings", valid.astype(str)),
        ("complex", valid.astype(np.complex128)),
        ("objects", valid.astype(object)),
    ]
    common = [
        st.sampled_from([(kind, array, role.name) for kind, array in shapes]),
        st.just(("missing role", valid, "missing")),
    ]
    if role.is_discrete:
        start, n = int(role.action_space.start), int(role.action_space.n)
        masks = market.action_masks().get(role.name)
        specific = [
            at_slot(start + n, "one past the range", np.int64),
            at_slot(start - 1, "below the range", np.int64),
            at_slot(start + 0.5, "non-integral", np.float64),
            at_slot(math.nan, "NaN", np.float64),
            at_slot(math.inf, "inf", np.float64),
            st.just(("integral floats", valid.astype(np.float64), "valid")),
            st.just(("int32", valid.astype(np.int32), "valid")),
            st.just(("booleans", valid.astype(bool), role.name)),
        ]
        if masks is not None and not masks.all():
            masked = np.argwhere(~masks)

            def masked_off(index: int) -> tuple[str, np.ndarray, str]:
                instance, agent, choice = masked[index]
                array = valid.copy()
                array[instance, agent] = start + choice
                return "masked off", array, f"{role.name}_{agent} in instance {instance}"

            specific.append(st.integers(0, len(masked) - 1).map(masked_off))
        return st.one_of(*common, *specific)

    outside = st.sampled_from(OUTSIDE_VALUES)
    specific = [
        at_slot(math.nan, "NaN", np.float64),
        at_slot(math.inf, "+inf", np.float64),
        at_slot(-math.inf, "-inf", np.float64),
        st.lists(st.tuples(slots, outside), min_size=1, max_size=4).map(
            lambda entries: (
                "outside the box",
                _set_slots(valid.astype(np.float64), entries),
                "valid",
            )
        ),
        st.just(("float64", valid.astype(np.float64), "valid")),
        st.just(("integers", np.rint(valid).astype(np.int64), "valid")),
        st.just(("booleans", valid > 0.5, "valid")),
        st.just(("nested lists", valid.tolist(), "valid")),
    ]
    return st.one_of(*common, *specific)


def _set_slots(array: np.ndarray, entries: list[tuple[tuple[int, int], float]]) -> np.ndarray:
    for slot, value in entries:
        array[slot] = value
    return array


def _equivalent(role: Any, actions: Any) -> np.ndarray:
    """The valid batch that accepted actions must act like: cast, and clipped into a Box."""
    array = np.asarray(actions)
    if role.is_discrete:
        return array.astype(np.int64)
    space = role.action_space
    numbers = array.astype(np.float64)
    return np.clip(numbers, space.low.astype(np.float64), space.high.astype(np.float64)).astype(
        np.float32
    )


def _compare_with_clipping(
    market: Any, result: Any, reference: Any, role: Any, actions: Any, where: str
) -> None:
    assert_same(result.observations, reference.observations, f"{where}: observations")
    assert_same(result.rewards, reference.rewards, f"{where}: rewards")
    assert result.truncated == reference.truncated, f"{where}: truncated"
    assert_same(without_clip_counts(result.infos), without_clip_counts(reference.infos), where)
    clipped = np.zeros((market.num_instances, role.count), dtype=np.int64)
    if not role.is_discrete:
        numbers = np.asarray(actions).astype(np.float64)
        space = role.action_space
        outside = (numbers < space.low) | (numbers > space.high)
        clipped = outside.reshape(market.num_instances, role.count, -1).any(axis=2).astype(np.int64)
    for other in market.roles:
        counted = result.infos[other.name][keys.CLIPPED_ACTIONS]
        before = reference.infos[other.name][keys.CLIPPED_ACTIONS]
        extra = clipped if other.name == role.name else 0
        assert np.array_equal(counted, before + extra), (
            f"{where}: {other.name} clipped counts {counted.tolist()}, expected "
            f"{(before + extra).tolist()}"
        )


def _check_market_unchanged(
    market: Any, untouched: Any, valid: dict[str, np.ndarray], where: str
) -> Any:
    result = market.step(valid)
    expected = untouched.step(valid)
    assert_same(result, expected, f"{where}: the step after the rejected one")
    return result


# ------------------------------------------------------------------------------------------------
# The vector face: batches with the wrong number of instances


@pytest.mark.parametrize("instances", [1, NUM_INSTANCES + 1], ids=["one", "one more"])
@pytest.mark.parametrize("name", vector_env_names())
def test_batched_market_checks_instance_count(name: str, instances: int) -> None:
    market = registry.market_class(name)(num_instances=NUM_INSTANCES, max_cycles=3)
    market.seed(instance_seeds(0, NUM_INSTANCES))
    market.reset()
    valid = valid_market_actions(market, np.random.default_rng(0))
    untouched = copy.deepcopy(market)

    for role in market.roles:
        batch = valid[role.name]
        wrong = np.concatenate([batch] * instances)[:instances]
        with pytest.raises(ValueError) as caught:
            market.step({**valid, role.name: wrong})
        assert role.name in str(caught.value), f"{name}: {instances} instances: {caught.value}"
        _check_market_unchanged(market, untouched, valid, f"{name} {role.name} {instances}")
        untouched = copy.deepcopy(market)


# ------------------------------------------------------------------------------------------------
# The vector face: the stable-baselines3 VecEnv of each role


@pytest.mark.parametrize("case", fuzz_cases(vector_only=True))
def test_role_vec_env_adversarial_actions(case: tuple[str, dict[str, Any]]) -> None:
    pytest.importorskip("stable_baselines3")

    # Each example plays two episodes; the reference solvers make them slow.
    @settings(fuzz_settings(case), max_examples=1 if case[1].get("reference") else 4)
    @given(data=st.data())
    def play(data: Any) -> None:
        _play_role_vec_env(case, data)

    play()


def _play_role_vec_env(case: tuple[str, dict[str, Any]], data: Any) -> None:
    from ledgerzoo.envs.core.vector import RoleVecEnv

    name, kwargs = case
    market = registry.market_class(name)(num_instances=NUM_INSTANCES, **kwargs)
    role = data.draw(st.sampled_from(market.roles), label="role")
    others = {other.name: _idle_policy(other) for other in market.roles if other is not role}
    venv = RoleVecEnv(market, role.name, others)
    seed = data.draw(SEEDS, label="seed")
    venv.seed(seed)
    observations = venv.reset()
    rng = np.random.default_rng(seed)

    # Two episodes, so that the automatic reset at the horizon is covered.
    for step in range(2 * market.max_cycles):
        where = f"{name} {kwargs} {role.name} seed {seed} step {step}"
        _check_slots(venv, observations, where)
        valid = _valid_slot_actions(venv, rng)
        untouched = copy.deepcopy(venv)
        corrupt = data.draw(st.booleans(), label="corrupt")
        if corrupt:
            slot = data.draw(st.integers(0, venv.num_envs - 1), label="slot")
            bad = valid.astype(np.float64)
            bad[slot] = math.nan
            instance, agent = divmod(slot, role.count)
            venv.step_async(bad)
            with pytest.raises(ValueError) as caught:
                venv.step_wait()
            expected = f"{role.name}_{agent} in instance {instance}"
            assert expected in str(caught.value), f"{where}: {caught.value}"
            result = venv.step(valid)
            assert_same(result, untouched.step(valid), f"{where}: the step after a NaN")
        else:
            result = venv.step(valid)
        observations, rewards, dones, infos = result
        assert np.isfinite(rewards).all(), f"{where}: rewards {rewards}"
        # All instances share the horizon, so every slot is done at once.
        assert dones.all() or not dones.any(), f"{where}: dones {dones}"
        for info in infos:
            if "terminal_observation" in info:
                check_observation(venv.observation_space, info["terminal_observation"], where)


def _idle_policy(role: Any) -> Any:
    """A deterministic frozen policy: the first allowed choice, or the middle of the Box."""
    start = int(role.action_space.start) if role.is_discrete else 0

    def act(observations: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        batch, count = observations.shape[:2]
        if masks is not None:
            return np.argmax(masks, axis=2) + start
        if role.is_discrete:
            return np.full((batch, count), start, dtype=np.int64)
        return np.full((batch, count, *role.action_space.shape), 0.5, dtype=np.float32)

    return act


def _valid_slot_actions(venv: Any, rng: np.random.Generator) -> np.ndarray:
    """Valid actions of every slot of a RoleVecEnv, from the market's own draw."""
    actions = valid_market_actions(venv.market, rng)[venv.role.name]
    return actions.reshape(venv.num_envs, *venv.role.action_space.shape)


def _check_slots(venv: Any, observations: np.ndarray, where: str) -> None:
    assert observations.shape == (venv.num_envs, *venv.observation_space.shape), where
    for slot, observation in enumerate(observations):
        check_observation(venv.observation_space, observation, f"{where}: slot {slot}")
