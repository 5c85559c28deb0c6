"""Tests of the RLlib env wrapper on every registered market variant, and of the pitfalls of
RLlib's PettingZoo wrapper that it guards against.

The backend rejects markets with action masks. Every other variant is wrapped and stepped to
the end of an episode, with its observations checked against their spaces. It is also sampled
by a real RLlib MultiAgentEnvRunner, which rejects observations outside their spaces.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
import pytest
from pettingzoo import ParallelEnv

from ledgerzoo.agents.base import role_of
from ledgerzoo.training import rllib as backend
from ledgerzoo.training.config import config_from_dict
from tests.conftest import sample_action

pytest.importorskip("ray.rllib")

MAX_CYCLES = 3


def layout_or_skip(name: str, kwargs: dict[str, Any]) -> backend.MarketLayout:
    """Return the market's layout, or check the rejection of a masked market and skip."""
    try:
        return backend.market_layout(name, kwargs)
    except ValueError as error:
        assert "action mask" in str(error)
        assert "MaskablePPO" in str(error)
        pytest.skip(f"{name} has action masks, which the RLlib backend rejects")


def test_wrapper_episode(env_variant: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = env_variant
    kwargs = {**kwargs, "max_cycles": MAX_CYCLES}
    layout = layout_or_skip(name, kwargs)
    env = backend.make_rllib_env({"env": name, "kwargs": kwargs})
    market = env.par_env.unwrapped.market
    rng = np.random.default_rng(0)

    assert set(env.observation_spaces) == set(env.par_env.possible_agents)
    assert set(env.action_spaces) == set(env.par_env.possible_agents)
    observations, _ = env.reset(seed=3)
    assert env.agents == env.par_env.agents
    steps = 0
    acted = dict.fromkeys(env.par_env.possible_agents, 0)
    while True:
        for agent, observation in observations.items():
            space = env.get_observation_space(agent)
            assert observation.dtype == space.dtype, agent
            assert space.contains(observation), agent
        roles = {role_of(agent) for agent in observations}
        if env.par_env.agents:
            assert roles == set(market.acting_roles())
        actions = {agent: sample_action(env.get_action_space(agent), rng) for agent in observations}
        for agent in actions:
            acted[agent] += 1
        observations, rewards, terminateds, truncateds, _ = env.step(actions)
        steps += 1
        assert set(rewards) == set(env.par_env.possible_agents)
        if terminateds["__all__"] or truncateds["__all__"]:
            break
        assert steps < MAX_CYCLES * layout.steps_per_round, "the episode did not end"

    agents = [agent for agent in terminateds if agent != "__all__"]
    assert len({terminateds[agent] for agent in agents}) == 1
    assert len({truncateds[agent] for agent in agents}) == 1
    assert truncateds["__all__"]
    assert steps == MAX_CYCLES * layout.steps_per_round
    assert set(observations) == set(env.par_env.possible_agents)
    assert set(acted.values()) == {MAX_CYCLES}


# Each env runner registers its env with gymnasium under the same id (ray 2.60).
@pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-multi-agent-env-v0")
def test_env_runner_samples(env_variant: tuple[str, dict[str, Any]]) -> None:
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    name, kwargs = env_variant
    kwargs = {**kwargs, "max_cycles": MAX_CYCLES}
    layout_or_skip(name, kwargs)
    config = config_from_dict(
        {
            "env": {"name": name, "kwargs": kwargs},
            "train": {"num_instances": 2, "n_steps": 4, "batch_size": 8, "net_arch": [8]},
            "eval": {"skip_rounds": 0},
        }
    )
    layout = backend.check_supported(config)
    env_id = backend.register_rllib_env(name)
    runner = MultiAgentEnvRunner(config=backend.build_algorithm_config(config, layout, env_id))
    try:
        episodes = runner.sample(num_episodes=2)
    finally:
        runner.stop()

    finished = [episode for episode in episodes if episode.is_done]
    assert finished
    for episode in finished:
        assert episode.env_t == MAX_CYCLES * layout.steps_per_round
        for agent, agent_episode in episode.agent_episodes.items():
            assert agent_episode.module_id == role_of(agent)
            # Each agent acts once per round, in its role's step.
            assert len(agent_episode) == MAX_CYCLES, agent


class ShrinkingEnv(ParallelEnv):
    """A ParallelEnv whose first reset leaves one possible agent out, and whose last step
    ends the agents with the flags it is given."""

    metadata: ClassVar[dict[str, Any]] = {"name": "shrinking", "render_modes": []}

    def __init__(self, final_terminated: dict[str, bool] | None = None) -> None:
        self.possible_agents = ["lender_0", "lender_1", "borrower_0"]
        self.agents: list[str] = []
        self.render_mode = None
        self.final_terminated = final_terminated or {}
        self.box = gymnasium.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.resets = 0

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.box

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.box

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.resets += 1
        self.agents = ["lender_0", "lender_1"] if self.resets == 1 else list(self.possible_agents)
        return {agent: self.box.low.copy() for agent in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> Any:
        live = list(self.agents)
        self.agents = []
        terminated = {agent: self.final_terminated.get(agent, False) for agent in live}
        truncated = {agent: not terminated[agent] for agent in live}
        observations = {agent: self.box.low.copy() for agent in live}
        return observations, dict.fromkeys(live, 0.0), terminated, truncated, {a: {} for a in live}


def test_wrapper_spaces_from_possible_agents() -> None:
    env = backend.market_env_class()(ShrinkingEnv())
    assert set(env.observation_spaces) == {"lender_0", "lender_1", "borrower_0"}
    assert set(env.observation_space.spaces) == {"lender_0", "lender_1", "borrower_0"}
    assert env.get_action_space("borrower_0") is env.par_env.box


def test_wrapper_rejects_mixed_end_flags() -> None:
    env = backend.market_env_class()(ShrinkingEnv(final_terminated={"lender_0": True}))
    observations, _ = env.reset()
    with pytest.raises(RuntimeError, match="some agents terminated and others truncated"):
        env.step({agent: env.par_env.box.low for agent in observations})


def test_wrapper_accepts_uniform_end_flags() -> None:
    env = backend.market_env_class()(ShrinkingEnv())
    observations, _ = env.reset()
    _, _, terminateds, truncateds, _ = env.step({a: env.par_env.box.low for a in observations})
    assert truncateds["__all__"]
    assert not terminateds["__all__"]


@pytest.mark.parametrize(
    "space",
    [
        gymnasium.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
        gymnasium.spaces.Box(-2.0, 5.0, shape=(1,), dtype=np.float64),
        gymnasium.spaces.Box(1.0, np.inf, shape=(2,), dtype=np.float32),
        gymnasium.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32),
        gymnasium.spaces.Discrete(4),
        gymnasium.spaces.Discrete(3, start=2),
    ],
)
def test_idle_action_in_space(space: gymnasium.spaces.Space) -> None:
    assert space.contains(backend.idle_action(space))
