"""Shared fixtures and parametrization of the test suite.

Env tests enumerate the registry (``ledgerzoo.list_envs()``) and never a list of their own.
A test that takes one of these arguments is parametrized over the registry at collection time:

- ``env_name``: every registered env;
- ``env_variant``: (name, kwargs) for every registered env and each variant its constructor
  offers (learned followers or leaders, analytic reference values), read from its signature;
- ``vector_env_name``: every registered env whose module exposes ``market_class``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
import pytest

import ledgerzoo
from ledgerzoo import registry

# Constructor keyword -> the non-default values that make a variant worth testing on its own.
VARIANT_KWARGS: dict[str, tuple[Any, ...]] = {
    "followers": ("learned",),
    "leaders": ("learned",),
    "reference": (True,),
}


# A market on a chain with the cold start, binding budgets, late income and cashflow rewards:
# the settings under which the ledger changes the dynamics the most.
LEDGER_VARIANT: dict[str, Any] = {
    "ledger": {"mode": "chain", "block_interval": 2, "confirmations": 1},
    "loan_term": 2,
    "lender_budget": {"low": 20.0, "high": 60.0},
    "data_price": 1.0,
    "data_income": 3.0,
    "reward_type": "cashflow",
}


# Keyword of a market's constructor -> further variants of that market worth testing alone.
MARKET_VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    # Data market: learned bidders with and without relays.
    "bidding": (
        {"bidding": "learned"},
        {"bidding": "learned", "reference": True},
        {"bidding": "learned", "relays": False},
    ),
    # Offloading: balances that mask unaffordable choices, and loans with failing edges.
    "loans": (
        {"device_balance": 0.3},
        {
            "ledger": {"mode": "chain", "block_interval": 2, "confirmations": 1},
            "device_balance": 0.2,
            "loans": True,
            "reputation": True,
        },
    ),
}


def env_variants(name: str) -> list[dict[str, Any]]:
    """List the constructor kwargs of the variants of a registered env.

    The default variant comes first; then each keyword of ``VARIANT_KWARGS`` that the env's
    ``raw_env`` accepts, alone; then every learned role together with ``reference=True``; then,
    for markets that settle on a ledger, ``LEDGER_VARIANT`` and the tangle ledger.
    """
    module = registry.spec(name).load()
    parameters = inspect.signature(module.raw_env).parameters
    variants: list[dict[str, Any]] = [{}]
    for keyword, values in VARIANT_KWARGS.items():
        if keyword in parameters:
            variants.extend({keyword: value} for value in values)
    if "reference" in parameters:
        for keyword in ("followers", "leaders"):
            if keyword in parameters:
                variants.append({keyword: "learned", "reference": True})
    if "ledger" in parameters:
        variants.append({k: v for k, v in LEDGER_VARIANT.items() if k in parameters})
        variants.append({"ledger": "tangle"})
    for keyword, values in MARKET_VARIANTS.items():
        if keyword in parameters:
            variants.extend(dict(value) for value in values)
    return variants


def variant_id(name: str, kwargs: Mapping[str, Any]) -> str:
    """Build a readable test id such as ``lending_one_to_one_v0[followers=learned]``."""
    if not kwargs:
        return name
    return name + "[" + ",".join(f"{key}={value}" for key, value in kwargs.items()) + "]"


def vector_env_names() -> list[str]:
    """Names of the registered envs whose module exposes ``market_class`` (a vector face)."""
    return [
        name
        for name in ledgerzoo.list_envs()
        if getattr(registry.spec(name).load(), "market_class", None) is not None
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "env_name" in metafunc.fixturenames:
        metafunc.parametrize("env_name", ledgerzoo.list_envs())
    if "env_variant" in metafunc.fixturenames:
        cases = [
            pytest.param((name, kwargs), id=variant_id(name, kwargs))
            for name in ledgerzoo.list_envs()
            for kwargs in env_variants(name)
        ]
        metafunc.parametrize("env_variant", cases)
    if "vector_env_name" in metafunc.fixturenames:
        metafunc.parametrize("vector_env_name", vector_env_names())


def sample_action(space: gymnasium.Space, rng: np.random.Generator, mask: Any = None) -> Any:
    """Draw a valid action from ``space`` with ``rng`` (never the space's own generator).

    Box bounds that are infinite are replaced by [-1, 1] around zero. Discrete actions respect
    ``mask`` (1 for allowed choices) when one is given.
    """
    if isinstance(space, gymnasium.spaces.Box):
        low = np.where(np.isfinite(space.low), space.low, -1.0)
        high = np.where(np.isfinite(space.high), space.high, 1.0)
        return rng.uniform(low, high).astype(space.dtype)
    if isinstance(space, gymnasium.spaces.Discrete):
        choices = np.arange(space.n)
        if mask is not None:
            choices = choices[np.asarray(mask, dtype=bool)]
        return space.start + int(rng.choice(choices))
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        return (rng.random(space.nvec.shape) * space.nvec).astype(space.dtype) + space.start
    raise NotImplementedError(f"sample_action does not know the space {space}")


def action_mask(observation: Any) -> Any:
    """Return the ``action_mask`` entry of a dict observation, or None."""
    if isinstance(observation, Mapping):
        return observation.get("action_mask")
    return None


@pytest.fixture
def sample_actions() -> Callable[..., dict[str, Any]]:
    """Return a function that draws every live agent's action from a numpy Generator.

    Called as ``sample_actions(env, rng, observations)``; the observations supply action masks.
    """

    def draw(
        env: Any, rng: np.random.Generator, observations: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        observations = observations or {}
        return {
            agent: sample_action(env.action_space(agent), rng, action_mask(observations.get(agent)))
            for agent in env.agents
        }

    return draw
