"""Time how long the main job takes to reach its accuracy targets, in wall time and agent-steps.

Usage:
    python benchmarks/training_speed.py [CONFIG] [--run-dir DIR] [--eval-every STEPS]
        [--total-timesteps STEPS] [--json]

The script trains CONFIG (by default configs/lending/one_to_one.yaml, the run that
``ledgerzoo train`` does) once, with ``ledgerzoo.training.train.train``, saving a checkpoint
every ``--eval-every`` agent-steps in place of the config's ``train.checkpoint_every``. The
learning rate decays linearly over the whole run, so every checkpoint comes from the one
run, never from a shorter one. After training it evaluates each checkpoint and the final
model with the evaluator of ``ledgerzoo.training.evaluate`` on the config's held-out seeds,
and reports the first checkpoint that meets both targets:

- mean relative rate error at most ``RATE_ERROR_TARGET`` (2%);
- mean normalized NashConv at most ``NASH_CONV_TARGET`` (2%).

Each checkpoint gets two times, both read from the modification time of its file:

- since ``train`` was called, which includes building the envs and the model (the
  training libraries are imported before the clock starts);
- in the learning loop, which starts where the final model's write time minus the loop's
  duration (``train_seconds`` in the run's provenance.json) puts it. The final model is
  written right after the loop ends, so this is exact to within that write, a few ms.

Evaluations run after training, one at a time, and their time is reported apart. The
targets are known only at checkpoints, so the steps and time to reach them are rounded up
to the next checkpoint. A checkpoint at X agent-steps contains the model after the update
that ended at X. Saving one every 500k agent-steps, where the config saves every 1M, adds 8
saves of a model and its training state (each file about 0.2 MB for this config) to the run.

Pass ``--total-timesteps`` with a small budget only to check that the script works: it
changes the learning-rate schedule, and so the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from ledgerzoo import registry
from ledgerzoo._extras import require
from ledgerzoo.agents.sb3 import SB3Policy
from ledgerzoo.training.config import ExperimentConfig, load_config, validate
from ledgerzoo.training.evaluate import (
    evaluate_on_config,
    evaluate_policy,
    evaluation_seeds,
    resolve_policy,
)
from ledgerzoo.training.train import CHECKPOINT_PATTERN, role_algorithm, train

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lending" / "one_to_one.yaml"
DEFAULT_EVAL_EVERY = 500_000
RATE_ERROR_TARGET = 0.02
NASH_CONV_TARGET = 0.02
REPORTED = ("rate_error", "normalized_nash_conv")
# Column "targets" of the table, by (rate error met, normalized NashConv met).
TARGET_LABELS = {
    (True, True): "both",
    (True, False): "rate",
    (False, True): "nash",
    (False, False): "none",
}


def configure(config: ExperimentConfig, eval_every: int, total_timesteps: int | None) -> None:
    """Set the checkpoint interval, keep every checkpoint, optionally change the budget, and
    check that this benchmark can measure the config.

    Raises:
        ConfigError: If the changed config is invalid.
        ValueError: If the config trains more than one role, whose checkpoints this script
            does not read, or if the evaluator reports no rate error or normalized NashConv
            for its env.
    """
    if total_timesteps is not None:
        config.train.total_timesteps = total_timesteps
    config.train.checkpoint_every = eval_every
    # Every checkpoint is evaluated, so none may be deleted during the run.
    config.train.keep_checkpoints = config.train.total_timesteps // eval_every + 2
    validate(config, "training_speed")
    market = registry.market_class(config.env.name)(num_instances=1, **config.env.kwargs)
    if len(market.roles) != 1:
        raise ValueError(
            f"{config.env.name} trains {len(market.roles)} roles; this benchmark reads the "
            "checkpoints of one-role runs only (use benchmarks/main_job.py for the others)"
        )
    # One held-out episode of the analytic equilibrium shows which metrics the evaluator
    # reports for this env, before any time goes into training.
    probe = evaluate_policy(
        config.env.name,
        config.env.kwargs,
        resolve_policy("equilibrium", seed=config.eval.seed),
        seeds=evaluation_seeds(config.eval.seed, 1),
        skip_rounds=config.eval.skip_rounds,
    )
    missing = [name for name in REPORTED if name not in probe.metrics]
    if missing:
        raise ValueError(
            f"the evaluator reports no {missing} for {config.env.name}, so its targets cannot "
            f"be checked; pass a config whose env sets rates, such as {DEFAULT_CONFIG.name}"
        )


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Return the run's checkpoints as (agent-steps, path), oldest first."""
    found = []
    for path in (run_dir / "checkpoints").glob("model_*.zip"):
        match = CHECKPOINT_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def evaluate_model(config: ExperimentConfig, path: Path) -> tuple[dict[str, Any], float]:
    """Evaluate a saved model on the config's held-out seeds.

    Returns:
        The reported metrics (mean and 95% half-width) and the evaluation's wall time (s).
    """
    market = registry.market_class(config.env.name)(num_instances=1, **config.env.kwargs)
    role = market.roles[0].name
    started = time.perf_counter()
    policy = SB3Policy.load(
        str(path),
        role,
        role_algorithm(config.train.algorithm, market, role),
        deterministic=config.eval.deterministic,
    )
    result = evaluate_on_config(config, policy, f"{config.train.algorithm} ({path.name})")
    seconds = time.perf_counter() - started
    metrics = {
        name: {"mean": summary.mean, "ci95": summary.ci95}
        for name, summary in result.metrics.items()
        if name in REPORTED
    }
    return metrics, seconds


def meets_targets(metrics: dict[str, Any]) -> dict[str, bool]:
    """Return whether the mean over the held-out seeds meets each target."""
    return {
        "rate_error": metrics["rate_error"]["mean"] <= RATE_ERROR_TARGET,
        "normalized_nash_conv": metrics["normalized_nash_conv"]["mean"] <= NASH_CONV_TARGET,
    }


def first_reached(points: list[dict[str, Any]], target: str | None) -> dict[str, Any] | None:
    """Return the first evaluated point that meets one target, or both when ``target`` is None."""
    for point in points:
        met = point["targets_met"]
        if all(met.values()) if target is None else met[target]:
            return {
                "agent_steps": point["agent_steps"],
                "train_seconds": point["train_seconds"],
                "learning_loop_seconds": point["learning_loop_seconds"],
            }
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    parser.add_argument(
        "--run-dir", default=None, help="run directory (default: a new one under runs/)"
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=DEFAULT_EVAL_EVERY,
        help=f"agent-steps between evaluated checkpoints (default {DEFAULT_EVAL_EVERY})",
    )
    parser.add_argument(
        "--total-timesteps",
        type=int,
        default=None,
        help="override train.total_timesteps (agent-steps); for testing the script only",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.eval_every < 1:
        parser.error(f"--eval-every must be at least 1 agent-step, got {args.eval_every}")
    if args.total_timesteps is not None and args.total_timesteps < 1:
        parser.error(f"--total-timesteps must be at least 1, got {args.total_timesteps}")

    config = load_config(args.config)
    configure(config, args.eval_every, args.total_timesteps)
    # Imported now so that the import time is not counted as training time.
    require("torch", "training")
    require("stable_baselines3", "training")

    started_ns = time.time_ns()
    started = time.perf_counter()
    result = train(
        config,
        args.run_dir,
        config_path=args.config,
        progress_bar=False,
        evaluate_after=False,
    )
    train_seconds = time.perf_counter() - started
    provenance = json.loads((result.run_dir / "provenance.json").read_text())
    loop_seconds = float(provenance["train_seconds"])
    loop_started_ns = result.model_path.stat().st_mtime_ns - int(loop_seconds * 1e9)

    points = []
    evaluation_seconds = 0.0
    saved = [
        (steps, path) for steps, path in checkpoints(result.run_dir) if steps < result.timesteps
    ]
    saved.append((result.timesteps, result.model_path))
    for steps, path in saved:
        metrics, seconds = evaluate_model(config, path)
        evaluation_seconds += seconds
        points.append(
            {
                "agent_steps": steps,
                "train_seconds": (path.stat().st_mtime_ns - started_ns) / 1e9,
                "learning_loop_seconds": (path.stat().st_mtime_ns - loop_started_ns) / 1e9,
                "metrics": metrics,
                "targets_met": meets_targets(metrics),
                "eval_seconds": seconds,
            }
        )
    report = {
        "config": args.config,
        "run_dir": str(result.run_dir),
        "total_timesteps": config.train.total_timesteps,
        "eval_every": args.eval_every,
        "targets": {"rate_error": RATE_ERROR_TARGET, "normalized_nash_conv": NASH_CONV_TARGET},
        "agent_steps": result.timesteps,
        "train_seconds": train_seconds,
        "learning_loop_seconds": loop_seconds,
        "evaluation_seconds": evaluation_seconds,
        "first_reached": {
            "both": first_reached(points, None),
            "rate_error": first_reached(points, "rate_error"),
            "normalized_nash_conv": first_reached(points, "normalized_nash_conv"),
        },
        "points": points,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_report(report)


def print_report(report: dict[str, Any]) -> None:
    """Print the report as a table of the evaluated checkpoints and a summary."""
    print(
        f"{report['config']}: {report['agent_steps']} agent-steps, training "
        f"{report['train_seconds']:.1f} s (learning loop {report['learning_loop_seconds']:.1f} "
        f"s), evaluation {report['evaluation_seconds']:.1f} s ({report['machine']})"
    )
    print(
        f"{'agent-steps':>12} {'train s':>8} {'loop s':>8} {'rate error':>18} "
        f"{'norm. NashConv':>20} {'targets':>8} {'eval s':>7}"
    )
    for point in report["points"]:
        rate = point["metrics"]["rate_error"]
        nash = point["metrics"]["normalized_nash_conv"]
        met = point["targets_met"]
        label = TARGET_LABELS[(met["rate_error"], met["normalized_nash_conv"])]
        print(
            f"{point['agent_steps']:>12} {point['train_seconds']:>8.1f} "
            f"{point['learning_loop_seconds']:>8.1f} {rate['mean']:>9.4f} +-{rate['ci95']:.4f} "
            f"{nash['mean']:>10.5f} +-{nash['ci95']:.5f} {label:>8} "
            f"{point['eval_seconds']:>7.1f}"
        )
    for name, reached in report["first_reached"].items():
        if reached is None:
            print(f"target {name}: not met in {report['agent_steps']} agent-steps")
        else:
            print(
                f"target {name}: first met at {reached['agent_steps']} agent-steps, "
                f"{reached['train_seconds']:.1f} s after train() was called "
                f"({reached['learning_loop_seconds']:.1f} s in the learning loop)"
            )


if __name__ == "__main__":
    main()
