"""Measure the peak resident memory of each market's vector env at B = 4096.

Usage:
    python benchmarks/memory.py [--markets NAME ...] [--batch-size 4096] [--steps N]
        [--reference] [--json]

Each market runs in a fresh Python process. That process imports ledgerzoo,
stable-baselines3 and the benchmark helpers and reads its resident set size (the baseline).
It then builds ``VecMonitor(RoleVecEnv(market, role))`` as ``ledgerzoo train`` builds it,
seeds and resets it, and steps it with legal random actions through one whole episode and
one step more, so that the auto-reset is included. The report gives the peak resident set
size of the process (``resource.getrusage``, ``ru_maxrss``) and its increase over the
baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_BATCH = 4096
MIB = 2**20


def current_rss_bytes() -> int:
    """Return this process's resident set size now (VmRSS of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status: this script needs Linux")


def peak_rss_bytes() -> int:
    """Return this process's peak resident set size so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_child(name: str, batch: int, steps: int | None, reference: bool) -> dict[str, Any]:
    """Build and step one market's vector env in this process and return its memory use."""
    import numpy as np
    from stable_baselines3.common.vec_env import VecMonitor

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _markets

    from ledgerzoo.envs.core.vector import RoleVecEnv

    setting = _markets.market_setting(name, reference=reference)
    baseline_rss = current_rss_bytes()
    baseline_peak = peak_rss_bytes()

    started = time.perf_counter()
    market = _markets.build_market(setting, batch)
    if len(market.roles) != 1:
        raise SystemExit(
            f"{name} has roles {[r.name for r in market.roles]}; the memory benchmark builds "
            "the VecEnv of a market with one role (analytic followers)"
        )
    role = market.roles[0]
    env = VecMonitor(RoleVecEnv(market, role.name, {}))
    env.seed(0)
    env.reset()
    built_rss = current_rss_bytes()
    rng = np.random.default_rng(1)
    phases = 2 if market.two_phase else 1
    total = market.max_cycles * phases + 1 if steps is None else steps
    for _ in range(total):
        actions = _markets.random_actions(market, rng)[role.name]
        env.step(actions.reshape(env.num_envs, *role.action_space.shape))
    elapsed = time.perf_counter() - started
    return {
        "name": name,
        "batch_size": batch,
        "agents": {r.name: r.count for r in market.roles},
        "kwargs": setting.kwargs,
        "steps": total,
        "seconds": elapsed,
        "baseline_rss_mib": baseline_rss / MIB,
        "baseline_peak_mib": baseline_peak / MIB,
        "built_rss_mib": built_rss / MIB,
        "peak_rss_mib": peak_rss_bytes() / MIB,
        "increase_mib": (peak_rss_bytes() - baseline_rss) / MIB,
    }


def run_market(name: str, batch: int, steps: int | None, reference: bool) -> dict[str, Any]:
    """Measure one market in a fresh Python process and return its report."""
    command = [sys.executable, __file__, "--child", name, "--batch-size", str(batch)]
    if steps is not None:
        command += ["--steps", str(steps)]
    if reference:
        command.append("--reference")
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"name": name, "batch_size": batch, "error": completed.stderr.strip()[-2000:]}
    return json.loads(completed.stdout)


def print_text(rows: list[dict[str, Any]]) -> None:
    print(f"{'market':<24} {'B':>5} {'agents':<12} {'baseline':>10} {'peak':>10} {'increase':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<24} {row['batch_size']:>5} failed: {row['error']}")
            continue
        agents = ",".join(f"{role}x{count}" for role, count in row["agents"].items())
        print(
            f"{row['name']:<24} {row['batch_size']:>5} {agents:<12} "
            f"{row['baseline_rss_mib']:>7.0f} MiB {row['peak_rss_mib']:>6.0f} MiB "
            f"{row['increase_mib']:>6.0f} MiB"
        )
    print(
        "baseline: resident set after the imports; peak: ru_maxrss of the process; "
        "increase: peak - baseline"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--markets", nargs="+", default=None, help="registry names (default: every market)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help="instances B (default 4096)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="VecEnv steps after the reset (default: one episode and one step more)",
    )
    parser.add_argument(
        "--reference", action="store_true", help="build the markets with reference=True"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"invalid --batch-size {args.batch_size}: expected at least 1")
    if args.steps is not None and args.steps < 1:
        parser.error(f"invalid --steps {args.steps}: expected at least 1")

    if args.child is not None:
        print(json.dumps(measure_child(args.child, args.batch_size, args.steps, args.reference)))
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _markets

    rows = []
    for name in _markets.market_names(args.markets):
        print(f"{name}: B={args.batch_size} ...", file=sys.stderr, flush=True)
        rows.append(run_market(name, args.batch_size, args.steps, args.reference))
    if args.json:
        report = {
            "command": "python benchmarks/memory.py " + " ".join(sys.argv[1:]),
            "cores": os.cpu_count(),
            "markets": rows,
        }
        print(json.dumps(report, indent=2))
    else:
        print_text(rows)


if __name__ == "__main__":
    main()
