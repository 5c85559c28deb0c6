"""Tests of the single-agent Gymnasium face: every registered market whose default build has
one acting agent passes gymnasium's and stable-baselines3's env checkers and matches the
PettingZoo face step for step."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ledgerzoo
from ledgerzoo.envs.core.single_agent import SingleAgentMarketEnv


def _accepts(name: str, kwargs: dict[str, object]) -> bool:
    parameters = inspect.signature(ledgerzoo.registry.spec(name).load().raw_env).parameters
    return set(kwargs) <= set(parameters)


SINGLE_AGENT_CASES = [
    (name, kwargs)
    for name in ledgerzoo.list_envs()
    for kwargs in ({}, {"pricing": "differentiated"}, {"n_lenders": 2})
    if _accepts(name, kwargs) and len(ledgerzoo.make(name, **kwargs).possible_agents) == 1
]


def test_some_market_has_single_agent_face() -> None:
    assert SINGLE_AGENT_CASES, "no registered market has a one-agent default build"


@pytest.mark.parametrize(("name", "kwargs"), SINGLE_AGENT_CASES)
def test_single_agent_passes_checkers(name: str, kwargs: dict[str, object]) -> None:
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")

    check_env(ledgerzoo.make_single_agent(name, **kwargs), skip_render_check=True)
    sb3_checker.check_env(ledgerzoo.make_single_agent(name, **kwargs), warn=False)


@pytest.mark.parametrize(("name", "kwargs"), SINGLE_AGENT_CASES)
def test_single_agent_matches_parallel(name: str, kwargs: dict[str, object]) -> None:
    single = ledgerzoo.make_single_agent(name, **kwargs)
    parallel = ledgerzoo.make(name, **kwargs)
    (agent,) = parallel.possible_agents
    rng = np.random.default_rng(5)

    observation, _ = single.reset(seed=11)
    observations, _ = parallel.reset(seed=11)
    np.testing.assert_array_equal(observation, observations[agent])
    step = 0
    while parallel.agents:
        action = rng.random(single.action_space.shape, dtype=np.float32)
        observation, reward, terminated, truncated, _ = single.step(action)
        observations, rewards, _, truncations, _ = parallel.step({agent: action})
        np.testing.assert_array_equal(observation, observations[agent], err_msg=f"step {step}")
        assert reward == rewards[agent], f"step {step}: {reward} vs {rewards[agent]}"
        assert truncated == truncations[agent], f"step {step}: {truncated}"
        assert not terminated, f"step {step}: terminated"
        step += 1


def test_single_agent_rejects_several_agents() -> None:
    with pytest.raises(ValueError, match="one role with one agent"):
        ledgerzoo.make_single_agent("lending_one_to_one_v0")


def test_single_agent_rejects_bad_action() -> None:
    env = ledgerzoo.make_single_agent("lending_one_to_many_v0")
    env.reset(seed=0)

    with pytest.raises(ValueError, match="not finite"):
        env.step(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        env.step(np.zeros(3, dtype=np.float32))


def test_single_agent_is_market_env() -> None:
    env = ledgerzoo.make_single_agent("lending_one_to_many_v0", render_mode="ansi")
    env.reset(seed=1)
    env.step(np.array([0.5], dtype=np.float32))

    assert isinstance(env, SingleAgentMarketEnv)
    assert "borrower utility" in (env.render() or "")
