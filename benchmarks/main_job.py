"""Time the main job (training on a shipped config, then evaluation) and print its metrics.

Usage:
    python benchmarks/main_job.py [CONFIG] [--run-dir DIR] [--json]

Prints the wall-clock time of training and evaluation and the evaluation's rate error and
normalized NashConv with 95% confidence intervals. The results of this script are recorded
in docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from ledgerzoo.training.config import load_config
from ledgerzoo.training.train import train

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lending" / "one_to_one.yaml"
REPORTED = (
    "rate_error",
    "normalized_nash_conv",
    "nash_conv",
    "utility_gap/lender",
    "utility_gap/borrower",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    parser.add_argument(
        "--run-dir", default=None, help="run directory (default: a new one under runs/)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    config = load_config(args.config)
    started = time.perf_counter()
    result = train(config, args.run_dir, config_path=args.config, progress_bar=False)
    seconds = time.perf_counter() - started
    assert result.evaluation is not None, "train() was asked to evaluate"
    metrics = {
        name: {"mean": s.mean, "ci95": s.ci95}
        for name, s in result.evaluation.metrics.items()
        if name in REPORTED
    }
    report = {
        "config": args.config,
        "run_dir": str(result.run_dir),
        "agent_steps": result.timesteps,
        "wall_seconds_train_and_eval": round(seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "metrics": metrics,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['config']}: {report['agent_steps']} agent-steps in {seconds:.0f} s ({report['machine']})"
    )
    for name, value in metrics.items():
        print(f"  {name:<22} {value['mean']:.5f} +- {value['ci95']:.5f}")


if __name__ == "__main__":
    main()
