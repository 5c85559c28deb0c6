"""The action contract of every registered env, and of the vector face's validation.

Box actions outside the space are clipped and counted in info[agent]["clipped_actions"], and
float64, integer and boolean actions are cast to float32. NaN, infinite or wrongly shaped
actions raise ValueError naming the agent. An unknown agent, or a live agent without an action,
raises KeyError listing the live agents. A rejected step changes nothing.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledgerzoo

SEED = 11


def _first_box_env() -> str:
    for name in ledgerzoo.list_envs():
        env = ledgerzoo.make(name)
        if any(isinstance(env.action_space(a), gymnasium.spaces.Box) for a in env.possible_agents):
            return name
    raise AssertionError("no registered env has a Box agent in its default build")


FIRST_BOX_ENV = _first_box_env()


def box_agents(env: Any) -> list[str]:
    return [a for a in env.agents if isinstance(env.action_space(a), gymnasium.spaces.Box)]


def discrete_agents(env: Any) -> list[str]:
    return [a for a in env.agents if isinstance(env.action_space(a), gymnasium.spaces.Discrete)]


def allowed_actions(env: Any, agent: str) -> np.ndarray:
    """The Discrete agent's allowed actions now, from its market's action masks."""
    market = env.unwrapped.market
    role, _, index = agent.rpartition("_")
    space = env.action_space(agent)
    masks = market.action_masks()
    if role not in masks:
        return np.arange(space.n) + space.start
    return np.flatnonzero(masks[role][0, int(index)]) + space.start


def middle_actions(env: Any) -> dict[str, Any]:
    """Every live agent plays the middle of its Box (float32), or its lowest allowed choice."""
    actions: dict[str, Any] = {}
    for agent in env.agents:
        space = env.action_space(agent)
        if isinstance(space, gymnasium.spaces.Box):
            actions[agent] = ((space.low + space.high) / 2).astype(np.float32)
        else:
            actions[agent] = np.int64(allowed_actions(env, agent)[0])
    return actions


def reset_env(env_variant: tuple[str, dict[str, Any]]) -> Any:
    name, kwargs = env_variant
    env = ledgerzoo.make(name, **kwargs)
    env.reset(seed=SEED)
    return env


def assert_step_results_equal(first: Any, second: Any, where: str) -> None:
    labels = ("observations", "rewards", "terminations", "truncations", "infos")
    for label, left, right in zip(labels, first, second, strict=True):
        assert left.keys() == right.keys(), f"{where} {label}: {sorted(left)} vs {sorted(right)}"
        for agent in left:
            if label == "observations":
                first, second = left[agent], right[agent]
                if isinstance(first, dict):
                    assert first.keys() == second.keys(), f"{where} {label}[{agent}] keys"
                    for part in first:
                        assert np.array_equal(first[part], second[part]), (
                            f"{where} {label}[{agent}][{part!r}]: {first[part].tolist()} vs "
                            f"{second[part].tolist()}"
                        )
                    continue
                assert np.array_equal(first, second), (
                    f"{where} {label}[{agent}]: {first.tolist()} vs {second.tolist()}"
                )
            elif label == "infos":
                for key in set(left[agent]) | set(right[agent]):
                    first_value = left[agent].get(key)
                    second_value = right[agent].get(key)
                    assert repr(first_value) == repr(second_value), (
                        f"{where} infos[{agent}][{key!r}]: {first_value!r} vs {second_value!r}"
                    )
            else:
                assert left[agent] == right[agent], (
                    f"{where} {label}[{agent}]: {left[agent]!r} vs {right[agent]!r}"
                )


# --------------------------------------------------------------------------------------------
# Invalid actions.


@pytest.mark.parametrize(
    ("case", "make_bad"),
    [
        ("nan", lambda space: np.full(space.shape, np.nan, dtype=np.float32)),
        ("positive infinity", lambda space: np.full(space.shape, np.inf)),
        ("negative infinity", lambda space: np.full(space.shape, -np.inf, dtype=np.float32)),
        ("one nan entry", lambda space: np.where(np.arange(space.shape[-1]) == 0, np.nan, 0.5)),
        ("extra entry", lambda space: np.zeros((*space.shape[:-1], space.shape[-1] + 1))),
        ("scalar", lambda space: np.float32(0.5)),
        ("extra axis", lambda space: np.zeros((1, *space.shape), dtype=np.float32)),
        ("string", lambda space: "half"),
        ("none", lambda space: None),
    ],
)
def test_invalid_action_raises_value_error(env_variant, case, make_bad):
    env = reset_env(env_variant)
    for agent in box_agents(env):
        space = env.action_space(agent)
        actions = middle_actions(env)
        actions[agent] = make_bad(space)
        with pytest.raises(ValueError) as error:
            env.step(actions)
        message = str(error.value)
        assert agent in message, f"{case} action of {agent}: message {message!r}"
        assert "expected" in message, f"{case} action of {agent}: message {message!r}"


def test_nan_message_names_value_and_space(env_variant):
    env = reset_env(env_variant)
    if not box_agents(env):
        pytest.skip("no agent has a Box action space")
    agent = box_agents(env)[-1]
    actions = middle_actions(env)
    actions[agent] = np.full(env.action_space(agent).shape, np.nan)
    with pytest.raises(ValueError) as error:
        env.step(actions)
    message = str(error.value)
    assert "nan" in message, message
    assert str(env.action_space(agent)) in message, message


def test_rejected_step_changes_nothing(env_variant):
    env = reset_env(env_variant)
    fresh = reset_env(env_variant)
    for agent in box_agents(env):
        # Every other Box action is out of the box (it would be clipped and counted).
        actions = {
            other: np.full_like(value, 3.0) if other in box_agents(env) else value
            for other, value in middle_actions(env).items()
        }
        actions[agent] = np.full(env.action_space(agent).shape, np.nan)
        with pytest.raises(ValueError):
            env.step(actions)
    assert_step_results_equal(
        env.step(middle_actions(env)), fresh.step(middle_actions(fresh)), "after rejected steps"
    )


def test_unknown_agent_raises_key_error(env_variant):
    env = reset_env(env_variant)
    actions = middle_actions(env)
    actions["no_such_agent_0"] = actions[env.agents[0]]
    with pytest.raises(KeyError) as error:
        env.step(actions)
    message = str(error.value)
    assert "no_such_agent_0" in message, message
    for agent in env.agents:
        assert agent in message, f"live agent {agent} missing from {message!r}"


def test_missing_agent_raises_key_error(env_variant):
    env = reset_env(env_variant)
    for missing in env.agents:
        actions = middle_actions(env)
        del actions[missing]
        with pytest.raises(KeyError) as error:
            env.step(actions)
        message = str(error.value)
        assert missing in message, message
        for agent in env.agents:
            assert agent in message, f"live agent {agent} missing from {message!r}"


def test_empty_actions_raise_key_error(env_variant):
    env = reset_env(env_variant)
    with pytest.raises(KeyError):
        env.step({})


def test_step_before_reset_raises(env_name):
    env = ledgerzoo.make(env_name)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


# --------------------------------------------------------------------------------------------
# Accepted dtypes and clipping.


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.int32, np.uint8, bool])
def test_other_dtypes_match_float32(env_variant, dtype):
    cast = reset_env(env_variant)
    reference = reset_env(env_variant)
    # Values every dtype represents exactly: the corners of the box (0 and 1 for a unit box).
    for step in range(2):
        corner = "low" if step == 0 else "high"
        actions = {a: getattr(cast.action_space(a), corner) for a in box_agents(cast)}
        if not actions:
            pytest.skip("no agent has a Box action space")
        converted = {agent: np.asarray(value).astype(dtype) for agent, value in actions.items()}
        if not all(np.array_equal(converted[a].astype(np.float32), actions[a]) for a in actions):
            pytest.skip(f"the {corner} corner is not representable in {np.dtype(dtype)}")
        others = {a: v for a, v in middle_actions(cast).items() if a not in actions}
        assert_step_results_equal(
            cast.step({**converted, **others}),
            reference.step({**{a: v.astype(np.float32) for a, v in actions.items()}, **others}),
            f"step {step} with {np.dtype(dtype)} actions",
        )


def test_python_list_actions_accepted(env_variant):
    as_list = reset_env(env_variant)
    reference = reset_env(env_variant)
    actions = middle_actions(as_list)
    assert_step_results_equal(
        as_list.step({agent: value.tolist() for agent, value in actions.items()}),
        reference.step(actions),
        "list actions",
    )


@pytest.mark.parametrize(("outside", "inside"), [(2.5, "high"), (-0.75, "low"), (1e300, "high")])
def test_out_of_box_actions_clipped(env_variant, outside, inside):
    env = reset_env(env_variant)
    reference = reset_env(env_variant)
    agents = box_agents(env)
    if not agents:
        pytest.skip("no agent has a Box action space")
    target = agents[len(agents) // 2]
    expected_count = dict.fromkeys(env.agents, 0)
    for step in range(3):
        actions = middle_actions(env)
        clipped_actions = dict(actions)
        value = np.full(env.action_space(target).shape, outside, dtype=np.float64)
        actions[target] = value
        clipped_actions[target] = getattr(env.action_space(target), inside)
        expected_count[target] += 1

        result = env.step(actions)
        expected = reference.step(clipped_actions)
        for agent in env.possible_agents:
            if agent not in result[4]:
                continue
            count = result[4][agent]["clipped_actions"]
            assert count == expected_count[agent], (
                f"step {step} {agent}: clipped_actions {count}, expected {expected_count[agent]}"
            )
        assert result[1] == expected[1], f"step {step}: rewards {result[1]} vs {expected[1]}"
        for agent in result[0]:
            first, second = result[0][agent], expected[0][agent]
            if isinstance(first, dict):
                first, second = first["observation"], second["observation"]
            assert np.array_equal(first, second), (
                f"step {step} {agent}: {first.tolist()} vs {second.tolist()}"
            )
        if not env.agents:
            break


def test_clipped_count_resets_each_episode(env_variant):
    env = reset_env(env_variant)
    boxes = box_agents(env)
    if not boxes:
        pytest.skip("no agent has a Box action space")
    actions = {
        agent: np.full_like(value, 5.0) if agent in boxes else value
        for agent, value in middle_actions(env).items()
    }
    info = env.step(actions)[4]
    assert all(info[agent]["clipped_actions"] == 1 for agent in boxes), info
    env.reset(seed=SEED)
    info = env.step(middle_actions(env))[4]
    assert all(info[agent]["clipped_actions"] == 0 for agent in info), info


@settings(max_examples=60, deadline=None)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False, width=64),
    index=st.integers(min_value=0, max_value=64),
)
def test_any_finite_action_clipped_like_numpy(value, index):
    # Every env validates actions with the same code, so the first registered env with a Box
    # agent is enough for hypothesis to hunt for values that break the cast and the clip.
    name = FIRST_BOX_ENV
    env = ledgerzoo.make(name)
    reference = ledgerzoo.make(name)
    env.reset(seed=SEED)
    reference.reset(seed=SEED)
    agents = box_agents(env)
    agent = agents[index % len(agents)]
    space = env.action_space(agent)
    actions = middle_actions(env)
    expected_actions = dict(actions)
    actions[agent] = np.full(space.shape, value, dtype=np.float64)
    expected_actions[agent] = np.clip(
        np.full(space.shape, value, dtype=np.float64), space.low, space.high
    ).astype(np.float32)
    outside = bool(np.any((actions[agent] < space.low) | (actions[agent] > space.high)))

    result = env.step(actions)
    expected = reference.step(expected_actions)
    assert result[1] == expected[1], f"action {value!r}: rewards {result[1]} vs {expected[1]}"
    count = result[4][agent]["clipped_actions"]
    assert count == int(outside), f"action {value!r}: clipped_actions {count}"


# --------------------------------------------------------------------------------------------
# Discrete actions and action masks.


@pytest.mark.parametrize(
    ("case", "make_bad"),
    [
        ("above the range", lambda space, masked: space.start + space.n),
        ("below the range", lambda space, masked: space.start - 1),
        ("not an integer", lambda space, masked: space.start + 0.5),
        ("nan", lambda space, masked: np.nan),
        ("two entries", lambda space, masked: np.array([space.start, space.start])),
        ("string", lambda space, masked: "local"),
        ("masked off", lambda space, masked: masked),
    ],
)
def test_invalid_discrete_action_raises(env_variant, case, make_bad):
    env = reset_env(env_variant)
    agents = discrete_agents(env)
    if not agents:
        pytest.skip("no agent has a Discrete action space")
    tested = 0
    for agent in agents:
        space = env.action_space(agent)
        allowed = allowed_actions(env, agent)
        masked = sorted(set(range(space.start, space.start + space.n)) - set(allowed.tolist()))
        if case == "masked off" and not masked:
            continue
        actions = middle_actions(env)
        actions[agent] = make_bad(space, masked[0] if masked else None)
        with pytest.raises(ValueError) as error:
            env.step(actions)
        message = str(error.value)
        assert agent in message, f"{case} action of {agent}: message {message!r}"
        tested += 1
    if tested == 0:
        pytest.skip(f"no agent has a {case} action here")


def test_discrete_integral_floats_accepted(env_variant):
    env = reset_env(env_variant)
    reference = reset_env(env_variant)
    agents = discrete_agents(env)
    if not agents:
        pytest.skip("no agent has a Discrete action space")
    actions = middle_actions(env)
    as_floats = {
        agent: np.float64(value) if agent in agents else value for agent, value in actions.items()
    }
    assert_step_results_equal(
        env.step(as_floats), reference.step(actions), "integral float actions"
    )
