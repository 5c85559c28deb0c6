"""The one-to-many lending env: its configuration errors, and that its rounds follow the model.

The registry-driven tests (tests/envs/test_api.py, test_contract.py, test_vector.py) cover the
PettingZoo API, seeding and action validation of every env. These tests check what is specific
to this market: its rates, investments and rewards against :mod:`ledgerzoo.envs.lending.model`
and :mod:`ledgerzoo.envs.lending.investing`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ledgerzoo.agents import EquilibriumPolicy
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.lending import investing, model
from ledgerzoo.envs.lending.one_to_many import (
    BORROWER_INDEX,
    LendingOneToManyEnv,
    OneToManyMarket,
)

SEED = 3
BORROWER = "borrower_0"


def lender_names(env: LendingOneToManyEnv) -> list[str]:
    return [agent for agent in env.possible_agents if agent.startswith("lender_")]


def expected_rates(env: LendingOneToManyEnv, action: np.ndarray) -> np.ndarray:
    """Map a borrower action onto rates (1, N) as the env's docstring states it.

    Uniform: r = r_lo + a (r_max - r_lo) with r_lo = max_i r_min,i for every lender.
    Differentiated: r_i = r_min,i + a_i (r_max - r_min,i).
    """
    game = env.market.game
    fraction = np.asarray(action, dtype=np.float32).astype(np.float64)
    max_rate = game.max_rate[0]
    if env.market.pricing == "uniform":
        low = game.min_rate[0].max()
        return np.full((1, game.n_lenders), low + fraction[0] * (max_rate - low))
    return (game.min_rate[0] + fraction * (max_rate - game.min_rate[0]))[None, :]


def borrower_utility(env: LendingOneToManyEnv, investments: np.ndarray, rates: np.ndarray):
    """BU (1,) and whether the raise succeeds (1,), from the model."""
    game = env.market.game
    return model.raise_borrower_utility(
        investments, rates, game.target, game.reward, game.valuation, game.failure_utility
    )


# --------------------------------------------------------------------------------------------
# Configuration.


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"pricing": "bogus"}, ValueError, "pricing.*'bogus'"),
        ({"pricing": None}, ValueError, "pricing.*None"),
        ({"reward": -1.0}, ValueError, r"reward.*above 0.*-1\.0"),
        ({"reward": 0.0}, ValueError, r"reward.*above 0.*0\.0"),
        ({"reward": {"low": -2.0, "high": 3.0}}, ValueError, r"reward.*-2\.0"),
        ({"min_rate": 0.5, "max_rate": 0.3}, ValueError, r"min_rate.*below 0\.3.*0\.5"),
        ({"min_rate": 0.3, "max_rate": 0.3}, ValueError, r"min_rate.*below 0\.3"),
        ({"min_rate": {"low": 0.01, "high": 0.4}}, ValueError, r"min_rate.*0\.4"),
        ({"min_rate": [0.01, 0.02]}, ValueError, r"min_rate.*\(5\).*2 numbers"),
        ({"max_investment": [10.0] * 6}, ValueError, r"max_investment.*\(5\).*6 numbers"),
        ({"max_investment": 0.0}, ValueError, r"max_investment.*at least 1e-09.*0\.0"),
        ({"failure_utility": float("nan")}, ValueError, "failure_utility.*nan"),
        ({"failure_utility": float("-inf")}, ValueError, "failure_utility.*inf"),
        ({"failure_utility": "low"}, ValueError, "failure_utility.*'low'"),
        ({"target": -5.0}, ValueError, r"target.*at least 0.*-5\.0"),
        ({"weight": 0.0}, ValueError, r"weight.*above 0"),
        ({"valuation": float("inf")}, ValueError, "valuation.*inf"),
        ({"max_rate": 1e4}, ValueError, r"max_rate.*10000"),
        ({"n_lenders": 0}, ValueError, "n_lenders.*0"),
        ({"n_lenders": 2.0}, TypeError, r"n_lenders.*2\.0"),
        ({"followers": "bogus"}, ValueError, "followers.*'bogus'"),
        ({"reference": "yes"}, TypeError, "reference.*'yes'"),
    ],
)
def test_invalid_config_raises(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        LendingOneToManyEnv(**kwargs)


def test_invalid_market_config_raises():
    with pytest.raises(ValueError, match=r"num_instances.*0"):
        OneToManyMarket(num_instances=0)
    with pytest.raises(ValueError, match=r"pricing.*'flat'"):
        OneToManyMarket(pricing="flat")


@pytest.mark.parametrize(("pricing", "size"), [("uniform", 1), ("differentiated", 4)])
def test_action_space_per_pricing(pricing, size):
    env = LendingOneToManyEnv(n_lenders=4, pricing=pricing, followers="learned")
    assert env.action_space(BORROWER).shape == (size,), env.action_space(BORROWER)
    for agent in lender_names(env):
        assert env.action_space(agent).shape == (1,), f"{agent}: {env.action_space(agent)}"
    assert env.observation_space(BORROWER).shape == (11 + 4 * 4,)
    assert env.observation_space("lender_0").shape == (13,)


# --------------------------------------------------------------------------------------------
# Rounds follow the model.


@pytest.mark.parametrize("pricing", ["uniform", "differentiated"])
def test_rewards_equal_model_utilities(pricing):
    env = LendingOneToManyEnv(n_lenders=4, pricing=pricing, reward_scale=0.5, max_cycles=6)
    env.reset(seed=SEED)
    game = env.market.game
    rng = np.random.default_rng(0)
    step = 0
    while env.agents:
        action = rng.random(env.action_space(BORROWER).shape, dtype=np.float32)
        _, rewards, _, _, infos = env.step({BORROWER: action})
        info = infos[BORROWER]
        rates = expected_rates(env, action)
        investments = investing.investor_equilibrium(rates, game).investments
        utility, feasible = borrower_utility(env, investments, rates)
        assert np.allclose(info[keys.RATES], rates[0], rtol=1e-12, atol=0.0), (
            f"step {step}: rates {info[keys.RATES]} vs {rates[0]}"
        )
        assert np.array_equal(info[keys.INVESTMENTS], investments[0]), (
            f"step {step}: investments {info[keys.INVESTMENTS]} vs {investments[0]}"
        )
        assert math.isclose(info[keys.UTILITY], utility[0], rel_tol=1e-12), (
            f"step {step}: utility {info[keys.UTILITY]} vs {utility[0]}"
        )
        assert math.isclose(rewards[BORROWER], 0.5 * utility[0], rel_tol=1e-12), (
            f"step {step}: reward {rewards[BORROWER]} vs {0.5 * utility[0]}"
        )
        assert info[keys.RAISE_FAILED] == (not feasible[0]), f"step {step}: {info}"
        step += 1


@pytest.mark.parametrize("pricing", ["uniform", "differentiated"])
def test_learned_rewards_equal_model_utilities(pricing):
    env = LendingOneToManyEnv(
        n_lenders=3, pricing=pricing, followers="learned", reward_scale=2.0, max_cycles=4
    )
    env.reset(seed=SEED)
    game = env.market.game
    lenders = lender_names(env)
    rng = np.random.default_rng(1)
    for round_index in range(env.market.max_cycles):
        offer = rng.random(env.action_space(BORROWER).shape, dtype=np.float32)
        idle = {agent: np.zeros(1, np.float32) for agent in lenders}
        _, rewards, _, _, _ = env.step({BORROWER: offer, **idle})
        assert all(value == 0.0 for value in rewards.values()), f"leaders' step paid {rewards}"

        fractions = rng.random(len(lenders), dtype=np.float32)
        actions = {agent: fractions[i : i + 1] for i, agent in enumerate(lenders)}
        _, rewards, _, _, infos = env.step({BORROWER: np.zeros_like(offer), **actions})
        rates = expected_rates(env, offer)
        investments = (fractions.astype(np.float64) * game.max_investment[0])[None, :]
        utilities = model.investor_utilities(
            investments,
            rates,
            game.min_rate,
            game.max_investment,
            game.reward[:, None],
            game.weight[:, None],
        )[0]
        utility, _ = borrower_utility(env, investments, rates)
        assert math.isclose(rewards[BORROWER], 2.0 * utility[0], rel_tol=1e-12), (
            f"round {round_index}: borrower reward {rewards[BORROWER]} vs {2.0 * utility[0]}"
        )
        for i, agent in enumerate(lenders):
            info = infos[agent]
            assert math.isclose(info[keys.INVESTMENT], investments[0, i], rel_tol=1e-12), (
                f"round {round_index} {agent}: investment {info[keys.INVESTMENT]} vs "
                f"{investments[0, i]}"
            )
            assert math.isclose(rewards[agent], 2.0 * utilities[i], rel_tol=1e-12), (
                f"round {round_index} {agent}: reward {rewards[agent]} vs {2.0 * utilities[i]}"
            )


@pytest.mark.parametrize("pricing", ["uniform", "differentiated"])
@pytest.mark.parametrize("followers", ["analytic", "learned"])
def test_equilibrium_policy_reaches_reference(pricing, followers):
    env = LendingOneToManyEnv(
        n_lenders=3, pricing=pricing, followers=followers, reference=True, max_cycles=3
    )
    policy = EquilibriumPolicy(env)
    observations, _ = env.reset(seed=SEED)
    settled = 0
    while env.agents:
        observations, _, _, _, infos = env.step(policy.act(observations))
        info = infos[BORROWER]
        if followers == "learned" and info[keys.PHASE] == keys.LEADERS_PHASE:
            continue
        reference = info[keys.REFERENCE]
        # Actions are float32, so the rates match the equilibrium to about 1e-7 relative.
        assert np.allclose(info[keys.RATES], reference[keys.RATES], rtol=1e-6, atol=0.0), (
            f"round {settled}: rates {info[keys.RATES]} vs {reference[keys.RATES]}"
        )
        assert math.isclose(info[keys.UTILITY], reference[keys.BORROWER_UTILITY], rel_tol=1e-6), (
            f"round {settled}: BU {info[keys.UTILITY]} vs {reference[keys.BORROWER_UTILITY]}"
        )
        assert not info[keys.RAISE_FAILED], f"round {settled}: {info}"
        assert info[keys.BEST_RESPONSE_UTILITY] >= info[keys.UTILITY], f"round {settled}: {info}"
        settled += 1
    assert settled == 3, f"{settled} rounds settled"
    solution = investing.solve(env.market.game, pricing)
    assert math.isclose(
        env.market.equilibrium.borrower_utility[0], solution.borrower_utility[0], rel_tol=1e-12
    )


def test_failed_raise_pays_failure_utility():
    # X = 1000 coins with at most 5 x 30 coins of capacity: the raise fails at every rate.
    env = LendingOneToManyEnv(
        target=1000.0, failure_utility=-7.0, reward_scale=0.5, reference=True, max_cycles=3
    )
    observations, _ = env.reset(seed=SEED)
    assert observations[BORROWER][BORROWER_INDEX["last_raise_failed"]] == 0.0
    for action in (0.0, 0.5, 1.0):
        observations, rewards, _, _, infos = env.step({BORROWER: np.array([action])})
        info = infos[BORROWER]
        assert info[keys.RAISE_FAILED], f"action {action}: {info}"
        assert info[keys.UTILITY] == -7.0, f"action {action}: utility {info[keys.UTILITY]}"
        assert rewards[BORROWER] == -3.5, f"action {action}: reward {rewards[BORROWER]}"
        assert info[keys.REFERENCE][keys.RAISE_FAILED], info[keys.REFERENCE]
        assert info[keys.REFERENCE][keys.BORROWER_UTILITY] == -7.0, info[keys.REFERENCE]
        observed = observations[BORROWER][BORROWER_INDEX["last_raise_failed"]]
        assert observed == 1.0, f"action {action}: last_raise_failed {observed}"


def test_learned_lender_infos():
    env = LendingOneToManyEnv(n_lenders=4, pricing="differentiated", followers="learned")
    env.reset(seed=SEED)
    game = env.market.game
    lenders = lender_names(env)
    offer = np.array([0.1, 0.4, 0.7, 1.0], dtype=np.float32)
    env.step({BORROWER: offer, **{agent: [0.0] for agent in lenders}})
    fractions = [0.0, 0.2, 0.6, 1.0]
    actions = {agent: [fractions[i]] for i, agent in enumerate(lenders)}
    infos = env.step({BORROWER: np.zeros(4, np.float32), **actions})[4]
    equilibrium = investing.investor_equilibrium(expected_rates(env, offer), game).investments[0]
    for i, agent in enumerate(lenders):
        info: dict[str, Any] = infos[agent]
        for key in (
            keys.FOLLOWER_RESPONSE,
            keys.BEST_RESPONSE_UTILITY,
            keys.BEST_RESPONSE_INVESTMENT,
        ):
            assert key in info, f"{agent}: {key} missing from {sorted(info)}"
        assert info[keys.FOLLOWER_RESPONSE] == equilibrium[i], (
            f"{agent}: follower_response {info[keys.FOLLOWER_RESPONSE]} vs {equilibrium[i]}"
        )
        assert info[keys.BEST_RESPONSE_UTILITY] >= info[keys.UTILITY], (
            f"{agent}: best response earns {info[keys.BEST_RESPONSE_UTILITY]}, "
            f"actual {info[keys.UTILITY]}"
        )
        assert 0.0 <= info[keys.BEST_RESPONSE_INVESTMENT] <= game.max_investment[0, i], info
    # Lender 0 invests nothing, so its best response gains strictly.
    assert infos["lender_0"][keys.BEST_RESPONSE_UTILITY] > infos["lender_0"][keys.UTILITY]


def test_reference_keys_only_with_flag():
    plain = LendingOneToManyEnv(n_lenders=2)
    plain.reset(seed=SEED)
    info = plain.step({BORROWER: np.array([0.5])})[4][BORROWER]
    assert keys.REFERENCE not in info, sorted(info)
    assert keys.BEST_RESPONSE_UTILITY not in info, sorted(info)
