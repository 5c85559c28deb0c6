"""Policies: the Policy protocol, analytic baselines and adapters for trained models."""

from __future__ import annotations

from typing import Any

from pettingzoo import ParallelEnv

from ledgerzoo.agents.base import Policy, RolePolicies, role_of
from ledgerzoo.agents.baselines import (
    BestResponsePolicy,
    EquilibriumPolicy,
    FixedPolicy,
    RandomPolicy,
)
from ledgerzoo.agents.sb3 import SB3Policy

BASELINES = ("equilibrium", "best_response", "random", "fixed")


def make_baseline(name: str, env: ParallelEnv, seed: int | None = None, **kwargs: Any) -> Policy:
    """Build a baseline policy by name for an env.

    Args:
        name: One of ``equilibrium``, ``best_response``, ``random``, ``fixed``.
        env: The PettingZoo env the policy acts in.
        seed: Seed of the random policy.
        **kwargs: Extra arguments of the policy (``value`` for ``fixed``).

    Raises:
        ValueError: If the name is not a baseline.
    """
    if name == "equilibrium":
        return EquilibriumPolicy(env)
    if name == "best_response":
        return BestResponsePolicy(env)
    if name == "random":
        return RandomPolicy(env, seed=seed)
    if name == "fixed":
        return FixedPolicy(env, **kwargs)
    raise ValueError(f"unknown baseline policy {name!r}; expected one of {list(BASELINES)}")


__all__ = [
    "BASELINES",
    "BestResponsePolicy",
    "EquilibriumPolicy",
    "FixedPolicy",
    "Policy",
    "RandomPolicy",
    "RolePolicies",
    "SB3Policy",
    "make_baseline",
    "role_of",
]
