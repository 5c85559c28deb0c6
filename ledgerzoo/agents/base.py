"""The Policy protocol: how every agent, learned or analytic, plugs into ledgerzoo.

A policy maps the observations of the live agents (a dict, as a PettingZoo ParallelEnv returns
them) to their actions. The evaluator, the CLI and users' scripts treat every policy alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Anything with ``reset`` and ``act`` is a policy."""

    def reset(self, seed: int | None = None) -> None:
        """Prepare for a new episode; ``seed`` seeds any randomness of the policy."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Return an action for every agent in ``observations``."""


class RolePolicies:
    """Combine one policy per role (agent name prefix) into a single policy.

    Args:
        policies: Role name (``lender``, ``borrower``) -> the policy for that role's agents.
    """

    def __init__(self, policies: Mapping[str, Policy]) -> None:
        if not policies:
            raise ValueError("RolePolicies needs at least one role policy")
        self.policies = dict(policies)

    def reset(self, seed: int | None = None) -> None:
        for policy in self.policies.values():
            policy.reset(seed)

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        actions: dict[str, np.ndarray] = {}
        for role, policy in self.policies.items():
            mine = {agent: obs for agent, obs in observations.items() if role_of(agent) == role}
            if mine:
                actions.update(policy.act(mine))
        missing = sorted(set(observations) - set(actions))
        if missing:
            raise KeyError(
                f"no policy for agents {missing}; RolePolicies has roles {sorted(self.policies)}"
            )
        return actions


def role_of(agent: str) -> str:
    """Return the role of an agent named ``<role>_<index>``."""
    return agent.rsplit("_", 1)[0]
