"""Adapter that makes a trained RLlib module a :class:`~ledgerzoo.agents.Policy`.

It acts as RLlib's env runners do with ``explore=False``. The module's ``forward_inference``
gives the parameters of the action distribution, and the distribution's deterministic form
gives the action (the mean of a Gaussian, the most likely choice of a categorical). A Box
action is then mapped from RLlib's normalized range [-1, 1] onto the env's bounds, as RLlib
does with ``normalize_actions=True``, the setting of ledgerzoo's RLlib backend.

Ray and torch are imported only when a policy is built, so this module imports without the
``rllib`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from ledgerzoo._extras import require
from ledgerzoo.agents.base import Policy, RolePolicies, role_of

#: Folder of the learner's modules in a checkpoint of ``Algorithm.save_to_path``, with one
#: subfolder per module id (the checkpoint layout of ray 2.60).
MODULES_FOLDER = Path("learner_group") / "learner" / "rl_module"


class RLlibPolicy:
    """Act with an RLlib RLModule for every agent of one role (parameter sharing).

    Args:
        module: A trained single-agent RLModule of the new API stack (torch).
        role: The role whose agents the module acts for; other agents are rejected.
        deterministic: Whether to take the distribution's deterministic action (evaluation)
            or sample from the exploration distribution.
        normalize_actions: Whether the module's Box actions are normalized to [-1, 1] and
            must be mapped onto the action space's bounds (RLlib's ``normalize_actions``).
    """

    def __init__(
        self,
        module: Any,
        role: str,
        deterministic: bool = True,
        normalize_actions: bool = True,
    ) -> None:
        self.module = module
        self.role = role
        self.deterministic = deterministic
        self.normalize_actions = normalize_actions
        self.action_space = module.action_space
        if isinstance(module.observation_space, gymnasium.spaces.Dict):
            raise ValueError(
                f"the module for role {role!r} reads Dict observations "
                f"({module.observation_space}); RLlibPolicy supports Box observations only"
            )

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike[str],
        role: str,
        deterministic: bool = True,
        normalize_actions: bool = True,
    ) -> RLlibPolicy:
        """Load the module of ``role`` from a checkpoint written by ``Algorithm.save_to_path``.

        Raises:
            ImportError: If the rllib extra is missing (the message names the pip command).
            FileNotFoundError: If the checkpoint has no module with that id.
        """
        rl_module = require("ray.rllib.core.rl_module.rl_module", "loading an RLlib policy")
        path = Path(checkpoint) / MODULES_FOLDER / role
        if not path.is_dir():
            found = (
                sorted(p.name for p in path.parent.iterdir() if p.is_dir())
                if path.parent.is_dir()
                else []
            )
            raise FileNotFoundError(
                f"no module {role!r} in the RLlib checkpoint {str(checkpoint)!r} (expected "
                f"{str(path)!r}); its modules are {found}"
            )
        module = rl_module.RLModule.from_checkpoint(str(path))
        module.eval()
        return cls(module, role, deterministic, normalize_actions)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the module keeps no state between calls."""

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import torch  # present wherever an RLlib module could be loaded

        agents = list(observations)
        others = [agent for agent in agents if role_of(agent) != self.role]
        if others:
            raise KeyError(
                f"this RLlib policy acts for role {self.role!r}, not for agents {others}; "
                "combine policies per role with RolePolicies"
            )
        if not agents:
            return {}
        batch = np.stack([np.asarray(observations[agent], dtype=np.float32) for agent in agents])
        with torch.no_grad():
            inputs = {"obs": torch.from_numpy(batch)}
            if self.deterministic:
                outputs = self.module.forward_inference(inputs)
                distribution_class = self.module.get_inference_action_dist_cls()
            else:
                outputs = self.module.forward_exploration(inputs)
                distribution_class = self.module.get_exploration_action_dist_cls()
            distribution = distribution_class.from_logits(outputs["action_dist_inputs"])
            if self.deterministic:
                distribution = distribution.to_deterministic()
            actions = distribution.sample().cpu().numpy()
        return {
            agent: self._to_env_action(action)
            for agent, action in zip(agents, actions, strict=True)
        }

    def _to_env_action(self, action: np.ndarray) -> np.ndarray:
        """Map one module action onto the action space, as RLlib's module-to-env connector does."""
        space = self.action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            return np.asarray(action, dtype=np.int64).reshape(())
        if not isinstance(space, gymnasium.spaces.Box):
            raise ValueError(
                f"RLlibPolicy supports Box and Discrete actions, not {space} of role {self.role!r}"
            )
        values = np.asarray(action, dtype=np.float64).reshape(space.shape)
        if self.normalize_actions and space.is_bounded("both"):
            # RLlib's unsquash_action: the affine map of [-1, 1] onto [low, high], then clipped.
            values = space.low + (values + 1.0) * (space.high - space.low) / 2.0
            values = np.clip(values, space.low, space.high)
        return values.astype(space.dtype)


def load_rllib_policy(
    checkpoint: str | os.PathLike[str],
    roles: list[str],
    deterministic: bool = True,
    normalize_actions: bool = True,
) -> Policy:
    """Load one :class:`RLlibPolicy` per role from a checkpoint, combined for the whole env.

    Returns:
        The role's policy when there is one role, else a :class:`RolePolicies` of them all.
    """
    policies = {
        role: RLlibPolicy.load(checkpoint, role, deterministic, normalize_actions) for role in roles
    }
    if len(policies) == 1:
        return next(iter(policies.values()))
    return RolePolicies(policies)
