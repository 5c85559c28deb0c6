"""Tests of the baseline policies, the role router and the stable-baselines3 adapter, played in
lending_one_to_one_v0.

The best-response check recomputes the lenders' closed-form best response from the game's
parameters and last round's rates: with the borrower's response x_j = d_j y_j, lender i's best
price is y_i* = sqrt(beta_i^2 + beta_i / r_min,i) - beta_i with beta_i = sum_{j != i} d_j y_j / d_i,
clipped to [1 / r_max, 1 / r_min,i] (docs/lending.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

import ledgerzoo
from ledgerzoo import registry
from ledgerzoo.agents import (
    BASELINES,
    BestResponsePolicy,
    EquilibriumPolicy,
    FixedPolicy,
    Policy,
    RandomPolicy,
    RolePolicies,
    SB3Policy,
    make_baseline,
)

ENV_NAME = "lending_one_to_one_v0"
SEEDS = (0, 1, 2, 3, 7, 11, 20240607)
# Equilibrium actions are float32, so played rates match the reference to float32 precision.
RATE_RTOL = 1e-6
# Best-response play reaches the equilibrium to this rate error from CONVERGED_ROUND on.
CONVERGED_RATE_ERROR = 1e-4
CONVERGED_ROUND = 5


def play_episode(env: Any, policy: Policy, seed: int) -> list[dict[str, dict[str, Any]]]:
    """Play one episode and return the infos of every step that settled a round."""
    observations, _ = env.reset(seed=seed)
    policy.reset(seed)
    settled = []
    while env.agents:
        observations, _, _, _, infos = env.step(policy.act(observations))
        if any("utility" in info for info in infos.values()):
            settled.append(infos)
    return settled


def lender_infos(infos: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {agent: info for agent, info in infos.items() if agent.startswith("lender_")}


def rate_error(infos: Mapping[str, dict[str, Any]]) -> float:
    """Mean over lenders of |r - r*| / r*."""
    lenders = lender_infos(infos).values()
    return float(
        np.mean([abs(i["rate"] - i["reference"]["rate"]) / i["reference"]["rate"] for i in lenders])
    )


def nash_conv(infos: Mapping[str, dict[str, Any]]) -> float:
    return float(sum(i["best_response_utility"] - i["utility"] for i in infos.values()))


def closed_form_actions(game: Any, previous_rates: np.ndarray) -> np.ndarray:
    """Each lender's best-response action to last round's rates, from the closed form."""
    willingness = game.willingness[0]
    min_rate = game.min_rate[0]
    max_rate = float(game.max_rate[0])
    weighted = willingness / previous_rates  # d_j y_j, the borrower's loans
    beta = (weighted.sum() - weighted) / willingness
    price = np.sqrt(beta**2 + beta / min_rate) - beta
    price = np.clip(price, 1.0 / max_rate, 1.0 / min_rate)
    action = (1.0 / price - min_rate) / (max_rate - min_rate)
    return np.clip(action, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------
# Equilibrium policy


@pytest.mark.parametrize("seed", SEEDS)
def test_equilibrium_policy_plays_reference(seed: int) -> None:
    env = ledgerzoo.make(ENV_NAME, reference=True, max_cycles=6)
    rounds = play_episode(env, EquilibriumPolicy(env), seed)

    assert len(rounds) == 6, len(rounds)
    for infos in rounds:
        round_index = infos["lender_0"]["round"]
        for agent, info in infos.items():
            played, reference = info["rate"], info["reference"]["rate"]
            assert played == pytest.approx(reference, rel=RATE_RTOL), (
                f"round {round_index}, {agent}: played rate {played} vs equilibrium {reference}"
            )
        total = sum(info["reference"]["utility"] for info in infos.values())
        gain = nash_conv(infos)
        assert abs(gain) <= 1e-9 * total, (
            f"round {round_index}: NashConv {gain} vs equilibrium utilities {total}"
        )


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_equilibrium_with_learned_borrower(seed: int) -> None:
    env = ledgerzoo.make(ENV_NAME, reference=True, max_cycles=4, followers="learned")
    assert "borrower_0" in env.possible_agents, env.possible_agents
    rounds = play_episode(env, EquilibriumPolicy(env), seed)

    assert len(rounds) == 4, len(rounds)
    for infos in rounds:
        round_index = infos["lender_0"]["round"]
        assert set(infos) == set(env.possible_agents), sorted(infos)
        for agent, info in infos.items():
            for key in ("rate", "loan", "utility"):
                played, reference = info[key], info["reference"][key]
                assert played == pytest.approx(reference, rel=1e-6), (
                    f"round {round_index}, {agent}, {key}: played {played} vs equilibrium "
                    f"{reference}"
                )
        borrower = infos["borrower_0"]
        assert borrower["optimal_lender"] == borrower["reference"]["optimal_lender"], (
            f"round {round_index}: borrower took lender {borrower['optimal_lender']}, "
            f"equilibrium lender {borrower['reference']['optimal_lender']}"
        )
        total = sum(info["reference"]["utility"] for info in lender_infos(infos).values())
        gain = nash_conv(infos)
        assert abs(gain) <= 1e-6 * total, (
            f"round {round_index}: NashConv {gain} vs equilibrium lender utilities {total}"
        )


def test_equilibrium_policy_rejects_foreign_env() -> None:
    class NotAMarket:
        pass

    with pytest.raises(TypeError, match="not a ledgerzoo market env"):
        EquilibriumPolicy(NotAMarket())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Best-response policy


@pytest.mark.parametrize("n_lenders", [3, 5, 8])
@pytest.mark.parametrize("seed", SEEDS)
def test_best_response_reaches_equilibrium(seed: int, n_lenders: int) -> None:
    env = ledgerzoo.make(ENV_NAME, reference=True, max_cycles=10, n_lenders=n_lenders)
    rounds = play_episode(env, BestResponsePolicy(env), seed)

    errors = [rate_error(infos) for infos in rounds]
    for round_index, error in enumerate(errors):
        if round_index >= CONVERGED_ROUND:
            assert error < CONVERGED_RATE_ERROR, (
                f"round {round_index}: rate error {error} >= {CONVERGED_RATE_ERROR}; "
                f"errors by round {errors}"
            )
    assert errors[CONVERGED_ROUND] < errors[0], f"no progress: errors by round {errors}"


@pytest.mark.parametrize("seed", SEEDS)
def test_best_response_matches_closed_form(seed: int) -> None:
    env = ledgerzoo.make(ENV_NAME, reference=True, max_cycles=6)
    policy = BestResponsePolicy(env)
    observations, _ = env.reset(seed=seed)
    game = env.unwrapped.market.game  # drawn anew by each reset
    previous_rates: np.ndarray | None = None
    round_index = 0
    interior = 0
    while env.agents:
        actions = policy.act(observations)
        if previous_rates is not None:
            expected = closed_form_actions(game, previous_rates)
            interior += int(np.sum((expected > 1e-3) & (expected < 1.0 - 1e-3)))
            for index, agent in enumerate(env.agents):
                action = float(actions[agent][0])
                # The policy reads float32 observations, so agreement is to float32 precision.
                assert action == pytest.approx(expected[index], abs=1e-5), (
                    f"round {round_index}, {agent}: action {action} vs closed form "
                    f"{expected[index]} (last rates {previous_rates.tolist()})"
                )
        observations, _, _, _, infos = env.step(actions)
        previous_rates = np.array([infos[agent]["rate"] for agent in sorted(infos)])
        round_index += 1
    assert round_index == 6, round_index
    # Clipped actions would agree trivially; most must be interior for the check to mean much.
    assert interior >= 10, f"only {interior} of 25 best responses are interior"


def test_best_response_first_round_symmetric() -> None:
    # With no history, a lender posts the symmetric-equilibrium rate r_min,i (2N - 1) / (N - 1).
    env = ledgerzoo.make(ENV_NAME, max_cycles=2, n_lenders=4, max_rate=0.5)
    observations, _ = env.reset(seed=5)
    _, _, _, _, infos = env.step(BestResponsePolicy(env).act(observations))
    game = env.unwrapped.market.game

    for index in range(4):
        expected = min(game.min_rate[0, index] * 7.0 / 3.0, 0.5)
        played = infos[f"lender_{index}"]["rate"]
        assert played == pytest.approx(expected, rel=1e-6), (
            f"lender_{index}: first-round rate {played} vs symmetric rate {expected}"
        )


def test_best_response_borrower_alone() -> None:
    # A best-responding borrower behind learned (here fixed) lenders takes x_i = d_i / r_i.
    env = ledgerzoo.make(ENV_NAME, reference=True, max_cycles=3, followers="learned")
    policy = RolePolicies({"lender": FixedPolicy(env, 0.4), "borrower": BestResponsePolicy(env)})

    rounds = play_episode(env, policy, seed=0)

    assert len(rounds) == 3, len(rounds)
    game = env.unwrapped.market.game
    for infos in rounds:
        round_index = infos["borrower_0"]["round"]
        borrower = infos["borrower_0"]
        assert borrower["utility"] == pytest.approx(borrower["best_response_utility"], rel=1e-5), (
            f"round {round_index}: borrower utility {borrower['utility']} vs best response "
            f"{borrower['best_response_utility']}"
        )
        for index in range(game.n_lenders):
            info = infos[f"lender_{index}"]
            expected = game.willingness[0, index] / info["rate"]
            assert info["loan"] == pytest.approx(expected, rel=1e-5), (
                f"round {round_index}, lender_{index}: loan {info['loan']} vs d / r = {expected}"
            )


# ------------------------------------------------------------------------------------------------
# Fixed and random policies


@pytest.mark.parametrize("followers", ["analytic", "learned"])
def test_fixed_policy_in_action_space(followers: str) -> None:
    env = ledgerzoo.make(ENV_NAME, max_cycles=3, followers=followers)
    policy = FixedPolicy(env, value=0.25)
    observations, _ = env.reset(seed=0)
    while env.agents:
        actions = policy.act(observations)
        assert set(actions) == set(env.agents), f"{sorted(actions)} vs {env.agents}"
        for agent, action in actions.items():
            space = env.action_space(agent)
            assert space.contains(action), f"{agent}: {action!r} not in {space}"
            assert np.all(action == np.float32(0.25)), f"{agent}: {action!r} is not 0.25"
        observations, _, _, _, _ = env.step(actions)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fixed_policy_rejects_value(value: float) -> None:
    env = ledgerzoo.make(ENV_NAME)

    with pytest.raises(ValueError, match=str(value)):
        FixedPolicy(env, value=value)


@pytest.mark.parametrize("followers", ["analytic", "learned"])
def test_random_policy_in_action_space(followers: str) -> None:
    env = ledgerzoo.make(ENV_NAME, max_cycles=5, followers=followers)
    policy = RandomPolicy(env, seed=3)
    observations, _ = env.reset(seed=0)
    while env.agents:
        actions = policy.act(observations)
        assert set(actions) == set(env.agents), f"{sorted(actions)} vs {env.agents}"
        for agent, action in actions.items():
            space = env.action_space(agent)
            assert space.contains(action), f"{agent}: {action!r} not in {space}"
        observations, _, _, _, _ = env.step(actions)


def random_actions(policy: RandomPolicy, env: Any, steps: int) -> list[np.ndarray]:
    observations, _ = env.reset(seed=0)
    return [
        np.concatenate([action for _, action in sorted(policy.act(observations).items())])
        for _ in range(steps)
    ]


def test_random_policy_reproducible() -> None:
    env = ledgerzoo.make(ENV_NAME)
    first = random_actions(RandomPolicy(env, seed=42), env, 4)
    second = random_actions(RandomPolicy(env, seed=42), env, 4)
    other = random_actions(RandomPolicy(env, seed=43), env, 4)

    for step, (a, b) in enumerate(zip(first, second, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}: same seed, different actions")
    assert not np.array_equal(first[0], other[0]), f"seeds 42 and 43 both gave {first[0]}"


def test_random_policy_reset_reseeds() -> None:
    env = ledgerzoo.make(ENV_NAME)
    policy = RandomPolicy(env, seed=1)
    first = random_actions(policy, env, 3)

    policy.reset(1)
    again = random_actions(policy, env, 3)

    for step, (a, b) in enumerate(zip(first, again, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}: reset(1) did not reseed")


# ------------------------------------------------------------------------------------------------
# Role router and factory


class RecordingPolicy:
    """Plays a constant action and records the agents whose observations it received."""

    def __init__(self, value: float, size: int) -> None:
        self.value = value
        self.size = size
        self.seen: list[list[str]] = []
        self.seeds: list[int | None] = []

    def reset(self, seed: int | None = None) -> None:
        self.seeds.append(seed)

    def act(self, observations: Mapping[str, Any]) -> dict[str, np.ndarray]:
        self.seen.append(sorted(observations))
        return {agent: np.full(self.size, self.value, dtype=np.float32) for agent in observations}


def test_role_policies_route_by_role() -> None:
    env = ledgerzoo.make(ENV_NAME, max_cycles=2, followers="learned", n_lenders=3)
    lender = RecordingPolicy(0.25, 1)
    borrower = RecordingPolicy(0.75, 3)
    policy = RolePolicies({"lender": lender, "borrower": borrower})
    observations, _ = env.reset(seed=0)

    policy.reset(9)
    actions = policy.act(observations)

    assert lender.seen == [["lender_0", "lender_1", "lender_2"]], lender.seen
    assert borrower.seen == [["borrower_0"]], borrower.seen
    assert lender.seeds == [9], lender.seeds
    assert borrower.seeds == [9], borrower.seeds
    for agent in ("lender_0", "lender_1", "lender_2"):
        np.testing.assert_array_equal(actions[agent], [0.25], err_msg=agent)
    np.testing.assert_array_equal(actions["borrower_0"], [0.75, 0.75, 0.75])
    env.step(actions)


def test_role_policies_reject_uncovered_agent() -> None:
    env = ledgerzoo.make(ENV_NAME, followers="learned")
    observations, _ = env.reset(seed=0)
    policy = RolePolicies({"lender": FixedPolicy(env)})

    with pytest.raises(KeyError) as caught:
        policy.act(observations)

    message = str(caught.value)
    assert "borrower_0" in message, message
    assert "lender" in message, message


def test_role_policies_need_a_role() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RolePolicies({})


@pytest.mark.parametrize("name", BASELINES)
def test_make_baseline_builds_policy(name: str) -> None:
    env = ledgerzoo.make(ENV_NAME, reference=True, max_cycles=2)
    policy = make_baseline(name, env, seed=0)

    assert isinstance(policy, Policy), type(policy)
    observations, _ = env.reset(seed=0)
    actions = policy.act(observations)
    assert set(actions) == set(env.agents), f"{sorted(actions)} vs {env.agents}"


def test_make_baseline_rejects_unknown() -> None:
    env = ledgerzoo.make(ENV_NAME)

    with pytest.raises(ValueError) as caught:
        make_baseline("greedy", env)

    message = str(caught.value)
    assert "'greedy'" in message, message
    for name in BASELINES:
        assert name in message, f"{name!r} missing from the message {message!r}"


# ------------------------------------------------------------------------------------------------
# stable-baselines3 adapter


def test_sb3_policy_acts_for_lenders() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from ledgerzoo.envs.core.vector import RoleVecEnv

    n_lenders = 4
    market = registry.market_class(ENV_NAME)(num_instances=2, n_lenders=n_lenders)
    vec_env = RoleVecEnv(market, "lender")
    # PPO(seed=...) calls the VecEnv's seed(), which SuperSuit 3.11's ConcatVecEnv lacks.
    model = PPO("MlpPolicy", vec_env, n_steps=8, batch_size=16, seed=0, device="cpu")
    assert model.observation_space == vec_env.observation_space

    env = ledgerzoo.make(ENV_NAME, n_lenders=n_lenders, max_cycles=3)
    policy = SB3Policy(model, "lender")
    assert isinstance(policy, Policy), type(policy)
    observations, _ = env.reset(seed=0)
    while env.agents:
        actions = policy.act(observations)
        assert set(actions) == set(env.agents), f"{sorted(actions)} vs {env.agents}"
        for agent, action in actions.items():
            space = env.action_space(agent)
            assert action.dtype == np.float32, f"{agent}: dtype {action.dtype}"
            assert space.contains(action), f"{agent}: {action!r} not in {space}"
        observations, _, _, _, _ = env.step(actions)


def test_sb3_policy_rejects_other_role() -> None:
    class ConstantModel:
        def predict(self, batch: np.ndarray, deterministic: bool = True) -> tuple[Any, None]:
            return np.zeros((len(batch), 1), dtype=np.float32), None

    env = ledgerzoo.make(ENV_NAME, followers="learned")
    observations, _ = env.reset(seed=0)
    policy = SB3Policy(ConstantModel(), "lender")

    with pytest.raises(KeyError, match="borrower_0"):
        policy.act(observations)
