"""The one-to-one lending env: its configuration errors and that its rounds follow the model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.lending import equilibrium, model
from ledgerzoo.envs.lending.one_to_one import (
    LENDER_INDEX,
    LendingOneToOneEnv,
    OneToOneMarket,
)

SEED = 3


def lender_names(env: LendingOneToOneEnv) -> list[str]:
    return [agent for agent in env.possible_agents if agent.startswith("lender_")]


def split_actions(env: LendingOneToOneEnv, batched: dict[str, np.ndarray]) -> dict[str, Any]:
    """Turn the market's batched actions (instance 0) into the env's dict of actions."""
    actions: dict[str, Any] = {}
    for role in env.market.roles:
        for index, agent in enumerate(role.agent_names()):
            actions[agent] = batched[role.name][0, index]
    return actions


# --------------------------------------------------------------------------------------------
# Configuration errors.


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"bogus": 1}, TypeError, "bogus"),
        ({"min_rate": 0.6, "max_rate": 0.5}, ValueError, r"min_rate.*0\.6"),
        ({"min_rate": 0.5, "max_rate": 0.5}, ValueError, r"min_rate.*below 0\.5"),
        ({"min_rate": {"low": 0.01, "high": 0.7}}, ValueError, r"min_rate.*0\.7"),
        ({"min_rate": [0.01, 0.02, 0.9, 0.01, 0.01]}, ValueError, r"min_rate.*0\.9"),
        ({"min_rate": 0.0}, ValueError, "min_rate"),
        ({"willingness": -1.0}, ValueError, r"willingness.*-1\.0"),
        ({"willingness": 0.0}, ValueError, r"willingness.*at least 1e-09.*0\.0"),
        ({"willingness": float("inf")}, ValueError, "willingness.*inf"),
        ({"willingness": "abc"}, ValueError, "willingness.*'abc'"),
        ({"willingness": [1.0, 2.0]}, ValueError, r"willingness.*\(5\).*2 numbers"),
        ({"willingness": [1.0] * 6}, ValueError, r"willingness.*6 numbers"),
        ({"min_rate": {"low": 0.1, "high": 0.05}}, ValueError, r"min_rate.*low=0\.1.*0\.05"),
        ({"willingness": {"low": 1.0}}, ValueError, "willingness.*'low' and 'high'"),
        ({"willingness": {"low": 1, "high": 2, "mean": 1.5}}, ValueError, "willingness.*mean"),
        ({"max_cycles": 0}, ValueError, "max_cycles.*0"),
        ({"max_cycles": -3}, ValueError, "max_cycles.*-3"),
        ({"max_cycles": 2.5}, TypeError, r"max_cycles.*2\.5"),
        ({"followers": "bogus"}, ValueError, "followers.*bogus"),
        ({"followers": None}, ValueError, "followers.*None"),
        ({"n_lenders": 0}, ValueError, "n_lenders.*0"),
        ({"n_lenders": 2.0}, TypeError, r"n_lenders.*2\.0"),
        ({"n_lenders": True}, TypeError, "n_lenders.*True"),
        ({"max_rate": -0.5}, ValueError, r"max_rate.*-0\.5"),
        ({"max_rate": float("nan")}, ValueError, "max_rate.*nan"),
        ({"max_rate": "0.5"}, ValueError, "max_rate.*'0.5'"),
        ({"min_loan": -1.0}, ValueError, r"min_loan.*-1\.0"),
        ({"min_loan": "a"}, TypeError, "min_loan.*'a'"),
        ({"min_loan": None}, TypeError, "min_loan.*None"),
        ({"max_loan": 0.0}, ValueError, "max_loan"),
        ({"min_loan": 10.0, "max_loan": 5.0}, ValueError, r"max_loan.*10\.0.*5\.0"),
        ({"reward_scale": 0.0}, ValueError, "reward_scale.*0"),
        ({"reward_scale": "x"}, TypeError, "reward_scale.*'x'"),
        ({"reference": "yes"}, TypeError, "reference.*'yes'"),
        ({"render_mode": "rgb_array"}, ValueError, "render_mode.*rgb_array"),
    ],
)
def test_invalid_config_raises(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        LendingOneToOneEnv(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"num_instances": 0}, ValueError, "num_instances.*0"),
        ({"num_instances": 1.0}, TypeError, "num_instances"),
        ({"followers": "bogus"}, ValueError, "bogus"),
    ],
)
def test_invalid_market_config_raises(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        OneToOneMarket(**kwargs)


@pytest.mark.parametrize(
    "willingness",
    [
        [1.0, 2.0, 3.0],
        (1.0, 2.0, 3.0),
        np.array([1.0, 2.0, 3.0]),
        {"low": 1.0, "high": 3.0},
        2,
        np.float32(2.0),
    ],
    ids=["list", "tuple", "numpy array", "range", "int", "numpy scalar"],
)
def test_willingness_forms_accepted(willingness):
    env = LendingOneToOneEnv(n_lenders=3, willingness=willingness)
    env.reset(seed=SEED)
    drawn = env.market.game.willingness[0]
    spec = env.market.willingness_spec
    assert np.all((drawn >= spec.low) & (drawn <= spec.high)), f"{drawn} outside the range"


def test_fixed_parameters_used_exactly():
    env = LendingOneToOneEnv(
        n_lenders=3, willingness=[1.0, 2.0, 4.0], min_rate=[0.05, 0.1, 0.2], max_rate=0.8
    )
    env.reset(seed=SEED)
    game = env.market.game
    assert game.willingness.tolist() == [[1.0, 2.0, 4.0]]
    assert game.min_rate.tolist() == [[0.05, 0.1, 0.2]]
    assert game.max_rate.tolist() == [0.8]


# --------------------------------------------------------------------------------------------
# Rounds follow the model.


def test_rates_map_actions_affinely():
    env = LendingOneToOneEnv(n_lenders=3, max_rate=0.4)
    env.reset(seed=SEED)
    game = env.market.game
    actions = {"lender_0": np.array([0.0]), "lender_1": np.array([0.5]), "lender_2": [1.0]}
    infos = env.step(actions)[4]
    for index, fraction in enumerate((0.0, 0.5, 1.0)):
        min_rate = game.min_rate[0, index]
        expected = min_rate + fraction * (0.4 - min_rate)
        rate = infos[f"lender_{index}"][keys.RATE]
        assert math.isclose(rate, expected, rel_tol=1e-12), f"lender_{index}: {rate} vs {expected}"


@pytest.mark.parametrize("max_loan", [None, {"low": 5.0, "high": 20.0}])
def test_rewards_equal_model_utilities(max_loan):
    env = LendingOneToOneEnv(n_lenders=4, max_loan=max_loan, reward_scale=0.5)
    rng = np.random.default_rng(0)
    env.reset(seed=SEED)
    game = env.market.game
    step = 0
    while env.agents:
        actions = {agent: rng.random(1, dtype=np.float32) for agent in env.agents}
        _, rewards, _, _, infos = env.step(actions)
        rates = np.array([[infos[a][keys.RATE] for a in lender_names(env)]])
        loans = model.borrower_best_response(
            1.0 / rates, game.willingness, game.min_loan[:, None], game.max_loan
        )
        utilities = model.lender_utilities(loans, rates, game.willingness, game.min_rate)[0]
        borrower = model.borrower_utilities(loans, rates, game.willingness)[0]
        for index, agent in enumerate(lender_names(env)):
            info = infos[agent]
            assert info[keys.LOAN] == loans[0, index], (
                f"step {step} {agent}: loan {info[keys.LOAN]} vs {loans[0, index]}"
            )
            assert info[keys.UTILITY] == utilities[index], (
                f"step {step} {agent}: utility {info[keys.UTILITY]} vs {utilities[index]}"
            )
            assert math.isclose(rewards[agent], 0.5 * utilities[index], rel_tol=1e-12), (
                f"step {step} {agent}: reward {rewards[agent]} vs {0.5 * utilities[index]}"
            )
            assert info[keys.IS_OPTIMAL_LENDER] == (index == int(np.argmax(borrower))), (
                f"step {step} {agent}: is_optimal_lender {info[keys.IS_OPTIMAL_LENDER]}"
            )
            assert info[keys.BORROWER_UTILITY] == borrower.max(), (
                f"step {step} {agent}: borrower_utility {info[keys.BORROWER_UTILITY]} "
                f"vs {borrower.max()}"
            )
        step += 1


def test_equilibrium_actions_reach_reference():
    env = LendingOneToOneEnv(n_lenders=4, reference=True)
    env.reset(seed=SEED)
    step = 0
    while env.agents:
        infos = env.step(split_actions(env, env.market.equilibrium_actions()))[4]
        for agent in lender_names(env):
            info = infos[agent]
            reference = info[keys.REFERENCE]
            # Actions are float32, so the posted rate matches the equilibrium to about 1e-7.
            assert math.isclose(info[keys.RATE], reference[keys.RATE], rel_tol=1e-6), (
                f"step {step} {agent}: rate {info[keys.RATE]} vs {reference[keys.RATE]}"
            )
            gain = info[keys.BEST_RESPONSE_UTILITY] - info[keys.UTILITY]
            assert gain <= 1e-6 * abs(info[keys.UTILITY]), (
                f"step {step} {agent}: best response gains {gain} over {info[keys.UTILITY]}"
            )
        step += 1


def test_best_response_play_converges():
    env = LendingOneToOneEnv(n_lenders=4, reference=True, max_cycles=30)
    observations, _ = env.reset(seed=SEED)
    while env.agents:
        lender_obs = np.stack([observations[a] for a in lender_names(env)])[None]
        actions = env.market.best_response_actions({"lender": lender_obs})
        observations, _, _, _, infos = env.step(split_actions(env, actions))
    for agent in lender_names(env):
        rate, reference = infos[agent][keys.RATE], infos[agent][keys.REFERENCE][keys.RATE]
        assert math.isclose(rate, reference, rel_tol=1e-5), f"{agent}: {rate} vs {reference}"


def test_learned_borrower_best_response_matches_analytic():
    analytic = LendingOneToOneEnv(n_lenders=3)
    learned = LendingOneToOneEnv(n_lenders=3, followers="learned")
    analytic.reset(seed=SEED)
    observations, _ = learned.reset(seed=SEED)
    rng = np.random.default_rng(1)
    for round_index in range(analytic.market.max_cycles):
        lender_actions = {a: rng.random(1, dtype=np.float32) for a in analytic.agents}
        expected = analytic.step(lender_actions)
        observations, rewards, _, _, infos = learned.step(
            {**lender_actions, "borrower_0": np.zeros(3, np.float32)}
        )
        assert all(value == 0.0 for value in rewards.values()), f"leaders' step paid {rewards}"
        assert infos["borrower_0"][keys.PHASE] == keys.LEADERS_PHASE
        batched = learned.market.best_response_actions(
            {
                "lender": np.stack([observations[a] for a in lender_actions])[None],
                "borrower": observations["borrower_0"][None, None],
            }
        )
        # In the followers' step the lenders' actions have no effect.
        observations, rewards, _, _, infos = learned.step(
            {**split_actions(learned, batched), **{a: [0.0] for a in lender_actions}}
        )
        assert infos["borrower_0"][keys.PHASE] == keys.FOLLOWERS_PHASE
        for agent in lender_actions:
            # The borrower's loans pass through float32 actions, so utilities agree to ~1e-6.
            assert math.isclose(rewards[agent], expected[1][agent], rel_tol=1e-5), (
                f"round {round_index} {agent}: {rewards[agent]} vs {expected[1][agent]}"
            )


def test_lender_observation_entries():
    env = LendingOneToOneEnv(n_lenders=3)
    env.reset(seed=SEED)
    game = env.market.game
    actions = {"lender_0": [0.1], "lender_1": [0.4], "lender_2": [0.9]}
    observations, _, _, _, infos = env.step(actions)
    rates = np.array([infos[f"lender_{i}"][keys.RATE] for i in range(3)])
    loans = np.array([infos[f"lender_{i}"][keys.LOAN] for i in range(3)])
    for i in range(3):
        obs = observations[f"lender_{i}"]
        others = [j for j in range(3) if j != i]
        expected = {
            "has_history": 1.0,
            "n_lenders": 3.0,
            "willingness": game.willingness[0, i],
            "last_rate_ratio": rates[i] / game.max_rate[0],
            "others_mean_rate_ratio": rates[others].mean() / game.max_rate[0],
            "others_min_rate_ratio": rates[others].min() / game.max_rate[0],
            "others_max_rate_ratio": rates[others].max() / game.max_rate[0],
            "last_loan_share": loans[i] / loans.sum(),
            # r_min,i beta_i, beta_i = sum_{j != i} d_j y_j / d_i with the analytic borrower.
            "competition_index": game.min_rate[0, i]
            * sum(game.willingness[0, j] / rates[j] for j in others)
            / game.willingness[0, i],
            "was_optimal_lender": float(infos[f"lender_{i}"][keys.IS_OPTIMAL_LENDER]),
        }
        for name, value in expected.items():
            entry = obs[LENDER_INDEX[name]]
            assert math.isclose(entry, value, rel_tol=1e-6), (
                f"lender_{i} {name}: {entry} vs {value}"
            )


def test_reference_keys_only_with_flag():
    plain = LendingOneToOneEnv(n_lenders=2)
    plain.reset(seed=SEED)
    infos = plain.step({"lender_0": [0.5], "lender_1": [0.5]})[4]
    for info in infos.values():
        assert keys.REFERENCE not in info, info
        assert keys.BEST_RESPONSE_UTILITY not in info, info
    reference = LendingOneToOneEnv(n_lenders=2, reference=True)
    reference.reset(seed=SEED)
    infos = reference.step({"lender_0": [0.5], "lender_1": [0.5]})[4]
    solution = equilibrium.solve(reference.market.game)
    for index, info in enumerate(infos.values()):
        assert info[keys.REFERENCE][keys.RATE] == solution.rates[0, index], info
        assert keys.BEST_RESPONSE_RATE in info, info


def test_single_lender_rate_at_max():
    env = LendingOneToOneEnv(n_lenders=1, reference=True, max_rate=0.3)
    env.reset(seed=SEED)
    info = env.step({"lender_0": [0.2]})[4]["lender_0"]
    assert math.isclose(info[keys.REFERENCE][keys.RATE], 0.3, rel_tol=1e-12), info
    assert math.isclose(info[keys.BEST_RESPONSE_RATE], 0.3, rel_tol=1e-12), info
    assert env.market.equilibrium.at_max_rate.all()


def test_best_response_actions_per_role():
    env = LendingOneToOneEnv(n_lenders=3, followers="learned")
    env.reset(seed=SEED)
    env.step({**{a: [0.5] for a in lender_names(env)}, "borrower_0": np.zeros(3, np.float32)})
    borrower_obs = env.market.observe()["borrower"]
    alone = env.market.best_response_actions({"borrower": borrower_obs})
    assert set(alone) == {"borrower"}, sorted(alone)
    lender_obs = env.market.observe()["lender"]
    both = env.market.best_response_actions({"lender": lender_obs, "borrower": borrower_obs})
    assert np.array_equal(alone["borrower"], both["borrower"])
    assert set(env.market.best_response_actions({"lender": lender_obs})) == {"lender"}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"willingness": 1e39}, "willingness"),
        ({"willingness": 1e200, "min_rate": 1e-200, "max_rate": 1e-199}, "willingness"),
        ({"min_rate": 1e-12}, "min_rate"),
        ({"max_rate": 1e6}, "max_rate"),
        ({"max_loan": 1e30}, "max_loan"),
    ],
)
def test_magnitudes_beyond_float32_rejected(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        LendingOneToOneEnv(**kwargs)


def test_extreme_accepted_magnitudes_stay_finite() -> None:
    env = LendingOneToOneEnv(willingness=1e9, min_rate=1e-9, max_rate=1e3, reference=True)
    observations, _ = env.reset(seed=3)
    while env.agents:
        actions = {agent: np.array([0.5], dtype=np.float32) for agent in env.agents}
        observations, rewards, _, _, _ = env.step(actions)
        for agent, observation in observations.items():
            assert np.all(np.isfinite(observation)), f"{agent}: {observation}"
            assert env.observation_space(agent).contains(observation), f"{agent}: {observation}"
        for agent, reward in rewards.items():
            assert math.isfinite(reward), f"{agent}: reward {reward}"
