"""Market settings and pre-generated actions shared by the throughput and memory benchmarks.

Each registered market is benchmarked with the env keyword arguments of one shipped config
(the training default: analytic followers or truthful bidders, fixed leaders), with the
lending markets at 10 lenders. A market registered later without an entry here runs with
its constructor defaults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ledgerzoo
from ledgerzoo import registry
from ledgerzoo.envs.core.market import BatchedMarket
from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
LENDERS = 10

# Registry name -> (config whose env kwargs are used, overrides of those kwargs).
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "lending_one_to_one_v0": ("configs/lending/one_to_one.yaml", {"n_lenders": LENDERS}),
    "lending_one_to_many_v0": (
        "configs/lending/one_to_many_uniform.yaml",
        {"n_lenders": LENDERS},
    ),
    "offloading_v0": ("configs/offloading/small.yaml", {}),
    "data_market_v0": ("configs/data_market/relays.yaml", {}),
}
LENDING_MARKETS = ("lending_one_to_one_v0", "lending_one_to_many_v0")


@dataclass(frozen=True)
class MarketSetting:
    """Settings that one market is built with for the benchmarks.

    Attributes:
        name: Registry name.
        config: Config file whose env kwargs are used (relative to the repository), or None.
        kwargs: Keyword arguments of the market, without ``num_instances``.
        train_reference: The config's ``train.reference_metrics``: whether ``ledgerzoo train``
            builds the market with ``reference=True``.
    """

    name: str
    config: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    train_reference: bool = False


def market_names(requested: list[str] | None = None) -> list[str]:
    """Return every registered market, or the requested ones once they are found registered."""
    names = ledgerzoo.list_envs()
    if not requested:
        return names
    unknown = [name for name in requested if name not in names]
    if unknown:
        raise SystemExit(f"unknown market(s) {unknown}; registered markets: {', '.join(names)}")
    return list(requested)


def market_setting(name: str, reference: bool = False) -> MarketSetting:
    """Return the benchmark setting of a market; ``reference`` adds ``reference=True``."""
    if name not in CONFIGS:
        kwargs: dict[str, Any] = {"reference": True} if reference else {}
        return MarketSetting(name=name, config=None, kwargs=kwargs)
    path, overrides = CONFIGS[name]
    config = load_config(ROOT / path)
    kwargs = {**config.env.kwargs, **overrides}
    if reference:
        kwargs["reference"] = True
    return MarketSetting(
        name=name, config=path, kwargs=kwargs, train_reference=config.train.reference_metrics
    )


def build_market(setting: MarketSetting, batch: int) -> BatchedMarket:
    """Build the market's :class:`BatchedMarket` with B = ``batch`` instances."""
    market: BatchedMarket = registry.market_class(setting.name)(
        num_instances=batch, **setting.kwargs
    )
    return market


def acting_count(market: BatchedMarket) -> int:
    """Return the agents of one instance that act in the current phase (live agent-steps)."""
    return sum(market.role(name).count for name in market.acting_roles())


@dataclass
class ActionPlan:
    """Legal random actions for consecutive steps of B instances from a seeded reset.

    Attributes:
        seed: Seed of the vector env; instance b is reset with ``instance_seeds(seed, B)[b]``.
        steps: Role name -> actions (B, count, ...) of every role, one entry per step.
        live: Live agent-steps of each step, summed over the B instances.
        horizon: Whether each step is the last of its episode (its auto-reset follows).
        steps_per_episode: Steps in one episode (rounds x phases).
        generation_seconds: Wall time of the untimed run that made the plan.
    """

    seed: int
    steps: list[dict[str, np.ndarray]]
    live: list[int]
    horizon: list[bool]
    steps_per_episode: int
    generation_seconds: float


def random_actions(market: BatchedMarket, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw legal random actions of every role for the market's current state.

    Box actions are uniform on [0, 1]; Discrete actions are uniform over the allowed choices
    (``action_masks()``). Roles that do not act in this phase get their idle actions.
    """
    batch = market.num_instances
    masks = market.action_masks()
    acting = market.acting_roles()
    actions: dict[str, np.ndarray] = {}
    for role in market.roles:
        if role.name not in acting:
            idle = role.zero_actions(batch)
            if role.name in masks:
                idle = np.argmax(masks[role.name], axis=2) + int(role.action_space.start)
            actions[role.name] = idle
        elif role.is_discrete:
            n = int(role.action_space.n)
            mask = masks.get(role.name)
            if mask is None:
                mask = np.ones((batch, role.count, n), dtype=bool)
            # The largest of uniform keys over the allowed choices is a uniform allowed choice.
            keys = rng.random((batch, role.count, n))
            keys[~mask] = -1.0
            actions[role.name] = np.argmax(keys, axis=2).astype(np.int64) + int(
                role.action_space.start
            )
        else:
            shape = (batch, role.count, *role.action_space.shape)
            actions[role.name] = rng.random(shape, dtype=np.float32)
    return actions


def make_plan(
    market: BatchedMarket,
    seed: int,
    budget_seconds: float,
    min_steps: int,
    max_steps: int,
) -> ActionPlan:
    """Run the market from a seeded reset with random legal actions and record them.

    The run stops once ``budget_seconds`` have passed and at least ``min_steps`` steps are
    recorded, or at ``max_steps``. Every instance's episode depends only on its seed and the
    actions. So replaying the plan from the same seeded reset, in this market or in any face
    of it, meets the same states, and the recorded actions stay legal under the masks.
    """
    rng = np.random.default_rng(seed + 1)
    market.seed(instance_seeds(seed, market.num_instances))
    market.reset()
    steps: list[dict[str, np.ndarray]] = []
    live: list[int] = []
    horizon: list[bool] = []
    steps_per_episode = 0
    started = time.perf_counter()
    while len(steps) < max_steps:
        if len(steps) >= min_steps and time.perf_counter() - started >= budget_seconds:
            break
        actions = random_actions(market, rng)
        live.append(acting_count(market) * market.num_instances)
        market.step(actions)
        steps.append(actions)
        last = market.round >= market.max_cycles
        horizon.append(last)
        if last:
            if not steps_per_episode:
                steps_per_episode = len(steps)
            market.reset()
    if not steps_per_episode:
        # The run stopped inside the first episode: count its steps by phases.
        steps_per_episode = market.max_cycles * (2 if market.two_phase else 1)
    return ActionPlan(
        seed=seed,
        steps=steps,
        live=live,
        horizon=horizon,
        steps_per_episode=steps_per_episode,
        generation_seconds=time.perf_counter() - started,
    )
