"""Adapter that makes a trained stable-baselines3 model a :class:`~ledgerzoo.agents.Policy`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ledgerzoo.agents.base import role_of


class SB3Policy:
    """Act with a stable-baselines3 model for every agent of one role (parameter sharing).

    Args:
        model: A trained SB3 model (anything with ``predict``).
        role: The role whose agents the model acts for; other agents are rejected.
        deterministic: Whether to use the mean action (evaluation) or sample.
    """

    def __init__(self, model: Any, role: str, deterministic: bool = True) -> None:
        self.model = model
        self.role = role
        self.deterministic = deterministic

    @classmethod
    def load(
        cls, path: str, role: str, algorithm: str = "PPO", deterministic: bool = True
    ) -> SB3Policy:
        """Load a model saved by SB3 (``algorithm``: PPO, A2C, RecurrentPPO or MaskablePPO)."""
        from ledgerzoo.training.algorithms import load_model

        return cls(load_model(path, algorithm), role, deterministic)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset (recurrent states are not kept between calls)."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        agents = list(observations)
        others = [agent for agent in agents if role_of(agent) != self.role]
        if others:
            raise KeyError(
                f"this SB3 policy acts for role {self.role!r}, not for agents {others}; combine "
                "policies per role with RolePolicies"
            )
        masked = [isinstance(observations[agent], Mapping) for agent in agents]
        if any(masked):
            # Dict observations of a masked role: the model reads the vector, and a
            # MaskablePPO model also gets the masks.
            batch = np.stack([np.asarray(observations[agent]["observation"]) for agent in agents])
            masks = np.stack([np.asarray(observations[agent]["action_mask"]) for agent in agents])
            kwargs = {"action_masks": masks.astype(bool)} if _takes_masks(self.model) else {}
            actions, _ = self.model.predict(batch, deterministic=self.deterministic, **kwargs)
            return {
                agent: np.asarray(action, dtype=np.int64)
                for agent, action in zip(agents, actions, strict=True)
            }
        batch = np.stack([np.asarray(observations[agent]) for agent in agents])
        actions, _ = self.model.predict(batch, deterministic=self.deterministic)
        return {
            agent: np.asarray(action, dtype=np.float32)
            for agent, action in zip(agents, actions, strict=True)
        }


def _takes_masks(model: Any) -> bool:
    """Return whether ``model.predict`` accepts ``action_masks`` (sb3-contrib's MaskablePPO)."""
    import inspect

    return "action_masks" in inspect.signature(model.predict).parameters
