"""Kill a training run mid-way and resume it: no metric is lost, duplicated or changed.

"No lost metrics" is tested in its strongest form. A run with one learned role checkpoints its
vector env and random generators with each model. So a run killed with SIGKILL and resumed
with ``ledgerzoo train --resume`` must write exactly what the same run writes uninterrupted.
Its progress.csv must match row for row and digit for digit, so every rollout appears once,
with no gap and no duplicate. Its final model, metrics.json and metrics.csv must match too.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("stable_baselines3")

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE_CONFIG = REPOSITORY / "configs" / "lending" / "one_to_one.yaml"
NUM_INSTANCES = 8
N_LENDERS = 5
N_STEPS = 8
ROLLOUT = NUM_INSTANCES * N_LENDERS * N_STEPS  # agent-steps per rollout
TOTAL_TIMESTEPS = 40 * ROLLOUT
CHECKPOINT_EVERY = 5 * ROLLOUT
TIMEOUT_S = 300


def tiny_config_data() -> dict[str, Any]:
    """The reference config shrunk to a run of a few seconds with frequent checkpoints."""
    data = yaml.safe_load(REFERENCE_CONFIG.read_text())
    data["env"]["kwargs"].update(n_lenders=N_LENDERS, max_cycles=10)
    data["train"].update(
        total_timesteps=TOTAL_TIMESTEPS,
        num_instances=NUM_INSTANCES,
        n_steps=N_STEPS,
        batch_size=64,
        n_epochs=1,
        checkpoint_every=CHECKPOINT_EVERY,
        keep_checkpoints=2,
        net_arch=[16, 16],
    )
    data["eval"].update(episodes=2, skip_rounds=2)
    return data


def train_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ledgerzoo", "train", *arguments, "--no-progress"]


def start(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, f"exit {process.returncode}:\n{output}"
    return output


def progress_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "progress.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


def wait_past_first_checkpoint(process: subprocess.Popen[str], run_dir: Path) -> int:
    """Wait until the run has a checkpoint and a progress row after it; return its timesteps.

    A row past the checkpoint means the run has written metrics that resuming must drop and
    write again.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before it was killed:\n{process.stdout}"
        checkpoints = sorted((run_dir / "checkpoints").glob("model_*.zip"))
        if checkpoints and (run_dir / "progress.csv").is_file():
            first = min(int(path.stem.split("_")[1]) for path in checkpoints)
            if any(int(row["timesteps"]) > first for row in progress_rows(run_dir)):
                return first
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint in {run_dir} after {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run and a run killed after its first checkpoint, then resumed."""
    workdir = tmp_path_factory.mktemp("resume")
    config = workdir / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_data(), sort_keys=False))
    reference_dir, killed_dir = workdir / "reference", workdir / "killed"

    # The uninterrupted run and the one to kill start together, to share the wall time.
    reference = start(train_command(str(config), "--run-dir", str(reference_dir)), workdir)
    victim = start(train_command(str(config), "--run-dir", str(killed_dir)), workdir)
    checkpoint = wait_past_first_checkpoint(victim, killed_dir)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=TIMEOUT_S)
    killed_rows = progress_rows(killed_dir)
    finish(reference)

    resumed = finish(start(train_command("--resume", str(killed_dir)), workdir))
    return {
        "reference": reference_dir,
        "resumed": killed_dir,
        "checkpoint": checkpoint,
        "killed_rows": killed_rows,
        "killed_status": victim.returncode,
        "output": resumed,
    }


def test_run_was_killed_mid_training(runs: dict[str, Any]) -> None:
    assert runs["killed_status"] == -signal.SIGKILL, runs["killed_status"]
    assert ROLLOUT <= runs["checkpoint"] < TOTAL_TIMESTEPS, runs["checkpoint"]
    last = int(runs["killed_rows"][-1]["timesteps"])
    assert runs["checkpoint"] < last < TOTAL_TIMESTEPS, f"killed at {last} agent-steps"


def test_resume_reaches_total(runs: dict[str, Any]) -> None:
    provenance = json.loads((runs["resumed"] / "provenance.json").read_text())

    assert provenance["timesteps"] >= TOTAL_TIMESTEPS, provenance["timesteps"]
    start = provenance["resumed_from"]["lender"]
    assert start["exact"], start
    steps = int(Path(start["model"]).stem.split("_")[1])
    assert runs["checkpoint"] <= steps < TOTAL_TIMESTEPS, start
    assert "previous" in provenance, sorted(provenance)


def test_progress_rows_cover_run_once(runs: dict[str, Any]) -> None:
    rows = progress_rows(runs["resumed"])

    steps = [int(row["timesteps"]) for row in rows]
    expected = list(range(ROLLOUT, steps[-1] + 1, ROLLOUT))
    assert steps == expected, f"rows at {steps}, expected one per rollout: {expected}"
    assert steps[-1] >= TOTAL_TIMESTEPS, steps[-1]
    assert {row["role"] for row in rows} == {"lender"}, {row["role"] for row in rows}


def test_rows_before_checkpoint_kept(runs: dict[str, Any]) -> None:
    rows = progress_rows(runs["resumed"])
    before = [row for row in runs["killed_rows"] if int(row["timesteps"]) <= runs["checkpoint"]]

    assert rows[: len(before)] == before, "rows written before the checkpoint changed"


def test_progress_matches_uninterrupted_run(runs: dict[str, Any]) -> None:
    resumed = (runs["resumed"] / "progress.csv").read_text()
    reference = (runs["reference"] / "progress.csv").read_text()

    assert resumed == reference, _first_difference(resumed, reference)


def test_metrics_match_uninterrupted_run(runs: dict[str, Any]) -> None:
    resumed = json.loads((runs["resumed"] / "eval" / "metrics.json").read_text())
    reference = json.loads((runs["reference"] / "eval" / "metrics.json").read_text())

    assert resumed["metrics"] == reference["metrics"], (
        f"{resumed['metrics']} vs {reference['metrics']}"
    )
    assert resumed["per_episode"] == reference["per_episode"], "per-episode metrics differ"
    resumed_csv = (runs["resumed"] / "eval" / "metrics.csv").read_text()
    reference_csv = (runs["reference"] / "eval" / "metrics.csv").read_text()
    assert resumed_csv == reference_csv, _first_difference(resumed_csv, reference_csv)


def test_final_model_matches_uninterrupted_run(runs: dict[str, Any]) -> None:
    from ledgerzoo.training.algorithms import load_model

    resumed = load_model(str(runs["resumed"] / "model.zip"))
    reference = load_model(str(runs["reference"] / "model.zip"))

    assert resumed.num_timesteps == reference.num_timesteps, (
        f"{resumed.num_timesteps} vs {reference.num_timesteps}"
    )
    resumed_parameters = resumed.policy.state_dict()
    for name, tensor in reference.policy.state_dict().items():
        assert resumed_parameters[name].equal(tensor), f"parameter {name} differs"


def test_no_temporary_files_left(runs: dict[str, Any]) -> None:
    leftovers = [
        str(path.relative_to(runs["resumed"]))
        for path in runs["resumed"].rglob(".*")
        if "tensorboard" not in path.parts
    ]

    assert not leftovers, f"temporary files left behind: {leftovers}"


def _first_difference(first: str, second: str) -> str:
    for index, (left, right) in enumerate(
        zip(first.splitlines(), second.splitlines(), strict=False)
    ):
        if left != right:
            return f"line {index + 1}: {left!r} vs {right!r}"
    return f"{len(first.splitlines())} lines vs {len(second.splitlines())}"
