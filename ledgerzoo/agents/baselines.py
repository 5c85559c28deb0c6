"""Baseline policies: the analytic equilibrium (an oracle), myopic best response, fixed, random.

The equilibrium and best-response policies read the market behind a ledgerzoo PettingZoo env
(``env.unwrapped.market``), which computes both from the same functions as the env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        for index, name in enumerate(role.agent_names()):
            if name in agents:
                actions[name] = np.asarray(batched[role.name][0, index], dtype=np.float32)
    return actions


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
                batched[role.name] = np.stack([observations[name] for name in names])[None]
        return _split(self.market, self.market.best_response_actions(batched), observations)


class FixedPolicy:
    """Play the same normalized action every step.

    Args:
        env: The env (for its action spaces).
        value: Action value in [0, 1] for every entry of every agent's Box action.
    """

    def __init__(self, env: ParallelEnv, value: float = 0.5) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"invalid fixed action {value}: expected a value in [0, 1]")
        self.env = env
        self.value = float(value)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {
            agent: np.full(self.env.action_space(agent).shape, self.value, dtype=np.float32)
            for agent in observations
        }


class RandomPolicy:
    """Draw every action uniformly from the agent's action space with a seeded generator.

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
        for agent in observations:
            space = self.env.action_space(agent)
            actions[agent] = self.rng.uniform(space.low, space.high).astype(space.dtype)
        return actions
