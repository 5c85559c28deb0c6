"""Baseline policies: the analytic equilibrium (an oracle), myopic best response, fixed, random.

The equilibrium and best-response policies read the market behind a ledgerzoo PettingZoo env
(``env.unwrapped.market``), which computes both from the same functions as the env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from ledgerzoo.envs.core.market import BatchedMarket


def _market(env: ParallelEnv) -> BatchedMarket:
    market = getattr(getattr(env, "unwrapped", env), "market", None)
    if not isinstance(market, BatchedMarket):
        raise TypeError(
            f"{type(env).__name__} is not a ledgerzoo market env (it has no .market); build it "
            "with ledgerzoo.make()"
        )
    return market


def _split(
    market: BatchedMarket, batched: Mapping[str, np.ndarray], agents: Any
) -> dict[str, np.ndarray]:
    actions: dict[str, np.ndarray] = {}
    for role in market.roles:
        if role.name not in batched:
            continue
        dtype = np.int64 if role.is_discrete else np.float32
        for index, name in enumerate(role.agent_names()):
            if name in agents:
                actions[name] = np.asarray(batched[role.name][0, index], dtype=dtype)
    return actions


def _vector(observation: Any) -> np.ndarray:
    """Return the observation vector of an agent (the ``observation`` entry of a Dict one)."""
    if isinstance(observation, Mapping):
        return np.asarray(observation["observation"])
    return np.asarray(observation)


def _legal_actions(observation: Any, space: Any) -> np.ndarray:
    """Return the allowed actions of a Discrete agent: those of its mask, or every one."""
    if isinstance(observation, Mapping) and "action_mask" in observation:
        return np.flatnonzero(np.asarray(observation["action_mask"])) + int(space.start)
    return np.arange(int(space.n)) + int(space.start)


class EquilibriumPolicy:
    """Play the analytic equilibrium of the current episode (an oracle, because it reads
    every private parameter through the env).

    Args:
        env: A ledgerzoo PettingZoo env; the policy acts in this env only.
    """

    def __init__(self, env: ParallelEnv) -> None:
        self.market = _market(env)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the equilibrium is read from the env each step."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return _split(self.market, self.market.equilibrium_actions(), observations)


class BestResponsePolicy:
    """Play the myopic best response to last round's public ledger data, from observations.

    Args:
        env: A ledgerzoo PettingZoo env (only its market's observation layout is used).
    """

    def __init__(self, env: ParallelEnv) -> None:
        self.market = _market(env)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the policy is a function of the observation."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        batched: dict[str, np.ndarray] = {}
        for role in self.market.roles:
            names = role.agent_names()
            if all(name in observations for name in names):
                batched[role.name] = np.stack([_vector(observations[name]) for name in names])[None]
        return _split(self.market, self.market.best_response_actions(batched), observations)


class FixedPolicy:
    """Play the same normalized action every step.

    Args:
        env: The env (for its action spaces).
        value: Action value in [0, 1] for every entry of every agent's Box action. A Discrete
            agent plays the allowed action nearest to value (n - 1), the lower on a tie.
    """

    def __init__(self, env: ParallelEnv, value: float = 0.5) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"invalid fixed action {value}: expected a value in [0, 1]")
        self.env = env
        self.value = float(value)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        actions: dict[str, np.ndarray] = {}
        for agent, observation in observations.items():
            space = self.env.action_space(agent)
            if isinstance(space, gymnasium.spaces.Discrete):
                legal = _legal_actions(observation, space)
                target = int(space.start) + self.value * (int(space.n) - 1)
                actions[agent] = np.asarray(legal[np.argmin(np.abs(legal - target))])
            else:
                actions[agent] = np.full(space.shape, self.value, dtype=np.float32)
        return actions


class RandomPolicy:
    """Draw every action uniformly from the agent's action space with a seeded generator
    (from its allowed actions, for a Discrete agent with an action mask).

    Args:
        env: The env (for its action spaces).
        seed: Seed of the generator; ``reset(seed)`` reseeds it.
    """

    def __init__(self, env: ParallelEnv, seed: int | None = None) -> None:
        self.env = env
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        actions: dict[str, np.ndarray] = {}
        for agent, observation in observations.items():
            space = self.env.action_space(agent)
            if isinstance(space, gymnasium.spaces.Discrete):
                actions[agent] = np.asarray(self.rng.choice(_legal_actions(observation, space)))
            else:
                actions[agent] = self.rng.uniform(space.low, space.high).astype(space.dtype)
        return actions
