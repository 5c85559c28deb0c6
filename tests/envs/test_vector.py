"""The vector face (a stable-baselines3 VecEnv per role) against the PettingZoo face.

A RoleVecEnv seeded s must reproduce, for each instance b, the PettingZoo env reset with seed
instance_seeds(s, B)[b] and stepped with the same actions, bit for bit, over several episodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="the vector face needs ledgerzoo[train]")

from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor, VecNormalize

import ledgerzoo
from ledgerzoo import registry
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.envs.core.vector import RoleVecEnv
from tests.conftest import LEDGER_VARIANT

# Constructor keywords whose value "learned" makes a second role act (two steps per round).
LEARNED_KEYWORDS = ("followers", "leaders", "bidding")
BATCH = 3
MAX_CYCLES = 4
SEED = 1234

Policy = Callable[[np.ndarray], np.ndarray]


def deterministic_policy(space: gymnasium.spaces.Space) -> Policy:
    """Build a frozen policy whose actions depend on the observation and stay inside ``space``
    (and inside the action masks, for a Discrete space)."""

    def act(observations: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        signal = (np.tanh(observations.astype(np.float64).sum(axis=-1)) + 1.0) / 2.0
        if isinstance(space, gymnasium.spaces.Discrete):
            allowed = np.ones((*signal.shape, space.n), bool) if masks is None else masks
            return pick_allowed(allowed, signal) + space.start
        shape = (*observations.shape[:-1], *space.shape)
        fraction = np.broadcast_to(signal.reshape(*signal.shape, *([1] * len(space.shape))), shape)
        return (space.low + fraction * (space.high - space.low)).astype(np.float32)

    return act


def pick_allowed(masks: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Pick the allowed choice at ``fraction`` of each row's allowed choices, (...) int64."""
    counts = masks.sum(axis=-1)
    position = np.minimum((fraction * counts).astype(np.int64), counts - 1)
    ranks = np.cumsum(masks, axis=-1) - 1
    return np.argmax(masks & (ranks == position[..., None]), axis=-1).astype(np.int64)


def random_actions(venv: RoleVecEnv, rng: np.random.Generator) -> np.ndarray:
    """Draw every slot's action: uniform in a Box, uniform among the allowed Discrete choices."""
    space = venv.action_space
    if isinstance(space, gymnasium.spaces.Discrete):
        masks = venv.action_masks() if venv.role.name in venv.market.masked_roles else None
        allowed = np.ones((venv.num_envs, space.n), bool) if masks is None else masks
        return pick_allowed(allowed, rng.random(venv.num_envs)) + space.start
    actions = rng.uniform(space.low, space.high, (venv.num_envs, *space.shape))
    return actions.astype(np.float32)


def fixed_actions(venv: RoleVecEnv, value: float) -> np.ndarray:
    """Every slot plays ``value`` in its Box, or the allowed choice at that fraction."""
    space = venv.action_space
    if isinstance(space, gymnasium.spaces.Discrete):
        masks = venv.action_masks() if venv.role.name in venv.market.masked_roles else None
        allowed = np.ones((venv.num_envs, space.n), bool) if masks is None else masks
        return pick_allowed(allowed, np.full(venv.num_envs, value)) + space.start
    return np.full((venv.num_envs, *space.shape), value, dtype=np.float32)


def build_vector(
    name: str, role: str, kwargs: dict[str, Any], batch: int = BATCH
) -> tuple[RoleVecEnv, dict[str, Policy]]:
    market = registry.market_class(name)(num_instances=batch, **kwargs)
    policies = {
        other.name: deterministic_policy(other.action_space)
        for other in market.roles
        if other.name != role
    }
    return RoleVecEnv(market, role, other_policies=policies), policies


def first_role(name: str, **kwargs: Any) -> str:
    """Return the role that acts first in a round (the leaders)."""
    market = registry.market_class(name)(num_instances=1, **kwargs)
    market.reset()
    return market.acting_roles()[0]


def learned_kwargs(name: str) -> dict[str, Any]:
    """Return the constructor kwargs that make a market's followers or leaders learned agents."""
    parameters = inspect.signature(registry.market_class(name)).parameters
    for keyword in LEARNED_KEYWORDS:
        if keyword in parameters:
            return {keyword: "learned"}
    pytest.skip(f"{name} has no learned follower or leader variant")


def vector_cases() -> list[Any]:
    """List (env name, role, kwargs) for every vector env, role and follower or leader mode."""
    cases = []
    for name in ledgerzoo.list_envs():
        module = registry.spec(name).load()
        if getattr(module, "market_class", None) is None:
            continue
        variants: list[dict[str, Any]] = [{}]
        parameters = inspect.signature(module.market_class).parameters
        for keyword in LEARNED_KEYWORDS:
            if keyword in parameters:
                variants.append({keyword: "learned"})
                if "ledger" in parameters:
                    ledger_kwargs = {k: v for k, v in LEDGER_VARIANT.items() if k in parameters}
                    variants.append({keyword: "learned", **ledger_kwargs})
        for kwargs in variants:
            market = module.market_class(num_instances=1, **kwargs)
            for role in market.roles:
                label = ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"
                cases.append(
                    pytest.param(name, role.name, kwargs, id=f"{name}-{role.name}-{label}")
                )
    return cases


def vector_of(observation: Any) -> np.ndarray:
    """The observation vector of an agent: the ``observation`` entry of a Dict observation."""
    if isinstance(observation, dict):
        return np.asarray(observation["observation"])
    return np.asarray(observation)


class ParallelMirror:
    """Driver of one PettingZoo env that mirrors how RoleVecEnv drives one instance of its market."""

    def __init__(self, name: str, role: str, kwargs: dict[str, Any], policies: dict[str, Policy]):
        self.env = ledgerzoo.make(name, **kwargs)
        self.role = role
        self.policies = policies
        self.observations: dict[str, np.ndarray] = {}

    def role_agents(self, role: str) -> list[str]:
        return [a for a in self.env.possible_agents if a.rpartition("_")[0] == role]

    def stack(self, role: str, observations: dict[str, Any]) -> np.ndarray:
        return np.stack([vector_of(observations[agent]) for agent in self.role_agents(role)])

    def masks(self, role: str) -> np.ndarray | None:
        first = self.observations[self.role_agents(role)[0]]
        if not isinstance(first, dict):
            return None
        agents = self.role_agents(role)
        return np.stack([self.observations[agent]["action_mask"] for agent in agents]).astype(bool)

    def _step(self, own_actions: np.ndarray | None) -> tuple[float | np.ndarray, bool]:
        market = self.env.market
        acting = market.acting_roles()
        actions: dict[str, Any] = {}
        for role in market.roles:
            agents = self.role_agents(role.name)
            if role.name == self.role and own_actions is not None:
                batch = own_actions
            elif role.name in acting and role.name in self.policies:
                masks = self.masks(role.name)
                observations = self.stack(role.name, self.observations)[None]
                if masks is None:
                    batch = self.policies[role.name](observations)[0]
                else:
                    batch = self.policies[role.name](observations, masks[None])[0]
            elif self.masks(role.name) is not None:
                # As RoleVecEnv does: the first allowed choice.
                batch = np.argmax(self.masks(role.name), axis=1) + role.action_space.start
            else:
                batch = role.zero_actions(1)[0]
            actions.update(zip(agents, batch, strict=True))
        observations, rewards, _, truncations, _ = self.env.step(actions)
        self.observations = observations
        own = np.array([rewards[agent] for agent in self.role_agents(self.role)])
        return own, all(truncations.values())

    def _play_others(self) -> np.ndarray:
        total = np.zeros(len(self.role_agents(self.role)))
        while self.env.agents and self.role not in self.env.market.acting_roles():
            rewards, _ = self._step(None)
            total += rewards
        return total

    def reset(self, seed: int | None) -> np.ndarray:
        self.observations, _ = self.env.reset(seed=seed)
        self._play_others()
        return self.stack(self.role, self.observations)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Step as RoleVecEnv.step_wait does.

        Returns:
            The role's observations, its float32 rewards and whether the episode ended.
        """
        rewards, done = self._step(actions)
        if not done:
            rewards = rewards + self._play_others()
        observations = self.stack(self.role, self.observations)
        return observations, rewards.astype(np.float32), not self.env.agents


# --------------------------------------------------------------------------------------------


def test_registry_has_vector_env():
    assert any(
        getattr(registry.spec(name).load(), "market_class", None) for name in ledgerzoo.list_envs()
    ), "no registered env exposes market_class"


@pytest.mark.parametrize(("name", "role", "kwargs"), vector_cases())
def test_vector_matches_parallel_env(name, role, kwargs):
    kwargs = {**kwargs, "max_cycles": MAX_CYCLES}
    venv, policies = build_vector(name, role, kwargs)
    count = venv.role.count
    venv.seed(SEED)
    observations = venv.reset()
    mirrors = [ParallelMirror(name, role, kwargs, policies) for _ in range(BATCH)]
    seeds = instance_seeds(SEED, BATCH)
    for b, mirror in enumerate(mirrors):
        expected = mirror.reset(seeds[b])
        got = observations[b * count : (b + 1) * count]
        assert np.array_equal(got, expected), (
            f"instance {b} reset: vector {got.tolist()}, parallel {expected.tolist()}"
        )

    rng = np.random.default_rng(0)
    space = venv.action_space
    episodes_done = 0
    del space
    for step in range(2 * MAX_CYCLES + 2):
        actions = random_actions(venv, rng)
        observations, rewards, dones, infos = venv.step(actions)
        for b, mirror in enumerate(mirrors):
            slots = slice(b * count, (b + 1) * count)
            expected_obs, expected_rewards, done = mirror.step(actions[slots])
            assert np.array_equal(rewards[slots], expected_rewards), (
                f"step {step} instance {b}: vector rewards {rewards[slots].tolist()}, "
                f"parallel {expected_rewards.tolist()}"
            )
            assert dones[slots].tolist() == [done] * count, (
                f"step {step} instance {b}: dones {dones[slots].tolist()}, parallel done {done}"
            )
            if done:
                terminal = np.stack(
                    [infos[k]["terminal_observation"] for k in range(*slots.indices(venv.num_envs))]
                )
                assert np.array_equal(terminal, expected_obs), (
                    f"step {step} instance {b}: terminal {terminal.tolist()}, "
                    f"parallel {expected_obs.tolist()}"
                )
                expected_obs = mirror.reset(None)
            assert np.array_equal(observations[slots], expected_obs), (
                f"step {step} instance {b}: vector {observations[slots].tolist()}, "
                f"parallel {expected_obs.tolist()}"
            )
        episodes_done += int(dones.all())
    assert episodes_done == 2, f"expected two auto-resets in {2 * MAX_CYCLES + 2} steps"


@pytest.mark.parametrize(("name", "role", "kwargs"), vector_cases())
def test_horizon_infos_mark_truncation(name, role, kwargs):
    venv, _ = build_vector(name, role, {**kwargs, "max_cycles": MAX_CYCLES})
    venv.seed(SEED)
    venv.reset()
    for step in range(MAX_CYCLES):
        _, _, dones, infos = venv.step(fixed_actions(venv, 0.5))
        last = step == MAX_CYCLES - 1
        assert dones.tolist() == [last] * venv.num_envs, f"step {step}: dones {dones.tolist()}"
        for slot, info in enumerate(infos):
            if last:
                assert info.get("TimeLimit.truncated") is True, f"step {step} slot {slot}: {info}"
                terminal = info["terminal_observation"]
                assert terminal.shape == venv.observation_space.shape, (
                    f"slot {slot}: terminal shape {terminal.shape}"
                )
                assert venv.observation_space.contains(terminal), f"slot {slot}: {terminal}"
            else:
                assert "TimeLimit.truncated" not in info, f"step {step} slot {slot}: {info}"
                assert "terminal_observation" not in info, f"step {step} slot {slot}: {info}"


@pytest.mark.parametrize(("name", "role", "kwargs"), vector_cases())
def test_vector_shapes_and_dtypes(name, role, kwargs):
    venv, _ = build_vector(name, role, {**kwargs, "max_cycles": MAX_CYCLES})
    market_role = venv.market.role(role)
    assert venv.num_envs == BATCH * market_role.count
    assert venv.observation_space == market_role.observation_space
    assert venv.action_space == market_role.action_space
    venv.seed(SEED)
    observations = venv.reset()
    rng = np.random.default_rng(1)
    for step in range(MAX_CYCLES + 2):
        expected_shape = (venv.num_envs, *venv.observation_space.shape)
        assert observations.shape == expected_shape, f"step {step}: {observations.shape}"
        assert observations.dtype == venv.observation_space.dtype, f"step {step}"
        for slot, observation in enumerate(observations):
            assert venv.observation_space.contains(observation), (
                f"step {step} slot {slot}: {observation.tolist()} outside {venv.observation_space}"
            )
        observations, rewards, dones, infos = venv.step(random_actions(venv, rng))
        assert rewards.shape == (venv.num_envs,), f"step {step}: rewards {rewards.shape}"
        assert rewards.dtype == np.float32, f"step {step}: rewards {rewards.dtype}"
        assert np.all(np.isfinite(rewards)), f"step {step}: rewards {rewards.tolist()}"
        assert dones.shape == (venv.num_envs,), f"step {step}: dones {dones.shape}"
        assert dones.dtype == np.bool_, f"step {step}: dones {dones.dtype}"
        assert isinstance(infos, list) and len(infos) == venv.num_envs, f"step {step}: {infos}"
        assert all(isinstance(info, dict) for info in infos), f"step {step}: {infos}"


@pytest.mark.parametrize(("name", "role", "kwargs"), vector_cases())
def test_sb3_wrappers_accept_vector(name, role, kwargs):
    venv, _ = build_vector(name, role, {**kwargs, "max_cycles": MAX_CYCLES})
    wrapped = VecNormalize(VecMonitor(VecCheckNan(venv, raise_exception=True)), gamma=0.9)
    wrapped.seed(SEED)
    wrapped.reset()
    episode_infos = 0
    rng = np.random.default_rng(2)
    for _ in range(MAX_CYCLES * 2):
        infos = wrapped.step(random_actions(venv, rng))[3]
        episode_infos += sum("episode" in info for info in infos)
    assert episode_infos == 2 * venv.num_envs, f"VecMonitor reported {episode_infos} episodes"
    assert wrapped.get_attr("render_mode") == [None] * venv.num_envs
    assert wrapped.env_is_wrapped(gymnasium.Wrapper) == [False] * venv.num_envs
    wrapped.close()


def test_vector_seed_reproduces(vector_env_name):
    role = first_role(vector_env_name)

    def rollout(seed: int) -> list[np.ndarray]:
        venv, _ = build_vector(vector_env_name, role, {"max_cycles": MAX_CYCLES})
        venv.seed(seed)
        trace = [venv.reset()]
        for _ in range(MAX_CYCLES + 1):
            trace.extend(venv.step(fixed_actions(venv, 0.3))[:2])
        return trace

    first, second, other = rollout(5), rollout(5), rollout(6)
    for index, (left, right) in enumerate(zip(first, second, strict=True)):
        assert np.array_equal(left, right), f"entry {index}: {left.tolist()} vs {right.tolist()}"
    assert not np.array_equal(first[0], other[0]), "seeds 5 and 6 gave the same reset"


def test_instance_seeds_documented_derivation():
    seeds = instance_seeds(42, 4)
    children = np.random.SeedSequence(42).spawn(4)
    assert seeds == [int(child.generate_state(1, dtype=np.uint64)[0]) for child in children]
    assert len(set(seeds)) == 4
    assert instance_seeds(42, 4) == seeds
    assert instance_seeds(42, 2) == seeds[:2]
    with pytest.raises(ValueError, match="num_instances"):
        instance_seeds(42, 0)


def test_learned_follower_step_is_round(vector_env_name):
    kwargs = learned_kwargs(vector_env_name)
    market = registry.market_class(vector_env_name)(num_instances=2, max_cycles=3, **kwargs)
    leader = first_role(vector_env_name, **kwargs)
    others = [role for role in market.roles if role.name != leader]
    calls: dict[str, list[np.ndarray]] = {role.name: [] for role in others}

    def make_policy(role: Any) -> Policy:
        policy = deterministic_policy(role.action_space)

        def act(observations: np.ndarray, *masks: np.ndarray) -> np.ndarray:
            calls[role.name].append(observations.copy())
            return policy(observations, *masks)

        return act

    venv = RoleVecEnv(market, leader, other_policies={r.name: make_policy(r) for r in others})
    venv.seed(0)
    venv.reset()
    assert all(not received for received in calls.values()), "a follower acted before the leaders"
    for round_index in range(3):
        before = market.round
        _, rewards, dones, _ = venv.step(fixed_actions(venv, 0.5))
        for role in others:
            received = calls[role.name]
            assert len(received) == round_index + 1, (
                f"round {round_index}: {role.name} acted {received}"
            )
            assert received[-1].shape[:2] == (2, role.count), f"{role.name}: {received[-1].shape}"
        if round_index < 2:
            assert market.round == before + 1, f"round {round_index}: market round {market.round}"
            assert leader in market.acting_roles(), f"round {round_index}"
        # The leaders are paid the utilities of the round that their step settled.
        settled = venv.settled_step
        assert settled is not None, f"round {round_index}: no settled step"
        paid = settled.infos[leader][keys.UTILITY] * market.reward_scale
        assert np.array_equal(rewards, paid.reshape(-1).astype(np.float32)), (
            f"round {round_index}: {leader} rewards {rewards.tolist()}, utilities {paid.tolist()}"
        )
        assert dones.all() == (round_index == 2), f"round {round_index}: dones {dones.tolist()}"


def test_missing_follower_policy_raises(vector_env_name):
    kwargs = learned_kwargs(vector_env_name)
    market = registry.market_class(vector_env_name)(num_instances=1, **kwargs)
    leader = first_role(vector_env_name, **kwargs)
    with pytest.raises(ValueError) as error:
        RoleVecEnv(market, leader)
    for role in market.roles:
        if role.name != leader:
            assert role.name in str(error.value), str(error.value)


def test_unknown_role_raises(vector_env_name):
    market = registry.market_class(vector_env_name)(num_instances=1)
    with pytest.raises(KeyError, match="no_such_role"):
        RoleVecEnv(market, "no_such_role")


def test_vector_invalid_actions_name_instance(vector_env_name):
    role = first_role(vector_env_name)
    venv, _ = build_vector(vector_env_name, role, {"max_cycles": MAX_CYCLES})
    venv.reset()
    actions = fixed_actions(venv, 0.5).astype(np.float64)
    actions[-1] = np.nan
    count = venv.role.count
    with pytest.raises(ValueError, match=f"{role}_{count - 1} in instance {BATCH - 1}"):
        venv.step(actions)


def test_ppo_learns_on_vector(vector_env_name):
    pytest.importorskip("torch")
    from stable_baselines3 import PPO

    role = first_role(vector_env_name)
    venv, _ = build_vector(vector_env_name, role, {"max_cycles": MAX_CYCLES}, batch=2)
    if venv.role.name in venv.market.masked_roles:
        from sb3_contrib import MaskablePPO as algorithm
    else:
        algorithm = PPO
    model = algorithm("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=2 * 8 * venv.num_envs)
    observations = venv.reset()
    kwargs = {"action_masks": venv.action_masks()} if algorithm is not PPO else {}
    actions, _ = model.predict(observations, deterministic=True, **kwargs)
    assert actions.shape == (venv.num_envs, *venv.action_space.shape)


def test_wrong_action_shape_names_expected(vector_env_name):
    role = first_role(vector_env_name)
    venv, _ = build_vector(vector_env_name, role, {"max_cycles": MAX_CYCLES})
    venv.reset()
    actions = fixed_actions(venv, 0.5)[:-1]
    with pytest.raises(ValueError, match="expected"):
        venv.step(actions)
