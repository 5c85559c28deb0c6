"""The PettingZoo face of a batched market: a ParallelEnv over one instance (B = 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.market import BatchedMarket, MarketStep

RENDER_MODES = ("ansi", "human")


class MarketParallelEnv(ParallelEnv):
    """A PettingZoo ParallelEnv that steps a :class:`BatchedMarket` of one instance.

    Market envs subclass it, build their market in ``__init__`` and document the market in the
    class docstring. Observations, rewards, truncations and infos are dicts keyed by the agents
    that were live before the step; after the last round every agent leaves ``agents``.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(RENDER_MODES),
        "name": "market",
        "is_parallelizable": True,
    }

    def __init__(self, market: BatchedMarket, render_mode: str | None = None) -> None:
        if market.num_instances != 1:
            raise ValueError(
                f"the PettingZoo face steps one instance, got a market of {market.num_instances}"
            )
        modes = list(self.metadata.get("render_modes", RENDER_MODES))
        if render_mode is not None and render_mode not in modes:
            raise ValueError(
                f"invalid render_mode {render_mode!r}; expected None or one of {modes}"
            )
        self.market = market
        self.render_mode = render_mode
        self.possible_agents = [name for role in market.roles for name in role.agent_names()]
        self.agents: list[str] = []
        self._agent_role: dict[str, tuple[str, int]] = {}
        self._observation_spaces: dict[str, gymnasium.spaces.Space] = {}
        self._action_spaces: dict[str, gymnasium.spaces.Space] = {}
        for role in market.roles:
            space: gymnasium.spaces.Space = role.observation_space
            if role.name in market.masked_roles:
                # As PettingZoo's classic envs do: the observation and the legal actions.
                space = gymnasium.spaces.Dict(
                    {
                        "observation": role.observation_space,
                        "action_mask": gymnasium.spaces.Box(
                            0,
                            1,
                            shape=(int(role.action_space.n),),
                            dtype=np.int8,
                        ),
                    }
                )
            for index, name in enumerate(role.agent_names()):
                self._agent_role[name] = (role.name, index)
                self._observation_spaces[name] = space
                self._action_spaces[name] = role.action_space
        # The space of state(): every agent's observation vector, in possible_agents order.
        agent_spaces = [
            self.market.role(self._agent_role[name][0]).observation_space
            for name in self.possible_agents
        ]
        self.state_space = gymnasium.spaces.Box(
            low=np.concatenate([space.low.ravel() for space in agent_spaces]),
            high=np.concatenate([space.high.ravel() for space in agent_spaces]),
            dtype=np.float32,
        )
        self._last_step: MarketStep | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        """Return the agent's observation space (the same object on every call)."""
        return self._observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        """Return the agent's action space (the same object on every call)."""
        return self._action_spaces[self._check_agent(agent)]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode; with ``seed`` the episode's game parameters are reproducible."""
        if seed is not None:
            self.market.seed([seed])
        observations = self.market.reset()
        self.agents = list(self.possible_agents)
        self._last_step = None
        return self._split_observations(observations), {agent: {} for agent in self.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Play one step: every live agent must give an action (see the class docstring)."""
        if not self.agents:
            raise RuntimeError(
                "no live agents (the env was not reset yet, or its episode is over): call "
                "reset() before step()"
            )
        for agent in actions:
            if agent not in self._agent_role or agent not in self.agents:
                raise KeyError(f"unknown agent {agent!r}; the live agents are {self.agents}")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise KeyError(
                f"missing actions for live agents {missing}; every live agent in "
                f"{self.agents} must act in every step"
            )
        batched = {
            role.name: np.stack(
                [self._agent_action(name, actions[name]) for name in role.agent_names()]
            )[None]
            for role in self.market.roles
        }
        result = self.market.step(batched, agent_names=True)
        self._last_step = result

        live = list(self.agents)
        observations = self._split_observations(result.observations)
        rewards: dict[str, float] = {}
        infos: dict[str, dict[str, Any]] = {}
        for agent in live:
            role_name, index = self._agent_role[agent]
            rewards[agent] = float(result.rewards[role_name][0, index])
            infos[agent] = _agent_info(result.infos.get(role_name, {}), index)
        terminations = dict.fromkeys(live, False)
        truncations = dict.fromkeys(live, result.truncated)
        if result.truncated:
            self.agents = []
        if self.render_mode == "human":
            print(self.render_text())
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        """Return the last round as a text table ("ansi"), or print it ("human")."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() was called without a render_mode; build the env with "
                "render_mode='ansi' or 'human'"
            )
            return None
        text = self.render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def render_text(self) -> str:
        """Format the last step as a text table (the market lays it out)."""
        return self.market.render_text()

    def close(self) -> None:
        """Release resources (none are held)."""

    def state(self) -> np.ndarray:
        """Global state: every agent's observation, concatenated in ``possible_agents`` order."""
        observations = self.market.observe()
        return np.concatenate([observations[role.name][0].ravel() for role in self.market.roles])

    # ----------------------------------------------------------------------------------------

    def _check_agent(self, agent: str) -> str:
        if agent not in self._agent_role:
            raise KeyError(f"unknown agent {agent!r}; the agents are {self.possible_agents}")
        return agent

    def _agent_action(self, agent: str, action: Any) -> np.ndarray:
        space = self._action_spaces[agent]
        array = np.asarray(action)
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"invalid action for {agent}: {action!r} is not numeric; expected values in {space}"
            )
        if isinstance(space, gymnasium.spaces.Discrete):
            if array.dtype.kind == "b":
                raise ValueError(
                    f"invalid action for {agent}: {action!r} is a boolean; expected an integer "
                    f"in {space}"
                )
            if array.shape in ((1,), (1, 1)):
                array = array.reshape(())  # a one-element array is read as its value
        if array.shape != space.shape:
            raise ValueError(
                f"invalid action for {agent}: shape {array.shape} (value {array.tolist()}); "
                f"expected shape {space.shape} in {space}"
            )
        # The market checks the values (ledgerzoo.envs.core.actions).
        return array

    def _split_observations(self, observations: Mapping[str, np.ndarray]) -> dict[str, Any]:
        masks = self.market.action_masks()
        split: dict[str, Any] = {}
        for role in self.market.roles:
            for index, name in enumerate(role.agent_names()):
                observation = observations[role.name][0, index]
                if role.name in self.market.masked_roles:
                    mask = masks[role.name][0, index].astype(np.int8)
                    split[name] = {"observation": observation, "action_mask": mask}
                else:
                    split[name] = observation
        return split


def _agent_info(role_infos: Mapping[str, np.ndarray], index: int) -> dict[str, Any]:
    """Build one agent's info dict from the role's batched info arrays (instance 0)."""
    info: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    for key, values in role_infos.items():
        value = _python_scalar(values[0, index])
        if key.startswith(keys.REFERENCE + "/"):
            reference[key.split("/", 1)[1]] = value
        else:
            info[key] = value
    if reference:
        info[keys.REFERENCE] = reference
    return info


def _python_scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    return value
