"""Evaluation of any policy against the analytic equilibrium of its market.

The evaluator runs held-out episodes of the PettingZoo env built with ``reference=True`` and
reads every reference value from the env's infos, so it never recomputes an equilibrium in a
second way. Metrics, per round t >= ``skip_rounds`` (agents cannot know their rivals' private
parameters in round 0):

- ``rate_error``: mean over rate-setting agents of |r - r*| / r* (rates, not prices);
- ``utility_gap/<role>``: (U* - U) / |U*| with U the role's total utility;
- ``nash_conv``: sum over agents of (max over own action of U_i(a_i', a_-i) - U_i(a)), the
  gain of a unilateral best response against the others' actual actions (OpenSpiel's
  definition; exploitability is NashConv divided by the number of players);
- ``normalized_nash_conv``: NashConv divided by the sum of the same agents' equilibrium
  utilities;
- ``borrower_utility`` and ``welfare`` (sum of every utility), with their equilibrium values;
- ``failure_rate``: the share of rounds whose raise failed, where the market has raises;
- ``follower_response_gap``: with learned followers that invest, the mean absolute distance
  (coins) between an investment and the lenders' equilibrium response to the offered rates;
- ``nash_conv/<role>`` and ``normalized_nash_conv/<role>`` when several roles act.

Each metric is averaged over the rounds of an episode, then reported as the mean over
episodes (one held-out seed each) with a 95% confidence interval (Student t).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from pettingzoo import ParallelEnv
from scipy import stats

from ledgerzoo import registry
from ledgerzoo.agents.base import Policy, role_of
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.training.config import ExperimentConfig, write_atomic

PolicySource = Policy | Callable[[ParallelEnv], Policy]


@dataclass(frozen=True)
class MetricSummary:
    """A metric over evaluation episodes.

    Attributes:
        mean: Mean over episodes.
        ci95: Half-width of the 95% confidence interval of the mean (nan for one episode).
        std: Sample standard deviation over episodes.
        n: Number of episodes.
    """

    mean: float
    ci95: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> MetricSummary:
        """Summarize per-episode values."""
        array = np.asarray(values, dtype=np.float64)
        n = int(array.size)
        mean = float(array.mean()) if n else math.nan
        std = float(array.std(ddof=1)) if n > 1 else math.nan
        ci95 = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
        return cls(mean=mean, ci95=ci95, std=std, n=n)


@dataclass
class EvaluationResult:
    """Measurements of an evaluation.

    Attributes:
        env_name: Registry name of the env.
        policy: Name of the evaluated policy.
        seeds: The held-out seeds, one per episode.
        skip_rounds: Rounds left out at the start of each episode.
        metrics: Metric name -> summary over episodes.
        per_episode: Metric name -> value of each episode.
        rates: Per episode, the mean rate of each rate-setting agent over the evaluated rounds.
        equilibrium_rates: Per episode, the equilibrium rate of each rate-setting agent.
    """

    env_name: str
    policy: str
    seeds: list[int]
    skip_rounds: int
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    per_episode: dict[str, list[float]] = field(default_factory=dict)
    rates: list[list[float]] = field(default_factory=list)
    equilibrium_rates: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain data (the content of metrics.json)."""
        return {
            "env": self.env_name,
            "policy": self.policy,
            "seeds": self.seeds,
            "skip_rounds": self.skip_rounds,
            "metrics": {
                name: {"mean": s.mean, "ci95": s.ci95, "std": s.std, "n": s.n}
                for name, s in self.metrics.items()
            },
            "per_episode": self.per_episode,
            "rates": self.rates,
            "equilibrium_rates": self.equilibrium_rates,
        }

    def table(self) -> str:
        """Format the metrics as a text table: mean, 95% interval and episodes."""
        width = max([len(name) for name in self.metrics] + [6])
        lines = [
            f"{self.env_name}: policy {self.policy}, {len(self.seeds)} held-out episodes, "
            f"rounds >= {self.skip_rounds}",
            f"{'metric':<{width}}  {'mean':>12}  {'95% CI':>25}",
        ]
        for name, s in self.metrics.items():
            interval = (
                f"[{s.mean - s.ci95:.6g}, {s.mean + s.ci95:.6g}]" if math.isfinite(s.ci95) else "-"
            )
            lines.append(f"{name:<{width}}  {s.mean:>12.6g}  {interval:>25}")
        return "\n".join(lines)


def evaluate_policy(
    env_name: str,
    env_kwargs: Mapping[str, Any],
    policy: PolicySource,
    *,
    seeds: Sequence[int],
    skip_rounds: int = 0,
    policy_name: str = "policy",
) -> EvaluationResult:
    """Run a policy on held-out episodes and measure it against the analytic equilibrium.

    Args:
        env_name: Registry name of the env.
        env_kwargs: The env's keyword arguments (``reference`` is forced on).
        policy: A :class:`Policy`, or a callable that builds one from the env.
        seeds: One seed per episode.
        skip_rounds: Rounds left out at the start of each episode.
        policy_name: Name of the policy in the result.

    Returns:
        The metrics with 95% confidence intervals over episodes.

    Raises:
        ValueError: If no round is left after ``skip_rounds`` or no seed is given.
    """
    if not seeds:
        raise ValueError("evaluation needs at least one seed")
    kwargs = dict(env_kwargs)
    kwargs["reference"] = True
    kwargs.pop("render_mode", None)
    env = registry.make(env_name, **kwargs)
    agent_policy = _build_policy(policy, env, policy_name)
    market = getattr(getattr(env, "unwrapped", env), "market", None)
    rate_roles: Sequence[str] | None = getattr(market, "rate_roles", None) or None

    result = EvaluationResult(
        env_name=env_name, policy=policy_name, seeds=list(seeds), skip_rounds=skip_rounds
    )
    per_episode: dict[str, list[float]] = {}
    for seed in seeds:
        observations, _ = env.reset(seed=int(seed))
        agent_policy.reset(int(seed))
        if rate_roles is None and market is not None:
            # NOTE: a market that declares no rate_roles is assumed to have its rates set by
            # the roles that act in the first step of a round (the leaders). A learned
            # borrower's info repeats the rate of the lender it chose, and it must not count.
            rate_roles = tuple(market.acting_roles())
        rounds: list[dict[str, float]] = []
        rate_rows: list[np.ndarray] = []
        equilibrium_row: np.ndarray | None = None
        while env.agents:
            actions = agent_policy.act(observations)
            observations, _, _, _, infos = env.step(actions)
            if not any(keys.UTILITY in info for info in infos.values()):
                continue  # a leaders' step: the round is settled in the next step
            round_index = next(iter(infos.values()))[keys.ROUND]
            if round_index < skip_rounds:
                continue
            rounds.append(round_metrics(infos, rate_roles))
            rates, equilibrium_rates = _rates(infos, rate_roles)
            rate_rows.append(rates)
            equilibrium_row = equilibrium_rates
        if not rounds:
            raise ValueError(
                f"no round left to evaluate: skip_rounds={skip_rounds} is not below the "
                "episode length; lower eval.skip_rounds"
            )
        for name in rounds[0]:
            per_episode.setdefault(name, []).append(float(np.mean([r[name] for r in rounds])))
        result.rates.append(np.mean(rate_rows, axis=0).tolist())
        result.equilibrium_rates.append([] if equilibrium_row is None else equilibrium_row.tolist())
    env.close()
    result.per_episode = per_episode
    result.metrics = {name: MetricSummary.of(values) for name, values in per_episode.items()}
    return result


def round_metrics(
    infos: Mapping[str, Mapping[str, Any]], rate_roles: Sequence[str] | None = None
) -> dict[str, float]:
    """Metrics of one settled round, from the infos of an env built with ``reference=True``.

    Args:
        infos: ``info[agent]`` of the step that settled the round.
        rate_roles: Roles whose rates count in the rate error; by default every agent whose
            info carries a rate and a reference rate.

    Returns:
        Metric name -> value for this round.
    """
    metrics: dict[str, float] = {}
    rates, equilibrium_rates = _rates(infos, rate_roles)
    if rates.size:
        metrics["rate_error"] = float(
            np.mean(np.abs(rates - equilibrium_rates) / equilibrium_rates)
        )
        metrics["mean_rate"] = float(np.mean(rates))
        metrics["equilibrium_mean_rate"] = float(np.mean(equilibrium_rates))

    totals: dict[str, list[float]] = {}
    for agent, info in infos.items():
        reference = info.get(keys.REFERENCE, {})
        if keys.UTILITY in info and keys.UTILITY in reference:
            entry = totals.setdefault(role_of(agent), [0.0, 0.0])
            entry[0] += float(info[keys.UTILITY])
            entry[1] += float(reference[keys.UTILITY])
    for role, (utility, equilibrium_utility) in sorted(totals.items()):
        metrics[f"utility/{role}"] = utility
        metrics[f"equilibrium_utility/{role}"] = equilibrium_utility
        metrics[f"utility_gap/{role}"] = _gap(utility, equilibrium_utility)

    metrics.update(_optimal_lender_metrics(infos))

    first = next(iter(infos.values()))
    first_reference = first.get(keys.REFERENCE, {})
    if keys.BORROWER_UTILITY in first and keys.BORROWER_UTILITY in first_reference:
        borrower, equilibrium_borrower = (
            float(first[keys.BORROWER_UTILITY]),
            float(first_reference[keys.BORROWER_UTILITY]),
        )
        metrics["borrower_utility"] = borrower
        metrics["equilibrium_borrower_utility"] = equilibrium_borrower
        if "borrower" not in totals:
            metrics["utility_gap/borrower"] = _gap(borrower, equilibrium_borrower)
    if keys.WELFARE in first and keys.WELFARE in first_reference:
        metrics["welfare"] = float(first[keys.WELFARE])
        metrics["equilibrium_welfare"] = float(first_reference[keys.WELFARE])

    responses = [
        abs(float(info[keys.INVESTMENT]) - float(info[keys.FOLLOWER_RESPONSE]))
        for info in infos.values()
        if keys.FOLLOWER_RESPONSE in info and keys.INVESTMENT in info
    ]
    if responses:
        # How far learned followers act from their equilibrium response to the leader's offer.
        metrics["follower_response_gap"] = float(np.mean(responses))
    if keys.RAISE_FAILED in first:
        metrics["failure_rate"] = float(bool(first[keys.RAISE_FAILED]))
    metrics.update(_ledger_metrics(infos))
    metrics.update(_cost_metrics(infos))
    metrics.update(_auction_metrics(infos))
    metrics.update(_nash_conv(infos, "nash_conv", "normalized_nash_conv"))
    roles = sorted({role_of(agent) for agent in infos})
    if len(roles) > 1:
        for role in roles:
            mine = {agent: info for agent, info in infos.items() if role_of(agent) == role}
            metrics.update(_nash_conv(mine, f"nash_conv/{role}", f"normalized_nash_conv/{role}"))
    return metrics


def _optimal_lender_metrics(infos: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Return the rate of the lender the borrower took its loan from, in play and at
    equilibrium, or nothing for a market whose lenders carry no ``is_optimal_lender``."""
    played = equilibrium = None
    for info in infos.values():
        reference = info.get(keys.REFERENCE, {})
        if keys.IS_OPTIMAL_LENDER not in info or keys.IS_OPTIMAL_LENDER not in reference:
            continue
        if bool(info[keys.IS_OPTIMAL_LENDER]):
            played = float(info[keys.RATE])
        if bool(reference[keys.IS_OPTIMAL_LENDER]):
            equilibrium = float(reference[keys.RATE])
    if played is None or equilibrium is None:
        return {}
    return {"optimal_lender_rate": played, "equilibrium_optimal_lender_rate": equilibrium}


def _ledger_metrics(infos: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Settlement metrics of one round: cashflow per role, coins lent, and whether a loan
    defaulted (nothing for a round whose infos carry no ledger entries)."""
    if not any(keys.CASHFLOW in info for info in infos.values()):
        return {}
    metrics: dict[str, float] = {}
    for agent, info in infos.items():
        if keys.CASHFLOW in info:
            name = f"cashflow/{role_of(agent)}"
            metrics[name] = metrics.get(name, 0.0) + float(info[keys.CASHFLOW])
    # The borrower's info contains the round's totals. With an analytic borrower only the
    # lenders' infos exist, each with its own part.
    borrowers = [info for info in infos.values() if keys.DEFAULTED in info]
    if borrowers:
        defaulted = float(borrowers[0][keys.DEFAULTED])
        lent = float(borrowers[0][keys.BORROWED])
    elif any(keys.LENT in info for info in infos.values()):
        defaulted = sum(float(info.get(keys.LOST_TO_DEFAULT, 0.0)) for info in infos.values())
        lent = sum(float(info.get(keys.LENT, 0.0)) for info in infos.values())
    else:
        return metrics  # a market without loans between its agents
    metrics["lent"] = lent
    metrics["defaulted"] = defaulted
    metrics["default_rate"] = float(defaulted > 0.0)
    return metrics


def _cost_metrics(infos: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Cost metrics of a round of a market whose agents minimize costs (offloading): the
    total cost against the reference equilibrium's, the optimum's and the baselines', each
    device's relative cost gap, and the price of anarchy (nothing without those infos)."""
    players = [
        info
        for info in infos.values()
        if keys.COST in info and keys.TOTAL_COST in info.get(keys.REFERENCE, {})
    ]
    if not players:
        return {}
    reference = players[0][keys.REFERENCE]
    total = float(players[0][keys.TOTAL_COST])
    equilibrium_total = float(reference[keys.TOTAL_COST])
    metrics = {
        "total_cost": total,
        "equilibrium_total_cost": equilibrium_total,
        "total_cost_gap": (total - equilibrium_total) / equilibrium_total,
        "cost_gap/device": float(
            np.mean(
                [
                    (float(info[keys.COST]) - float(info[keys.REFERENCE][keys.COST]))
                    / float(info[keys.REFERENCE][keys.COST])
                    for info in players
                ]
            )
        ),
    }
    if keys.OPTIMUM_COST in reference:
        optimum = float(reference[keys.OPTIMUM_COST])
        metrics["optimum_cost"] = optimum
        metrics["price_of_anarchy"] = equilibrium_total / optimum
        metrics["cost_ratio_to_optimum"] = total / optimum
        if keys.OPTIMUM_EXACT in reference:
            # The share of rounds whose optimum is exact; the others use a local-search bound.
            metrics["optimum_exact"] = float(bool(reference[keys.OPTIMUM_EXACT]))
    if keys.PAYMENT_REJECTED in players[0]:
        metrics["payment_rejected"] = float(
            np.mean([bool(info[keys.PAYMENT_REJECTED]) for info in players])
        )
    for baseline in ("all_local", "nearest_edge", "random"):
        if f"{baseline}_cost" in reference:
            metrics[f"{baseline}_cost"] = float(reference[f"{baseline}_cost"])
    return metrics


def _auction_metrics(infos: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Metrics of a round of the data market: welfare efficiency and payment shift against
    the truthful auction's fixed point, and the relays' forwarding rate (nothing for other
    markets)."""
    metrics: dict[str, float] = {}
    first = next(iter(infos.values()))
    reference = first.get(keys.REFERENCE, {})
    if keys.TOTAL_PAYMENT in first and keys.TOTAL_PAYMENT in reference:
        welfare, optimum = float(first[keys.WELFARE]), float(reference[keys.WELFARE])
        metrics["welfare_efficiency"] = welfare / optimum if optimum > 0.0 else math.nan
        paid, truthful = float(first[keys.TOTAL_PAYMENT]), float(reference[keys.TOTAL_PAYMENT])
        metrics["payment_shift"] = (paid - truthful) / truthful if truthful > 0.0 else math.nan
    busy = [
        bool(info[keys.FORWARDED])
        for info in infos.values()
        if keys.FORWARDED in info and float(info.get(keys.MESSAGES, 0.0)) > 0.0
    ]
    if busy:
        # The share of relays carrying messages this round that forwarded them.
        metrics["forwarding_rate"] = float(np.mean(busy))
    return metrics


def _nash_conv(
    infos: Mapping[str, Mapping[str, Any]], name: str, normalized_name: str
) -> dict[str, float]:
    """NashConv of the agents in ``infos`` that report a best-response utility, and its
    normalization by their equilibrium utilities, or by their equilibrium total cost in a
    market whose agents minimize costs (nothing if no agent reports one)."""
    players = [
        info
        for info in infos.values()
        if keys.BEST_RESPONSE_UTILITY in info and keys.UTILITY in info
    ]
    if not players:
        return {}
    nash_conv = float(
        sum(float(info[keys.BEST_RESPONSE_UTILITY]) - float(info[keys.UTILITY]) for info in players)
    )
    if all(keys.COST in info.get(keys.REFERENCE, {}) for info in players):
        # Utilities are minus costs (plus constants), so the scale is the equilibrium cost.
        equilibrium_total = sum(float(info[keys.REFERENCE][keys.COST]) for info in players)
    else:
        equilibrium_total = sum(
            float(info[keys.REFERENCE][keys.UTILITY])
            for info in players
            if keys.UTILITY in info.get(keys.REFERENCE, {})
        )
    normalized = nash_conv / equilibrium_total if equilibrium_total > 0.0 else math.nan
    return {name: nash_conv, normalized_name: normalized}


def write_results(result: EvaluationResult, directory: str | Path) -> dict[str, Path]:
    """Write metrics.json, metrics.csv and the rate plot into a directory (atomically).

    metrics.json is strict JSON: an undefined value (the interval of a single episode, a gap
    to a zero equilibrium utility) is null there and nan in metrics.csv.

    Returns:
        Kind -> path of every file written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "metrics.json", "csv": out / "metrics.csv"}
    data = _json_compatible(result.to_dict())
    write_atomic(paths["json"], json.dumps(data, indent=2, allow_nan=False) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "mean", "ci95", "ci95_low", "ci95_high", "std", "episodes"])
    for name, s in result.metrics.items():
        writer.writerow([name, s.mean, s.ci95, s.mean - s.ci95, s.mean + s.ci95, s.std, s.n])
    write_atomic(paths["csv"], buffer.getvalue())
    if any(result.rates):
        from ledgerzoo.training.plots import plot_rates

        paths["rates_plot"] = plot_rates(result, out / "rates.png")
    return paths


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """Derive the held-out seeds of an evaluation, like the instance seeds of a vector env."""
    return instance_seeds(seed, episodes)


# --------------------------------------------------------------------------------------------


def _is_policy_instance(source: Any) -> bool:
    """Check whether ``source`` is a built policy.

    A policy class matches the Policy protocol too, because it has ``reset`` and ``act``. It is
    still a factory, to be called with the env.
    """
    return isinstance(source, Policy) and not isinstance(source, type)


def _build_policy(source: PolicySource, env: ParallelEnv, name: str) -> Policy:
    """Return a built policy as it is, or call a factory (a policy class too) with the env."""
    if _is_policy_instance(source):
        return cast(Policy, source)
    factory = cast(Callable[[ParallelEnv], Policy], source)
    try:
        return factory(env)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"building policy {name!r} failed: {error}") from error


def _json_compatible(value: Any) -> Any:
    """Replace nan and infinite floats, at any depth of dicts and lists, by None."""
    if isinstance(value, dict):
        return {key: _json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_compatible(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _gap(utility: float, equilibrium_utility: float) -> float:
    if equilibrium_utility == 0.0:
        return math.nan
    return (equilibrium_utility - utility) / abs(equilibrium_utility)


def _rates(
    infos: Mapping[str, Mapping[str, Any]], rate_roles: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    rates: list[float] = []
    equilibrium_rates: list[float] = []
    for agent, info in infos.items():
        if rate_roles is not None and role_of(agent) not in rate_roles:
            continue
        reference = info.get(keys.REFERENCE, {})
        # A role that sets one rate per counterpart reports them all under RATES.
        key = keys.RATES if keys.RATES in info and keys.RATES in reference else keys.RATE
        if key in info and key in reference:
            rates.extend(np.ravel(info[key]).astype(float))
            equilibrium_rates.extend(np.ravel(reference[key]).astype(float))
    return np.asarray(rates), np.asarray(equilibrium_rates)


def evaluate_config(
    config: ExperimentConfig, policy: str = "equilibrium", out_dir: str | Path | None = None
) -> EvaluationResult:
    """Evaluate a baseline or a user's policy on a config's held-out seeds.

    Args:
        config: A validated experiment config.
        policy: ``equilibrium``, ``best_response``, ``random``, ``fixed``, or
            ``package.module:attribute`` naming a :class:`Policy` instance, or a callable that
            takes the PettingZoo env and returns one.
        out_dir: Where to write metrics.json, metrics.csv and rates.png (nothing if None).

    Raises:
        ValueError: For an unknown policy name or an attribute that is not a policy.
        ImportError: If the user's module cannot be imported.
    """
    result = evaluate_on_config(config, resolve_policy(policy, seed=config.eval.seed), policy)
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def evaluate_on_config(
    config: ExperimentConfig, policy: PolicySource, policy_name: str
) -> EvaluationResult:
    """Run :func:`evaluate_policy` with the env, held-out seeds and skipped rounds of a config."""
    return evaluate_policy(
        config.env.name,
        config.env.kwargs,
        policy,
        seeds=evaluation_seeds(config.eval.seed, config.eval.episodes),
        skip_rounds=config.eval.skip_rounds,
        policy_name=policy_name,
    )


def resolve_policy(name: str, seed: int | None = None) -> PolicySource:
    """Turn a policy name into a policy or a factory that builds one from the env."""
    from ledgerzoo.agents import BASELINES, make_baseline

    if name in BASELINES:
        return lambda env: make_baseline(name, env, seed=seed)
    if ":" not in name:
        raise ValueError(
            f"unknown policy {name!r}; use one of {list(BASELINES)} or "
            "'package.module:attribute' for your own Policy"
        )
    module_name, _, attribute = name.partition(":")
    try:
        module = _import_user_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"cannot import module {module_name!r} of policy {name!r}: {error}; check that it is "
            "importable (on PYTHONPATH or installed)"
        ) from error
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if _is_policy_instance(target):
        return target
    if callable(target):
        return _checked_factory(target, name)
    raise ValueError(
        f"{name!r} is neither a Policy (with reset and act) nor a callable that builds one"
    )


def _import_user_module(module_name: str) -> Any:
    """Import a user's module, also from the working directory, as ``python -m`` would.

    The ``ledgerzoo`` console script does not put the working directory on sys.path, so a
    policy module next to the user's config would not be found without this.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        top = module_name.partition(".")[0]
        cwd = os.getcwd()
        if error.name != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)
        return importlib.import_module(module_name)


def _checked_factory(
    factory: Callable[[ParallelEnv], Any], name: str
) -> Callable[[ParallelEnv], Policy]:
    def build(env: ParallelEnv) -> Policy:
        policy = factory(env)
        if not isinstance(policy, Policy):
            raise ValueError(
                f"{name!r} returned {type(policy).__name__}, which is not a Policy (it needs "
                "reset(seed) and act(observations))"
            )
        return policy

    return build
