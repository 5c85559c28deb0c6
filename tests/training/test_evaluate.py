"""Tests of the evaluator: per-round metrics against hand-computed values, confidence intervals
against scipy, NashConv against an independent numeric best response, result files, user
policies and held-out seeds."""

from __future__ import annotations

import csv
import json
import math
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import optimize, stats

import ledgerzoo
from ledgerzoo.agents import EquilibriumPolicy, FixedPolicy, Policy, RandomPolicy
from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.envs.lending import model
from ledgerzoo.training.config import config_from_dict, load_config
from ledgerzoo.training.evaluate import (
    MetricSummary,
    evaluate_config,
    evaluate_policy,
    evaluation_seeds,
    resolve_policy,
    round_metrics,
    write_results,
)

ENV_NAME = "lending_one_to_one_v0"
REPOSITORY = Path(__file__).resolve().parents[2]
SHIPPED_CONFIGS = sorted((REPOSITORY / "configs").rglob("*.yaml"))
SMALL_ENV = {"n_lenders": 4, "max_cycles": 8}
EVAL_SEEDS = evaluation_seeds(123, 3)


def strict_json(text: str) -> Any:
    """Parse JSON and reject NaN and Infinity, which the JSON standard does not allow."""

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


# ------------------------------------------------------------------------------------------------
# Per-round metrics on hand-built infos


def lender_info(
    rate: float, utility: float, best: float, eq_rate: float, eq_utility: float
) -> dict[str, Any]:
    """Info of a lender in a round where the borrower got 10 and welfare was 16; at the
    equilibrium the borrower gets 8 and welfare is 17."""
    return {
        "rate": rate,
        "utility": utility,
        "best_response_utility": best,
        "borrower_utility": 10.0,
        "welfare": 16.0,
        "round": 3,
        "reference": {
            "rate": eq_rate,
            "utility": eq_utility,
            "borrower_utility": 8.0,
            "welfare": 17.0,
        },
    }


HAND_INFOS = {
    "lender_0": lender_info(rate=0.2, utility=3.0, best=3.5, eq_rate=0.25, eq_utility=4.0),
    "lender_1": lender_info(rate=0.3, utility=3.0, best=3.0, eq_rate=0.2, eq_utility=5.0),
}


def test_round_metrics_hand_values() -> None:
    metrics = round_metrics(HAND_INFOS)

    expected = {
        # mean(|0.2 - 0.25| / 0.25, |0.3 - 0.2| / 0.2) = mean(0.2, 0.5)
        "rate_error": 0.35,
        "mean_rate": 0.25,
        "equilibrium_mean_rate": 0.225,
        "utility/lender": 6.0,
        "equilibrium_utility/lender": 9.0,
        # (U* - U) / |U*| = (9 - 6) / 9
        "utility_gap/lender": 1.0 / 3.0,
        "borrower_utility": 10.0,
        "equilibrium_borrower_utility": 8.0,
        # (8 - 10) / 8
        "utility_gap/borrower": -0.25,
        "welfare": 16.0,
        "equilibrium_welfare": 17.0,
        # (3.5 - 3.0) + (3.0 - 3.0)
        "nash_conv": 0.5,
        # NashConv / sum of equilibrium utilities = 0.5 / (4 + 5)
        "normalized_nash_conv": 0.5 / 9.0,
    }
    assert set(metrics) == set(expected), f"{sorted(metrics)} vs {sorted(expected)}"
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-12), (
            f"{name}: {metrics[name]} vs hand value {value}"
        )


def test_round_metrics_learned_borrower() -> None:
    # A learned borrower's info repeats the rate of the lender it chose; it sets no rate.
    borrower = {
        "rate": 0.2,
        "utility": 10.0,
        "best_response_utility": 11.0,
        "welfare": 16.0,
        "round": 3,
        "reference": {"rate": 0.2, "utility": 8.0, "welfare": 17.0},
    }
    infos = {**HAND_INFOS, "borrower_0": borrower}

    metrics = round_metrics(infos, rate_roles=("lender",))

    assert metrics["rate_error"] == pytest.approx(0.35), metrics["rate_error"]
    assert metrics["utility/borrower"] == pytest.approx(10.0), metrics["utility/borrower"]
    # (8 - 10) / 8
    assert metrics["utility_gap/borrower"] == pytest.approx(-0.25), metrics["utility_gap/borrower"]
    # (3.5 - 3) + (3 - 3) + (11 - 10)
    assert metrics["nash_conv"] == pytest.approx(1.5), metrics["nash_conv"]
    # 1.5 / (4 + 5 + 8)
    assert metrics["normalized_nash_conv"] == pytest.approx(1.5 / 17.0), metrics[
        "normalized_nash_conv"
    ]


def test_round_metrics_zero_equilibrium_utility() -> None:
    infos = {"lender_0": lender_info(rate=0.2, utility=1.0, best=1.0, eq_rate=0.2, eq_utility=0.0)}

    metrics = round_metrics(infos)

    assert math.isnan(metrics["utility_gap/lender"]), metrics["utility_gap/lender"]
    assert math.isnan(metrics["normalized_nash_conv"]), metrics["normalized_nash_conv"]


# ------------------------------------------------------------------------------------------------
# Confidence intervals


@pytest.mark.parametrize(
    "values", [[1.0, 2.5, 3.0, 4.5], [0.1, 0.1, 0.4], [-2.0, 5.0], list(np.linspace(0, 1, 20))]
)
def test_summary_interval_matches_scipy(values: list[float]) -> None:
    summary = MetricSummary.of(values)
    mean = float(np.mean(values))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))

    assert summary.n == len(values), summary.n
    assert summary.mean == pytest.approx(mean, rel=1e-12), f"{summary.mean} vs {mean}"
    assert summary.std == pytest.approx(np.std(values, ddof=1), rel=1e-12), summary.std
    assert summary.mean - summary.ci95 == pytest.approx(low, rel=1e-12), (
        f"lower bound {summary.mean - summary.ci95} vs scipy {low}"
    )
    assert summary.mean + summary.ci95 == pytest.approx(high, rel=1e-12), (
        f"upper bound {summary.mean + summary.ci95} vs scipy {high}"
    )


def test_summary_of_one_value() -> None:
    summary = MetricSummary.of([2.0])

    assert summary.mean == 2.0, summary.mean
    assert summary.n == 1, summary.n
    assert math.isnan(summary.ci95), summary.ci95
    assert math.isnan(summary.std), summary.std


# ------------------------------------------------------------------------------------------------
# Whole evaluations


def test_equilibrium_policy_scores_zero() -> None:
    result = evaluate_policy(
        ENV_NAME, SMALL_ENV, EquilibriumPolicy, seeds=EVAL_SEEDS, skip_rounds=2
    )

    assert result.seeds == EVAL_SEEDS, result.seeds
    for name in ("rate_error", "normalized_nash_conv", "utility_gap/lender"):
        summary = result.metrics[name]
        assert summary.n == len(EVAL_SEEDS), f"{name}: {summary.n} episodes"
        assert abs(summary.mean) < 1e-6, f"{name}: mean {summary.mean}, expected about 0"
    for episode, (rates, reference) in enumerate(
        zip(result.rates, result.equilibrium_rates, strict=True)
    ):
        np.testing.assert_allclose(rates, reference, rtol=1e-6, err_msg=f"episode {episode}")


def test_random_policy_scores_positive() -> None:
    result = evaluate_policy(
        ENV_NAME,
        SMALL_ENV,
        lambda env: RandomPolicy(env, seed=0),
        seeds=EVAL_SEEDS,
        skip_rounds=2,
    )

    rate_error = result.metrics["rate_error"].mean
    normalized = result.metrics["normalized_nash_conv"].mean
    assert rate_error > 0.1, f"random rate error {rate_error}, expected clearly above 0"
    assert normalized > 0.01, f"random normalized NashConv {normalized}, expected above 0"
    assert result.metrics["nash_conv"].mean > 0.0, result.metrics["nash_conv"].mean


def test_best_response_policy_converges() -> None:
    config = config_from_dict(
        {
            "env": {"name": ENV_NAME, "kwargs": SMALL_ENV},
            "eval": {"episodes": 3, "seed": 5, "skip_rounds": 5},
        }
    )

    result = evaluate_config(config, "best_response")

    assert result.metrics["rate_error"].mean < 1e-4, result.metrics["rate_error"].mean
    assert result.policy == "best_response", result.policy


def test_rate_error_counts_only_lenders() -> None:
    n_lenders = 3
    result = evaluate_policy(
        ENV_NAME,
        {"n_lenders": n_lenders, "max_cycles": 4, "followers": "learned"},
        lambda env: RandomPolicy(env, seed=1),
        seeds=EVAL_SEEDS,
        skip_rounds=1,
    )

    for episode, rates in enumerate(result.rates):
        assert len(rates) == n_lenders, f"episode {episode}: rates of {len(rates)} agents"
    assert "utility_gap/borrower" in result.metrics, sorted(result.metrics)


def test_evaluation_needs_rounds_left() -> None:
    with pytest.raises(ValueError, match="skip_rounds"):
        evaluate_policy(ENV_NAME, {"max_cycles": 3}, EquilibriumPolicy, seeds=[1], skip_rounds=3)
    with pytest.raises(ValueError, match="seed"):
        evaluate_policy(ENV_NAME, {"max_cycles": 3}, EquilibriumPolicy, seeds=[])


# ------------------------------------------------------------------------------------------------
# NashConv against an independent best response


class DeviatingPolicy:
    """Plays the equilibrium, except that one lender plays a fixed action."""

    def __init__(self, env: Any, agent: str, action: float) -> None:
        self.equilibrium = EquilibriumPolicy(env)
        self.agent = agent
        self.action = np.array([action], dtype=np.float32)

    def reset(self, seed: int | None = None) -> None:
        self.equilibrium.reset(seed)

    def act(self, observations: Any) -> dict[str, np.ndarray]:
        return {**self.equilibrium.act(observations), self.agent: self.action}


def numeric_gains(game: Any, rates: np.ndarray) -> np.ndarray:
    """Each lender's gain from its best unilateral rate, by bounded scalar minimization of
    -LU_i over [r_min,i, r_max] with the borrower's best response x_j = d_j / r_j inside."""
    willingness, min_rate = game.willingness, game.min_rate
    max_rate = float(game.max_rate[0])

    def utilities(candidate: np.ndarray) -> np.ndarray:
        loans = willingness / candidate
        return model.lender_utilities(loans, candidate, willingness, min_rate)[0]

    current = utilities(rates)
    gains = np.zeros(rates.shape[1])
    for i in range(rates.shape[1]):

        def negative_utility(rate: float, i: int = i) -> float:
            candidate = rates.copy()
            candidate[0, i] = rate
            return -float(utilities(candidate)[i])

        best = optimize.minimize_scalar(
            negative_utility,
            bounds=(float(min_rate[0, i]), max_rate),
            method="bounded",
            options={"xatol": 1e-12},
        )
        gains[i] = -best.fun - current[i]
    return gains


@pytest.mark.parametrize("action", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("seed", [0, 4, 99])
def test_nash_conv_matches_numeric(seed: int, action: float) -> None:
    env = ledgerzoo.make(ENV_NAME, reference=True, n_lenders=3, max_cycles=1)
    policy = DeviatingPolicy(env, "lender_0", action)
    observations, _ = env.reset(seed=seed)
    _, _, _, _, infos = env.step(policy.act(observations))
    game = env.unwrapped.market.game
    rates = np.array([[infos[f"lender_{i}"]["rate"] for i in range(3)]])

    gains = numeric_gains(game, rates)
    metrics = round_metrics(infos)

    deviator_gain = infos["lender_0"]["best_response_utility"] - infos["lender_0"]["utility"]
    assert deviator_gain == pytest.approx(gains[0], rel=1e-6, abs=1e-10), (
        f"lender_0 gain {deviator_gain} vs numeric {gains[0]}"
    )
    assert gains[0] > 1e-3, f"lender_0 gains {gains[0]} from its best response"
    # The other lenders also gain from a best response to the deviation, so NashConv sums every
    # lender's gain. Their gains are second order in the deviation, below the deviator's.
    assert metrics["nash_conv"] == pytest.approx(gains.sum(), rel=1e-6, abs=1e-10), (
        f"NashConv {metrics['nash_conv']} vs numeric gains {gains.tolist()}"
    )
    assert gains[1:].sum() < gains[0], f"gains {gains.tolist()}"


def test_deviation_in_whole_evaluation() -> None:
    result = evaluate_policy(
        ENV_NAME,
        SMALL_ENV,
        lambda env: DeviatingPolicy(env, "lender_1", 0.9),
        seeds=EVAL_SEEDS,
        skip_rounds=0,
    )

    assert result.metrics["nash_conv"].mean > 1e-3, result.metrics["nash_conv"].mean
    assert result.metrics["rate_error"].mean > 1e-3, result.metrics["rate_error"].mean


# ------------------------------------------------------------------------------------------------
# Result files


def test_write_results_files(tmp_path: Path) -> None:
    result = evaluate_policy(
        ENV_NAME, SMALL_ENV, EquilibriumPolicy, seeds=EVAL_SEEDS, skip_rounds=2
    )

    paths = write_results(result, tmp_path / "out")

    for name in ("metrics.json", "metrics.csv", "rates.png"):
        path = tmp_path / "out" / name
        assert path.is_file(), f"{name} missing; written: {sorted(map(str, paths.values()))}"
        assert path.stat().st_size > 0, f"{name} is empty"
    data = strict_json((tmp_path / "out" / "metrics.json").read_text())
    assert data["env"] == ENV_NAME, data["env"]
    assert data["seeds"] == EVAL_SEEDS, data["seeds"]
    assert data["metrics"]["rate_error"]["n"] == 3, data["metrics"]["rate_error"]
    with (tmp_path / "out" / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["metric"] for row in rows] == list(result.metrics), [row["metric"] for row in rows]
    row = rows[0]
    summary = result.metrics[row["metric"]]
    assert float(row["mean"]) == pytest.approx(summary.mean), f"{row} vs {summary}"
    assert float(row["ci95_high"]) == pytest.approx(summary.mean + summary.ci95), f"{row}"
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_single_episode_json_is_strict(tmp_path: Path) -> None:
    result = evaluate_policy(ENV_NAME, SMALL_ENV, EquilibriumPolicy, seeds=[7], skip_rounds=2)

    write_results(result, tmp_path)

    data = strict_json((tmp_path / "metrics.json").read_text())
    assert data["metrics"]["rate_error"]["ci95"] is None, data["metrics"]["rate_error"]


def test_result_table_lists_metrics() -> None:
    result = evaluate_policy(
        ENV_NAME, SMALL_ENV, EquilibriumPolicy, seeds=EVAL_SEEDS, skip_rounds=2
    )

    table = result.table()

    for name in ("rate_error", "nash_conv", "normalized_nash_conv", "welfare"):
        assert name in table, f"{name} missing from the table:\n{table}"


# ------------------------------------------------------------------------------------------------
# User policies


USER_MODULE = "ledgerzoo_test_user_policies"
USER_SOURCE = '''
import numpy as np


class HalfPolicy:
    """Plays action 0.5 for every agent."""

    def __init__(self, env=None):
        self.env = env

    def reset(self, seed=None):
        pass

    def act(self, observations):
        return {agent: np.full(1, 0.5, dtype=np.float32) for agent in observations}


instance = HalfPolicy()


def factory(env):
    return HalfPolicy(env)


def returns_text(env):
    return "not a policy"


not_a_policy = 42
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write a module of user policies into tmp_path and put it on sys.path."""
    (tmp_path / f"{USER_MODULE}.py").write_text(textwrap.dedent(USER_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield USER_MODULE
    sys.modules.pop(USER_MODULE, None)


def small_config() -> Any:
    return config_from_dict(
        {
            "env": {"name": ENV_NAME, "kwargs": {"n_lenders": 3, "max_cycles": 4}},
            "eval": {"episodes": 2, "seed": 11, "skip_rounds": 1},
        }
    )


def test_user_policy_instance(user_module: str) -> None:
    source = resolve_policy(f"{user_module}:instance")

    assert isinstance(source, Policy), type(source)
    assert type(source).__name__ == "HalfPolicy", type(source)
    result = evaluate_config(small_config(), f"{user_module}:instance")
    assert result.policy == f"{user_module}:instance", result.policy
    assert result.metrics["rate_error"].mean > 0.0, result.metrics["rate_error"].mean


@pytest.mark.parametrize("attribute", ["factory", "HalfPolicy"])
def test_user_policy_factory(user_module: str, attribute: str) -> None:
    source = resolve_policy(f"{user_module}:{attribute}")
    env = ledgerzoo.make(ENV_NAME)

    policy = source(env)  # type: ignore[operator]

    assert isinstance(policy, Policy), type(policy)
    assert policy.env is env, "the factory did not receive the env"
    result = evaluate_config(small_config(), f"{user_module}:{attribute}")
    assert result.metrics["rate_error"].n == 2, result.metrics["rate_error"]


def test_user_policy_half_action(user_module: str) -> None:
    # The user's policy and the fixed baseline at 0.5 must score the same.
    config = small_config()
    user = evaluate_config(config, f"{user_module}:instance")
    fixed = evaluate_policy(
        ENV_NAME,
        config.env.kwargs,
        lambda env: FixedPolicy(env, 0.5),
        seeds=evaluation_seeds(config.eval.seed, config.eval.episodes),
        skip_rounds=config.eval.skip_rounds,
    )

    assert user.per_episode["rate_error"] == fixed.per_episode["rate_error"], (
        f"{user.per_episode['rate_error']} vs {fixed.per_episode['rate_error']}"
    )


def test_user_non_policy_rejected(user_module: str) -> None:
    with pytest.raises(ValueError) as caught:
        resolve_policy(f"{user_module}:not_a_policy")

    message = str(caught.value)
    assert f"{user_module}:not_a_policy" in message, message
    assert "Policy" in message, message


def test_user_factory_result_checked(user_module: str) -> None:
    source = resolve_policy(f"{user_module}:returns_text")

    with pytest.raises(ValueError, match="returned str, which is not a Policy"):
        source(ledgerzoo.make(ENV_NAME))  # type: ignore[operator]


def test_user_missing_attribute(user_module: str) -> None:
    with pytest.raises(ValueError, match="has no attribute 'absent'"):
        resolve_policy(f"{user_module}:absent")


def test_user_missing_module() -> None:
    with pytest.raises(ImportError, match="ledgerzoo_no_such_module"):
        resolve_policy("ledgerzoo_no_such_module:policy")


def test_unknown_policy_name() -> None:
    with pytest.raises(ValueError) as caught:
        resolve_policy("greedy")

    message = str(caught.value)
    assert "'greedy'" in message, message
    assert "equilibrium" in message, message
    assert "package.module:attribute" in message, message


# ------------------------------------------------------------------------------------------------
# Held-out seeds


@pytest.mark.parametrize(
    "path", SHIPPED_CONFIGS, ids=[str(p.relative_to(REPOSITORY)) for p in SHIPPED_CONFIGS]
)
def test_eval_seeds_disjoint_from_training(path: Path) -> None:
    config = load_config(path)
    held_out = evaluation_seeds(config.eval.seed, config.eval.episodes)
    training = instance_seeds(config.train.seed, config.train.num_instances)

    assert len(set(held_out)) == config.eval.episodes, f"repeated held-out seeds {held_out}"
    overlap = set(held_out) & set(training)
    assert not overlap, f"{path}: held-out seeds {sorted(overlap)} are training seeds too"
    assert config.train.seed not in held_out, f"train.seed {config.train.seed} is held out"


def test_eval_seeds_reproducible() -> None:
    assert evaluation_seeds(5, 4) == evaluation_seeds(5, 4), "same base seed, different seeds"
    assert evaluation_seeds(5, 4)[:2] == evaluation_seeds(5, 2), "a prefix changed with count"
    assert not set(evaluation_seeds(5, 4)) & set(evaluation_seeds(6, 4)), "bases 5 and 6 overlap"


def test_failing_policy_factory_named() -> None:
    def broken_factory(env: Any) -> Policy:
        raise TypeError("cannot build from this env")

    with pytest.raises(ValueError, match=r"building policy 'broken' failed: cannot build"):
        evaluate_policy(
            "lending_one_to_one_v0", {}, broken_factory, seeds=[1], policy_name="broken"
        )


def test_user_policy_from_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ledgerzoo console script runs without the working directory on sys.path.
    (tmp_path / "cwd_policies.py").write_text(textwrap.dedent(USER_SOURCE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".")])
    try:
        source = resolve_policy("cwd_policies:instance")
    finally:
        sys.modules.pop("cwd_policies", None)

    assert isinstance(source, Policy), type(source)
