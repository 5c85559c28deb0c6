"""The batched market: the one math core that both env faces step.

A :class:`BatchedMarket` contains B independent instances of one market and steps them together
with arrays of shape (B, n_agents_of_role, ...). The PettingZoo env is a B = 1 view of it
(:mod:`ledgerzoo.envs.core.parallel`) and the stable-baselines3 VecEnv is a per-role view of it
(:mod:`ledgerzoo.envs.core.vector`). Every instance of a market starts its episodes together
and has the same horizon, so the round and the phase are shared by all instances.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.actions import validate_box_actions, validate_discrete_actions
from ledgerzoo.envs.core.params import MAX_ROUNDS, describe_value, integer_count, to_float

FOLLOWER_MODES = ("analytic", "learned")


@dataclass(frozen=True)
class Role:
    """One role of a market: its agents share spaces and, in training, a policy.

    Attributes:
        name: Role name, the prefix of its agents' names (``lender`` gives lender_0, ...).
        count: Number of agents of the role.
        observation_space: Observation space of one agent.
        action_space: Action space of one agent: a float32 Box, or a Discrete choice.
    """

    name: str
    count: int
    observation_space: gymnasium.spaces.Box
    # A Box or a Discrete space. Typed Any because code reads the attributes of either kind
    # after checking is_discrete.
    action_space: Any

    def agent_names(self) -> list[str]:
        """Names of the role's agents, ``<role>_<index>``."""
        return [f"{self.name}_{index}" for index in range(self.count)]

    @property
    def is_discrete(self) -> bool:
        """Whether the role's actions are Discrete choices (else Box vectors)."""
        return isinstance(self.action_space, gymnasium.spaces.Discrete)

    def zero_actions(self, batch: int) -> np.ndarray:
        """Actions of B instances that fill in for a role that does not act: 0 everywhere."""
        if self.is_discrete:
            return np.full((batch, self.count), int(self.action_space.start), dtype=np.int64)
        return np.zeros((batch, self.count, *self.action_space.shape), dtype=np.float32)


def write_entry(
    observation: np.ndarray,
    index: int | slice,
    values: Any,
    space: gymnasium.spaces.Box,
) -> None:
    """Write float64 values into entry ``index`` of float32 observations, inside ``space``.

    The values are cast to float32 and clipped into the entry's bounds, the result
    :func:`ledgerzoo.envs.core.spaces.to_space` gives for the whole observation, but written one
    entry at a time: with scalar bounds numpy clips a whole column in one pass, while clipping
    (B, count, D) against (D,) bounds runs one short inner loop per agent.

    Args:
        observation: Observations (B, count, D), float32, written in place.
        index: The entry, or a slice of entries whose bounds are all equal.
        values: Values broadcastable to ``observation[..., index]``.
        space: The observation space of one agent, whose bounds apply.
    """
    low, high = space.low[index], space.high[index]
    if isinstance(index, slice):
        if np.any(low != low[0]) or np.any(high != high[0]):
            raise ValueError(
                f"observation entries {index} have different bounds; write them one by one"
            )
        low, high = low[0], high[0]
    values = np.asarray(values)
    target = observation[..., index]
    if values.ndim == 0:
        target[...] = np.clip(values.astype(np.float32), low, high)
        return
    # Clipping in float64 and casting the result equals casting first and clipping, because
    # the bounds are float32 values and the cast is monotonic. It saves a float32 copy.
    np.clip(values, low, high, out=target)


@dataclass
class MarketStep:
    """Result of one step of a batched market.

    Attributes:
        observations: Role name -> array (B, count, obs_dim), float32.
        rewards: Role name -> array (B, count), float64, already multiplied by the reward scale.
        truncated: Whether the episode reached ``max_cycles`` rounds (all instances at once).
        infos: Role name -> key -> array (B, count) of the step's economic quantities, under
            the names of :mod:`ledgerzoo.envs.core.keys`. Reference values sit under
            ``reference/<key>`` when the market was built with ``reference=True``.
    """

    observations: dict[str, np.ndarray]
    rewards: dict[str, np.ndarray]
    truncated: bool
    infos: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


class BatchedMarket(ABC):
    """B instances of one market, stepped together.

    Subclasses define the roles, sample each episode's game parameters from their scenario,
    and implement :meth:`_reset_episode` and :meth:`_step_phase`. This base class owns the
    per-instance random generators, the round and phase counters, action validation and the
    count of clipped actions.

    Args:
        num_instances: Number of instances B (>= 1).
        max_cycles: Rounds per episode, in [1, 10**7] (MAX_ROUNDS).
        two_phase: Whether a round has a leaders' step and a followers' step (learned followers).
        reward_scale: Factor applied to rewards for learning; infos always carry unscaled utilities.
    """

    #: Registry name of the market, for example ``lending_one_to_one_v0``.
    name: str = ""
    #: Roles whose posted rates count in the evaluator's rate error (their decisions are rates).
    rate_roles: tuple[str, ...] = ()
    #: Discrete roles with action masks: :meth:`action_masks` returns theirs, and the
    #: PettingZoo face gives their agents Dict observations with an ``action_mask``.
    masked_roles: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        num_instances: int,
        max_cycles: int,
        two_phase: bool,
        reward_scale: float,
    ) -> None:
        if isinstance(num_instances, bool) or not isinstance(num_instances, (int, np.integer)):
            raise TypeError(f"num_instances must be an int, got {num_instances!r}")
        if num_instances < 1:
            raise ValueError(f"num_instances must be at least 1, got {num_instances}")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, (int, np.integer)):
            raise TypeError(f"max_cycles must be an int (rounds per episode), got {max_cycles!r}")
        if max_cycles < 1:
            raise ValueError(f"max_cycles must be at least 1 round, got {max_cycles}")
        integer_count(
            "max_cycles", max_cycles, minimum=1, maximum=MAX_ROUNDS, unit="rounds per episode"
        )
        if isinstance(reward_scale, bool) or not isinstance(
            reward_scale, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"reward_scale must be a number above 0, got {reward_scale!r}")
        # to_float turns a Python int beyond the float range into inf, rejected here.
        scale = to_float(reward_scale)
        if not np.isfinite(scale) or scale <= 0.0:
            raise ValueError(
                f"reward_scale must be a finite number above 0, got {describe_value(reward_scale)}"
            )
        reward_scale = scale
        self.num_instances = int(num_instances)
        self.max_cycles = int(max_cycles)
        self.two_phase = bool(two_phase)
        self.reward_scale = reward_scale
        self.round = 0
        self.phase = keys.LEADERS_PHASE
        self._generators = [np.random.default_rng() for _ in range(self.num_instances)]
        self._clipped: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------------------
    # What subclasses provide.

    @property
    @abstractmethod
    def roles(self) -> tuple[Role, ...]:
        """The market's roles, in the order their agents are listed."""

    @abstractmethod
    def acting_roles(self) -> tuple[str, ...]:
        """Names of the roles whose actions take effect in the current phase."""

    @abstractmethod
    def _reset_episode(self, generators: Sequence[np.random.Generator]) -> None:
        """Draw every instance's game parameters for a new episode and clear its history."""

    @abstractmethod
    def _step_phase(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        """Apply the acting roles' validated actions.

        Returns:
            Unscaled rewards per role (B, count) and the step's infos per role.
        """

    @abstractmethod
    def observe(self) -> dict[str, np.ndarray]:
        """Observations per role, (B, count, obs_dim) float32, inside the observation spaces."""

    @abstractmethod
    def equilibrium_actions(self) -> dict[str, np.ndarray]:
        """Actions per role, (B, count, act_dim), that play the episode's analytic equilibrium
        in the current phase."""

    @abstractmethod
    def best_response_actions(
        self, observations: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Myopic best responses per role computed from observations alone (B, count, act_dim)."""

    def action_masks(self) -> dict[str, np.ndarray]:
        """Allowed actions of the Discrete roles that have masks, (B, count, n) bool per role.

        Markets with masked choices override it; by default no role has a mask.
        """
        return {}

    def render_text(self) -> str:
        """Describe the last step of instance 0 as text; markets override it with a table."""
        return f"{self.name}  round {self.round}/{self.max_cycles}  phase {self.phase}"

    # ----------------------------------------------------------------------------------------
    # Shared machinery.

    def role(self, name: str) -> Role:
        """Look up a role by name."""
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(f"unknown role {name!r}; the roles are {[r.name for r in self.roles]}")

    def seed(self, seeds: Sequence[int | None]) -> None:
        """Reseed every instance's generator (one seed per instance; ``None`` for fresh entropy)."""
        if len(seeds) != self.num_instances:
            raise ValueError(
                f"expected one seed per instance ({self.num_instances}), got {len(seeds)}"
            )
        self._generators = [np.random.default_rng(seed) for seed in seeds]

    def reset(self) -> dict[str, np.ndarray]:
        """Start a new episode in every instance and return the first observations."""
        self.round = 0
        self.phase = keys.LEADERS_PHASE
        self._clipped = {
            role.name: np.zeros((self.num_instances, role.count), dtype=np.int64)
            for role in self.roles
        }
        self._reset_episode(self._generators)
        return self.observe()

    def step(self, actions: Mapping[str, np.ndarray], agent_names: bool = False) -> MarketStep:
        """Step every instance once.

        Args:
            actions: Role name -> actions (B, count, act_dim) for every role, or (B, count)
                integers for a Discrete role. Actions of roles that do not act in this phase
                are validated, against the action masks too, but have no effect.
            agent_names: Whether error messages should name agents without an instance index
                (the PettingZoo face, B = 1).

        Returns:
            The step's observations, scaled rewards, truncation flag and infos.

        Raises:
            KeyError: If a role is missing from ``actions``.
            ValueError: If an action is NaN, infinite or wrongly shaped, or a Discrete action
                is out of range or masked off.
        """
        if self.round >= self.max_cycles:
            raise RuntimeError("the episode is over: call reset() before step()")
        clean: dict[str, np.ndarray] = {}
        clipped: dict[str, np.ndarray] = {}
        masks = self.action_masks()
        for role in self.roles:
            if role.name not in actions:
                raise KeyError(
                    f"missing actions for role {role.name!r}; got roles {sorted(actions)}"
                )
            if role.is_discrete:
                clean[role.name] = validate_discrete_actions(
                    actions[role.name],
                    role,
                    masks.get(role.name),
                    single_instance=agent_names,
                    instances=self.num_instances,
                )
                clipped[role.name] = np.zeros((self.num_instances, role.count), dtype=np.int64)
            else:
                clean[role.name], clipped[role.name] = validate_box_actions(
                    actions[role.name],
                    role,
                    single_instance=agent_names,
                    instances=self.num_instances,
                )
        # Count clipped actions only once every role's actions are valid, so that a rejected
        # step leaves the episode unchanged.
        for name, count in clipped.items():
            self._clipped[name] += count

        acting = self.acting_roles()
        raw_rewards, infos = self._step_phase({name: clean[name] for name in acting})

        phase = self.phase
        round_index = self.round
        if self.two_phase and phase == keys.LEADERS_PHASE:
            self.phase = keys.FOLLOWERS_PHASE
        else:
            self.phase = keys.LEADERS_PHASE
            self.round += 1
        truncated = self.round >= self.max_cycles

        rewards: dict[str, np.ndarray] = {}
        for role in self.roles:
            shape = (self.num_instances, role.count)
            role_infos = infos.setdefault(role.name, {})
            role_infos[keys.ROUND] = np.full(shape, round_index, dtype=np.int64)
            role_infos[keys.PHASE] = np.full(shape, phase, dtype=np.int64)
            role_infos[keys.ACTS] = np.full(shape, role.name in acting)
            role_infos[keys.CLIPPED_ACTIONS] = self._clipped[role.name].copy()
            reward = raw_rewards.get(role.name)
            rewards[role.name] = np.zeros(shape) if reward is None else reward * self.reward_scale
        return MarketStep(
            observations=self.observe(), rewards=rewards, truncated=truncated, infos=infos
        )
