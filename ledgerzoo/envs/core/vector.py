"""The vector face of a batched market: a stable-baselines3 VecEnv for one role.

The VecEnv has one slot per instance and agent of the role (B x count slots, slot
``b * count + i`` is agent i of instance b), so one SB3 model serves every agent of the role
(parameter sharing). Other roles act inside the step: analytic followers inside the market,
learned roles through the frozen policies given in ``other_policies``. All instances share
the horizon, so every slot is done at once; the VecEnv then resets every instance, returns the
new observations and puts the last ones in ``info["terminal_observation"]`` with
``info["TimeLimit.truncated"] = True``, so that SB3 bootstraps the truncated episode.

Seeding: ``seed(s)`` gives instance b the seed ``instance_seeds(s, B)[b]``
(:mod:`ledgerzoo.envs.core.seeding`); the next reset uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ledgerzoo._extras import require
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.market import BatchedMarket, MarketStep
from ledgerzoo.envs.core.seeding import instance_seeds

_vec_env = require("stable_baselines3.common.vec_env", "the vector env")
VecEnv = _vec_env.VecEnv

#: A frozen policy of another role: observations (B, count, obs_dim) -> actions (B, count, ...).
#: For a role with action masks it is called with the masks (B, count, n) as a second argument.
RolePolicy = Callable[..., np.ndarray]


class _SharedEmptyInfo(dict[str, Any]):
    """The empty info dict that every slot shares in a step where no episode ends.

    SB3 and its wrappers only read these dicts; they write only into the dicts of finished
    episodes, which are fresh. A write into the shared dict raises, because it would appear in
    every slot.
    """

    def _reject(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "RoleVecEnv gives every slot the same empty info dict in a step where no episode "
            "ends; copy it with dict(info) before adding keys"
        )

    __setitem__ = __delitem__ = __ior__ = _reject
    update = setdefault = pop = popitem = clear = _reject


_NO_INFO = _SharedEmptyInfo()


class RoleVecEnv(VecEnv):  # type: ignore[misc, valid-type]
    """A stable-baselines3 VecEnv over every agent of one role of a batched market.

    Args:
        market: The batched market (B instances).
        role: Name of the role that the VecEnv's actions belong to.
        other_policies: Frozen policies of the other roles that act (learned followers or
            leaders), by role name.

    Raises:
        ValueError: If a role that acts in some phase has no policy.
    """

    def __init__(
        self,
        market: BatchedMarket,
        role: str,
        other_policies: Mapping[str, RolePolicy] | None = None,
    ) -> None:
        self.market = market
        self.role = market.role(role)
        self.other_policies = dict(other_policies or {})
        others = [r.name for r in market.roles if r.name != role]
        missing = [name for name in others if name not in self.other_policies]
        if missing:
            example = ", ".join(f"{name!r}: callable" for name in missing)
            raise ValueError(
                f"roles {missing} act in this market but have no policy; pass other_policies="
                f"{{{example}}} or use analytic followers"
            )
        self.render_mode = None
        self._count = self.role.count
        self._pending_seeds: list[int] | None = None
        self._actions: np.ndarray | None = None
        self._observations: dict[str, np.ndarray] = {}
        self.last_step: MarketStep | None = None
        #: The latest market step that settled a round for this role (its infos hold utilities).
        self.settled_step: MarketStep | None = None
        super().__init__(
            market.num_instances * self._count, self.role.observation_space, self.role.action_space
        )

    # ----------------------------------------------------------------------------------------

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Set the instance seeds for the next reset; returns them (one per instance)."""
        self._pending_seeds = instance_seeds(seed, self.market.num_instances)
        return list(self._pending_seeds)

    def reset(self) -> np.ndarray:
        """Reset every instance and return the role's observations (num_envs, obs_dim)."""
        if self._pending_seeds is not None:
            self.market.seed(self._pending_seeds)
            self._pending_seeds = None
        self._observations = self.market.reset()
        self._play_other_roles()
        return self._flatten(self._observations[self.role.name])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_wait() called before step_async()")
        batch = self.market.num_instances
        expected = (self.num_envs, *self.role.action_space.shape)
        if self._actions.size != int(np.prod(expected)):
            shape = self._actions.shape
            self._actions = None
            raise ValueError(
                f"actions of role {self.role.name!r} have shape {shape}; expected {expected} "
                f"(one action per slot in {self.role.action_space})"
            )
        # Discrete actions keep their dtype: the market checks that they are integral.
        own = self._actions.reshape((batch, self._count, *self.role.action_space.shape))
        self._actions = None
        result = self._market_step(own)
        rewards = result.rewards[self.role.name].copy()
        if not result.truncated:
            rewards += self._play_other_roles()
        observations = self._flatten(self._observations[self.role.name])
        flat_rewards = rewards.reshape(-1).astype(np.float32)
        if self.market.round >= self.market.max_cycles:
            dones = np.ones(self.num_envs, dtype=bool)
            infos: list[dict[str, Any]] = [
                {"terminal_observation": observation, "TimeLimit.truncated": True}
                for observation in observations
            ]
            observations = self.reset()
        else:
            dones = np.zeros(self.num_envs, dtype=bool)
            # One shared empty dict for every slot: building B x count dicts per step cost more
            # than the market's step. It rejects writes, so no key can leak between slots.
            infos = [_NO_INFO] * self.num_envs
        return observations, flat_rewards, dones, infos

    def close(self) -> None:
        """Release resources (none are held)."""

    def action_masks(self) -> np.ndarray:
        """Allowed actions of every slot, (num_envs, n) bool, for sb3-contrib's MaskablePPO.

        Raises:
            AttributeError: If the role has no action masks.
        """
        if self.role.name not in self.market.masked_roles:
            raise AttributeError(f"role {self.role.name!r} has no action masks")
        masks = self.market.action_masks()[self.role.name]
        return masks.reshape(self.num_envs, masks.shape[-1])

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "action_masks" and self.role.name not in self.market.masked_roles:
            raise AttributeError(f"role {self.role.name!r} has no action masks")
        value = (
            getattr(self, attr_name)
            if hasattr(self, attr_name)
            else getattr(self.market, attr_name)
        )
        return [value] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.market, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        if method_name == "action_masks":
            # One mask per slot, as sb3-contrib's get_action_masks stacks them.
            masks = self.action_masks()
            return [masks[index] for index in self._indices(indices)]
        result = getattr(self.market, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    # ----------------------------------------------------------------------------------------

    def _market_step(self, own_actions: np.ndarray | None) -> MarketStep:
        """Step the market once with the role's actions (or zeros) and the other roles' policies."""
        actions: dict[str, np.ndarray] = {}
        acting = self.market.acting_roles()
        for role in self.market.roles:
            if role.name == self.role.name and own_actions is not None:
                actions[role.name] = own_actions
            elif role.name in acting and role.name in self.other_policies:
                policy = self.other_policies[role.name]
                observations = self._observations[role.name]
                if role.name in self.market.masked_roles:
                    actions[role.name] = policy(observations, self.market.action_masks()[role.name])
                else:
                    actions[role.name] = policy(observations)
            else:
                actions[role.name] = self._idle_actions(role)
        result = self.market.step(actions)
        self._observations = result.observations
        self.last_step = result
        if keys.UTILITY in result.infos.get(self.role.name, {}):
            self.settled_step = result
        return result

    def _play_other_roles(self) -> np.ndarray:
        """Step while the role does not act; returns the role's rewards collected meanwhile."""
        rewards = np.zeros((self.market.num_instances, self._count))
        while (
            self.role.name not in self.market.acting_roles()
            and self.market.round < self.market.max_cycles
        ):
            result = self._market_step(None)
            rewards += result.rewards[self.role.name]
        return rewards

    def _idle_actions(self, role: Any) -> np.ndarray:
        """Actions for a role whose actions have no effect now: 0, or its first allowed action."""
        actions = role.zero_actions(self.market.num_instances)
        if role.name in self.market.masked_roles:
            actions = np.argmax(self.market.action_masks()[role.name], axis=2) + int(
                role.action_space.start
            )
        return actions

    def _flatten(self, values: np.ndarray) -> np.ndarray:
        return values.reshape(self.num_envs, *values.shape[2:])

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)
