"""PettingZoo API and seeding tests for every registered env and each variant it offers.

The upstream checks (parallel_api_test, api_test, the seed tests, max_cycles_test) run first.
Because parallel_api_test never checks observations against observation_space and the seed
tests stop after the first step (pettingzoo 1.27), the tests below check containment, dtypes,
dict keys and full-episode determinism themselves.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
import pytest
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    seed_test,
    state_test,
)

import ledgerzoo
from ledgerzoo import registry

# Advisories of pettingzoo's api_test that describe deliberate choices of these envs:
# unbounded observation entries (amounts in coins) and roles with different observation sizes.
API_ADVISORIES = (
    "ignore:Agent's maximum observation space value is infinity:UserWarning",
    "ignore:Agent's minimum observation space value is -infinity:UserWarning",
    "ignore:Agents have different observation space sizes:UserWarning",
    "ignore:Agents have different action space sizes:UserWarning",
    "ignore:Observations are different shapes:UserWarning",
    "ignore:Observation numpy array is all zeros.:UserWarning",
)
SEED = 20240607
OTHER_SEED = 7


# Arguments under which a masked market allows every choice, by env name.
UNMASKED_KWARGS: dict[str, dict[str, Any]] = {
    # Every device within reach of every edge: no route is unreachable.
    "offloading_v0": {"scenario": {"edge_range": 1e4}},
}
# Arguments of variants that mask choices whatever the scenario.
UNMASKED_CONFLICTS = ("device_balance",)


def unmasked_variant(env_variant: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Return a variant whose actions are never masked, for PettingZoo's checks that sample
    actions without masks (parallel_seed_test, max_cycles_test and state_test in pettingzoo
    1.27). Our own tests sample with the masks and cover the masked variants."""
    name, kwargs = env_variant
    if not getattr(registry.market_class(name), "masked_roles", ()):
        return name, kwargs
    if any(key in kwargs for key in UNMASKED_CONFLICTS):
        pytest.skip("this variant masks choices on purpose")
    return name, {**kwargs, **UNMASKED_KWARGS[name]}


def observation_vector(observation: Any) -> np.ndarray:
    """Return an observation's vector: the ``observation`` entry of a Dict observation."""
    if isinstance(observation, Mapping):
        return np.asarray(observation["observation"])
    return np.asarray(observation)


def make_variant(env_variant: tuple[str, dict[str, Any]], **extra: Any) -> Any:
    name, kwargs = env_variant
    return ledgerzoo.make(name, **{**kwargs, **extra})


def steps_per_round(name: str, kwargs: Mapping[str, Any]) -> int:
    """Two parallel steps per round when the market has a leaders' and a followers' step."""
    market = registry.market_class(name)(num_instances=1, **kwargs)
    return 2 if market.two_phase else 1


def assert_same(first: Any, second: Any, where: str) -> None:
    """Assert that two step results are identical, naming ``where`` and both values."""
    if isinstance(first, Mapping):
        assert isinstance(second, Mapping), f"{where}: {first!r} vs {second!r}"
        assert set(first) == set(second), f"{where}: keys {sorted(first)} vs {sorted(second)}"
        for key in first:
            assert_same(first[key], second[key], f"{where}[{key!r}]")
        return
    if isinstance(first, (tuple, list)):
        assert type(first) is type(second), f"{where}: {first!r} vs {second!r}"
        assert len(first) == len(second), f"{where}: lengths {len(first)} vs {len(second)}"
        for index, (left, right) in enumerate(zip(first, second, strict=True)):
            assert_same(left, right, f"{where}[{index}]")
        return
    if isinstance(first, np.ndarray) or isinstance(second, np.ndarray):
        first_array, second_array = np.asarray(first), np.asarray(second)
        assert first_array.dtype == second_array.dtype, (
            f"{where}: dtype {first_array.dtype} vs {second_array.dtype}"
        )
        assert np.array_equal(first_array, second_array, equal_nan=True), (
            f"{where}: {first_array.tolist()} vs {second_array.tolist()}"
        )
        return
    assert type(first) is type(second), f"{where}: {first!r} vs {second!r}"
    both_nan = isinstance(first, float) and np.isnan(first) and np.isnan(second)
    assert both_nan or first == second, f"{where}: {first!r} vs {second!r}"


def play_episode(
    env: Any, seed: int | None, action_seed: int, sample_actions: Callable[..., dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Reset with ``seed`` and play random actions to the end; returns every step's output."""
    rng = np.random.default_rng(action_seed)
    observations, infos = env.reset(seed=seed)
    record: list[tuple[Any, ...]] = [(observations, infos)]
    while env.agents:
        actions = sample_actions(env, rng, observations)
        result = env.step(actions)
        observations = result[0]
        record.append(result)
    return record


# --------------------------------------------------------------------------------------------
# PettingZoo's own checks.


@pytest.mark.filterwarnings(*API_ADVISORIES)
def test_parallel_api_passes(env_variant):
    parallel_api_test(make_variant(env_variant), num_cycles=100)


@pytest.mark.filterwarnings(*API_ADVISORIES)
def test_aec_api_passes(env_variant):
    name, kwargs = env_variant
    api_test(registry.spec(name).load().env(**kwargs), num_cycles=100)


def test_parallel_seed_test_passes(env_variant):
    name, kwargs = unmasked_variant(env_variant)
    parallel_seed_test(lambda: ledgerzoo.make(name, **kwargs))


def test_aec_seed_test_passes(env_variant):
    name, kwargs = env_variant
    module = registry.spec(name).load()
    seed_test(lambda: module.env(**kwargs))


def test_max_cycles_test_passes(env_name):
    name, kwargs = unmasked_variant((env_name, {}))
    module = registry.spec(name).load()
    # max_cycles_test builds the env from a module; this one adds the unmasking arguments.
    shim = types.SimpleNamespace(
        env=functools.partial(module.env, **kwargs),
        parallel_env=functools.partial(module.parallel_env, **kwargs),
    )
    max_cycles_test(shim)


# --------------------------------------------------------------------------------------------
# Determinism over whole episodes.


def test_same_seed_same_episode(env_variant, sample_actions):
    first = play_episode(make_variant(env_variant), SEED, 1, sample_actions)
    second = play_episode(make_variant(env_variant), SEED, 1, sample_actions)

    assert len(first) == len(second), f"episode lengths {len(first) - 1} vs {len(second) - 1}"
    labels = ("observations", "rewards", "terminations", "truncations", "infos")
    assert_same(first[0][0], second[0][0], "reset observations")
    assert_same(first[0][1], second[0][1], "reset infos")
    for step, (left, right) in enumerate(zip(first[1:], second[1:], strict=True)):
        for label, value, other in zip(labels, left, right, strict=True):
            assert_same(value, other, f"step {step} {label}")


def test_different_seed_different_episode(env_variant, sample_actions):
    first = play_episode(make_variant(env_variant), SEED, 1, sample_actions)
    second = play_episode(make_variant(env_variant), OTHER_SEED, 1, sample_actions)

    def differs(left: Any, right: Any) -> bool:
        try:
            assert_same(left, right, "")
        except AssertionError:
            return True
        return False

    assert differs(first[0][0], second[0][0]), "seeds gave identical reset observations"
    assert any(
        differs(left[1], right[1]) for left, right in zip(first[1:], second[1:], strict=False)
    ), f"seeds {SEED} and {OTHER_SEED} gave identical rewards at every step"


def test_reset_with_seed_replays_episode(env_variant, sample_actions):
    env = make_variant(env_variant)
    first = play_episode(env, SEED, 1, sample_actions)
    play_episode(env, None, 2, sample_actions)
    again = play_episode(env, SEED, 1, sample_actions)

    assert len(first) == len(again)
    for step, (left, right) in enumerate(zip(first, again, strict=True)):
        assert_same(left, right, f"step {step - 1} (step -1 is the reset)")


def test_unseeded_reset_continues_generator(env_variant):
    env = make_variant(env_variant)
    first = env.reset(seed=SEED)[0]
    second = env.reset()[0]

    with pytest.raises(AssertionError):
        assert_same(first, second, "reset observations")


# --------------------------------------------------------------------------------------------
# Observations, dict keys and the horizon.


def test_observations_inside_space(env_variant, sample_actions):
    env = make_variant(env_variant)
    rng = np.random.default_rng(3)
    observations, _ = env.reset(seed=SEED)
    step = -1  # the reset
    while True:
        for agent, observation in observations.items():
            space = env.observation_space(agent)
            if isinstance(space, gymnasium.spaces.Dict):
                assert space.contains(observation), f"step {step} {agent}: {observation}"
                mask = observation["action_mask"]
                assert mask.any(), f"step {step} {agent}: every action is masked off"
                space, observation = space["observation"], observation["observation"]
            assert observation.dtype == space.dtype, (
                f"step {step} {agent}: dtype {observation.dtype}, space dtype {space.dtype}"
            )
            assert observation.shape == space.shape, (
                f"step {step} {agent}: shape {observation.shape}, space shape {space.shape}"
            )
            assert space.contains(observation), (
                f"step {step} {agent}: observation {observation.tolist()} outside {space} "
                f"(low {space.low.tolist()}, high {space.high.tolist()})"
            )
        if not env.agents:
            break
        observations = env.step(sample_actions(env, rng, observations))[0]
        step += 1


def test_extreme_actions_keep_observations_inside(env_variant):
    env = make_variant(env_variant)
    observations, _ = env.reset(seed=SEED)
    step = 0
    while env.agents:
        # Alternate every agent between the upper and the lower corner of its action space
        # (the highest and the lowest allowed choice of a Discrete one).
        corner = "high" if step % 2 == 0 else "low"
        actions = {
            agent: extreme_action(env.action_space(agent), observations[agent], corner)
            for agent in env.agents
        }
        observations = env.step(actions)[0]
        for agent, observation in observations.items():
            space = env.observation_space(agent)
            assert space.contains(observation), (
                f"step {step} ({corner} actions) {agent}: observation {observation} outside {space}"
            )
        step += 1


def extreme_action(space: Any, observation: Any, corner: str) -> Any:
    """Return the ``corner`` ("high" or "low") action of a space, within the action mask."""
    if isinstance(space, gymnasium.spaces.Discrete):
        mask = observation["action_mask"] if isinstance(observation, Mapping) else None
        allowed = np.arange(space.n) if mask is None else np.flatnonzero(mask)
        return int(space.start + (allowed[-1] if corner == "high" else allowed[0]))
    return getattr(space, corner)


def test_step_keys_equal_live_agents(env_variant, sample_actions):
    env = make_variant(env_variant)
    rng = np.random.default_rng(4)
    observations, infos = env.reset(seed=SEED)
    assert set(observations) == set(env.agents), f"reset observations {sorted(observations)}"
    assert set(infos) == set(env.agents), f"reset infos {sorted(infos)}"
    step = 0
    labels = ("observations", "rewards", "terminations", "truncations", "infos")
    while env.agents:
        live = set(env.agents)
        result = env.step(sample_actions(env, rng, observations))
        observations = result[0]
        for label, returned in zip(labels, result, strict=True):
            assert set(returned) == live, (
                f"step {step} {label}: keys {sorted(returned)}, live agents {sorted(live)}"
            )
        for agent, info in result[4].items():
            assert isinstance(info, dict), f"step {step} {agent}: info {info!r}"
        for agent, reward in result[1].items():
            assert isinstance(reward, float), f"step {step} {agent}: reward {reward!r}"
            assert np.isfinite(reward), f"step {step} {agent}: reward {reward}"
        step += 1


def test_agents_leave_at_horizon(env_variant, sample_actions):
    name, kwargs = env_variant
    max_cycles = 3
    env = make_variant(env_variant, max_cycles=max_cycles)
    rng = np.random.default_rng(5)
    for episode in range(2):
        observations, _ = env.reset(seed=SEED + episode)
        assert env.agents == env.possible_agents, f"episode {episode}: agents {env.agents}"
        steps = 0
        while env.agents:
            live = list(env.agents)
            observations, _, terminations, truncations, _ = env.step(
                sample_actions(env, rng, observations)
            )
            steps += 1
            if env.agents:
                assert env.agents == live, f"step {steps}: agents {env.agents}, before {live}"
                assert not any(truncations.values()), f"step {steps}: truncations {truncations}"
            else:
                assert all(truncations.values()), f"step {steps}: truncations {truncations}"
            assert not any(terminations.values()), f"step {steps}: terminations {terminations}"
        expected = max_cycles * steps_per_round(name, kwargs)
        assert steps == expected, f"episode {episode}: {steps} steps, expected {expected}"
        with pytest.raises(RuntimeError, match="reset"):
            env.step({})


def test_spaces_same_object_each_call(env_variant):
    env = make_variant(env_variant)
    for agent in env.possible_agents:
        assert env.observation_space(agent) is env.observation_space(agent), agent
        assert env.action_space(agent) is env.action_space(agent), agent
    env.reset(seed=SEED)
    for agent in env.agents:
        assert env.observation_space(agent) is env.observation_space(agent), agent


def test_unknown_agent_space_raises(env_name):
    env = ledgerzoo.make(env_name)
    with pytest.raises(KeyError, match="no_such_agent"):
        env.observation_space("no_such_agent")
    with pytest.raises(KeyError, match="no_such_agent"):
        env.action_space("no_such_agent")


def test_agent_names_follow_role_index(env_variant):
    env = make_variant(env_variant)
    for agent in env.possible_agents:
        role, _, index = agent.rpartition("_")
        assert role and index.isdigit(), f"agent name {agent!r} is not <role>_<index>"


def test_state_matches_observations(env_variant, sample_actions):
    env = make_variant(env_variant)
    if not hasattr(env, "state"):
        pytest.skip("the env defines no global state")
    rng = np.random.default_rng(8)
    observations, _ = env.reset(seed=SEED)
    step = -1  # the reset
    while True:
        expected = np.concatenate(
            [observation_vector(observations[agent]).ravel() for agent in env.possible_agents]
        )
        state = env.state()
        assert np.array_equal(state, expected), (
            f"step {step}: state {state.tolist()} vs observations {expected.tolist()}"
        )
        assert env.state_space.contains(state), f"step {step}: state {state.tolist()}"
        if not env.agents:
            break
        observations = env.step(sample_actions(env, rng, observations))[0]
        step += 1


@pytest.mark.filterwarnings("ignore:Environment's maximum state space value is infinity")
def test_state_test_passes(env_variant):
    name, kwargs = env_variant
    module = registry.spec(name).load()
    if not hasattr(module.raw_env, "state"):
        pytest.skip("the env defines no global state")
    name, kwargs = unmasked_variant((name, kwargs))
    state_test(module.env(**kwargs), module.parallel_env(**kwargs))


# --------------------------------------------------------------------------------------------
# Rendering.


def test_render_mode_defaults_to_none(env_name):
    module = registry.spec(env_name).load()
    parallel = module.parallel_env()
    aec = module.env()
    assert parallel.render_mode is None
    assert parallel.unwrapped.render_mode is None
    assert aec.unwrapped.render_mode is None
    assert aec.render_mode is None


def test_ansi_render_returns_text(env_variant, sample_actions):
    env = make_variant(env_variant, render_mode="ansi")
    assert "ansi" in env.metadata["render_modes"]
    rng = np.random.default_rng(6)
    observations, _ = env.reset(seed=SEED)
    text = env.render()
    assert isinstance(text, str) and text.strip(), f"render after reset gave {text!r}"
    step = 0
    while env.agents:
        observations = env.step(sample_actions(env, rng, observations))[0]
        text = env.render()
        assert isinstance(text, str) and text.strip(), f"step {step}: render gave {text!r}"
        step += 1


def test_human_render_prints_text(env_name, capsys, sample_actions):
    env = ledgerzoo.make(env_name, render_mode="human")
    observations, _ = env.reset(seed=SEED)
    env.step(sample_actions(env, np.random.default_rng(0), observations))
    assert capsys.readouterr().out.strip(), "human render printed nothing during step"
    assert env.render() is None
    assert capsys.readouterr().out.strip(), "human render() printed nothing"


def test_invalid_render_mode_raises(env_name):
    with pytest.raises(ValueError, match="rgb_nonsense"):
        ledgerzoo.make(env_name, render_mode="rgb_nonsense")
