"""A single-agent Gymnasium face for markets where one role acts and the others are analytic.

:class:`SingleAgentMarketEnv` wraps a one-role :class:`~ledgerzoo.envs.core.market.BatchedMarket`
of one instance as a plain ``gymnasium.Env``, so the leader's side of a market with analytic
followers can be trained with any single-agent library. It steps the same market as the
PettingZoo and vector faces.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from ledgerzoo.envs.core.market import BatchedMarket
from ledgerzoo.envs.core.parallel import RENDER_MODES, _agent_info


class SingleAgentMarketEnv(gymnasium.Env):
    """A gymnasium.Env over the only acting role of a one-instance market with one agent.

    Args:
        market: A market of one instance whose only role has one agent (analytic followers).
        render_mode: None, "ansi" or "human".

    Raises:
        ValueError: If the market has several roles, several agents in its role, or several
            instances.
    """

    metadata = {"render_modes": list(RENDER_MODES)}  # noqa: RUF012 (gymnasium declares it per instance)

    def __init__(self, market: BatchedMarket, render_mode: str | None = None) -> None:
        if market.num_instances != 1:
            raise ValueError(f"expected a market of one instance, got {market.num_instances}")
        if market.masked_roles:
            raise ValueError(
                f"{market.name} has action masks, which a plain gymnasium.Env cannot pass on; "
                "use the PettingZoo env, or the vector env with sb3-contrib's MaskablePPO"
            )
        if len(market.roles) != 1 or market.roles[0].count != 1:
            roles = {role.name: role.count for role in market.roles}
            raise ValueError(
                f"a single-agent env needs one role with one agent, got roles {roles}; build "
                "the market with analytic followers"
            )
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"invalid render_mode {render_mode!r}; expected None or one of {list(RENDER_MODES)}"
            )
        self.market = market
        self.role = market.roles[0]
        self.observation_space = self.role.observation_space
        self.action_space = self.role.action_space
        self.render_mode = render_mode
        self._started = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; with ``seed`` the episode's game parameters are reproducible."""
        super().reset(seed=seed)
        if seed is not None:
            self.market.seed([seed])
        observations = self.market.reset()
        self._started = True
        return observations[self.role.name][0, 0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Play one round: the agent's action, then the analytic followers' response."""
        if not self._started:
            raise RuntimeError("call reset() before step(), and again after the episode ends")
        array = np.asarray(action)
        if array.dtype.kind not in "biuf" or array.shape != self.action_space.shape:
            raise ValueError(
                f"invalid action {action!r}: expected shape {self.action_space.shape} in "
                f"{self.action_space}"
            )
        result = self.market.step({self.role.name: array[None, None]}, agent_names=True)
        observation = result.observations[self.role.name][0, 0]
        reward = float(result.rewards[self.role.name][0, 0])
        info = _agent_info(result.infos.get(self.role.name, {}), 0)
        if result.truncated:
            self._started = False
        if self.render_mode == "human":
            print(self.market.render_text())
        return observation, reward, False, result.truncated, info

    def render(self) -> str | None:
        """Return the last round as a text table ("ansi"), or print it ("human")."""
        if self.render_mode is None:
            return None
        text = self.market.render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text
