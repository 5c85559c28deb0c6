"""Reproducibility of training on the CPU: the same config and seed give the same metrics.

Two runs of one config and seed must write the same progress.csv (every market metric of every
rollout), the same final model parameters and the same metrics.json, compared exactly. A run
with another seed must differ. A run stopped after a checkpoint and resumed must match the
uninterrupted run too (the subprocess version, with SIGKILL, is tests/integration/test_resume.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerzoo.training.config import ExperimentConfig, config_from_dict, load_config
from ledgerzoo.training.train import TrainResult, train

torch = pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")

REPOSITORY = Path(__file__).resolve().parents[2]
ROLLOUT = 4 * 5 * 8  # instances x lenders x n_steps: agent-steps per rollout


def lending_config(seed: int = 0) -> ExperimentConfig:
    """The main job's config shrunk to a few seconds: PPO lenders."""
    data = yaml.safe_load((REPOSITORY / "configs" / "lending" / "one_to_one.yaml").read_text())
    data["env"]["kwargs"]["max_cycles"] = 10
    data["train"].update(
        seed=seed,
        total_timesteps=16 * ROLLOUT,
        num_instances=4,
        n_steps=8,
        batch_size=32,
        n_epochs=2,
        checkpoint_every=4 * ROLLOUT,
        keep_checkpoints=10,
        net_arch=[16, 16],
    )
    data["eval"].update(episodes=2, skip_rounds=2)
    return config_from_dict(data, source="lending config")


def offloading_config(seed: int = 0) -> ExperimentConfig:
    """The small offloading config shrunk to a few seconds: MaskablePPO devices."""
    data = yaml.safe_load((REPOSITORY / "configs" / "offloading" / "small.yaml").read_text())
    data["env"]["kwargs"].update(n_devices=4, max_cycles=5)
    data["train"].update(
        seed=seed,
        total_timesteps=1_280,
        num_instances=4,
        n_steps=8,
        batch_size=32,
        n_epochs=1,
        checkpoint_every=0,
        net_arch=[16],
    )
    data["eval"].update(episodes=2, skip_rounds=1)
    return config_from_dict(data, source="offloading config")


CONFIGS = {"lending PPO": lending_config, "offloading MaskablePPO": offloading_config}


@pytest.fixture(scope="module", autouse=True)
def deterministic_torch() -> Iterator[None]:
    """Make torch raise on any operation without a deterministic implementation."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], TrainResult]:
    """Train each config twice with seed 0 and once with seed 1."""
    root = tmp_path_factory.mktemp("reproducibility")
    results = {}
    for name, build in CONFIGS.items():
        for label, seed in (("first", 0), ("second", 0), ("other seed", 1)):
            run_dir = root / f"{name} {label}".replace(" ", "_")
            results[(name, label)] = train(build(seed), run_dir, progress_bar=False)
    return results


def metrics(result: TrainResult) -> dict[str, Any]:
    data = json.loads((result.run_dir / "eval" / "metrics.json").read_text())
    return {key: data[key] for key in ("metrics", "per_episode", "rates", "seeds")}


def parameters(result: TrainResult) -> dict[str, Any]:
    from ledgerzoo.training.algorithms import load_model

    algorithm = load_config(result.run_dir / "config.yaml").train.algorithm
    return load_model(str(result.model_path), algorithm).policy.state_dict()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_progress(runs: dict[tuple[str, str], TrainResult], name: str) -> None:
    first = (runs[(name, "first")].run_dir / "progress.csv").read_text()
    second = (runs[(name, "second")].run_dir / "progress.csv").read_text()

    assert first.count("\n") > 2, f"{name}: progress.csv has too few rows:\n{first}"
    assert first == second, f"{name}:\n{first}\nvs\n{second}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_metrics(runs: dict[tuple[str, str], TrainResult], name: str) -> None:
    first, second = runs[(name, "first")], runs[(name, "second")]

    assert metrics(first) == metrics(second), f"{name}: {metrics(first)} vs {metrics(second)}"
    assert first.timesteps == second.timesteps, f"{first.timesteps} vs {second.timesteps}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_model(runs: dict[tuple[str, str], TrainResult], name: str) -> None:
    first = parameters(runs[(name, "first")])
    second = parameters(runs[(name, "second")])

    assert first.keys() == second.keys(), f"{sorted(first)} vs {sorted(second)}"
    for key, tensor in first.items():
        assert tensor.equal(second[key]), f"{name}: parameter {key} differs"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_other_seed_differs(runs: dict[tuple[str, str], TrainResult], name: str) -> None:
    first = runs[(name, "first")]
    other = runs[(name, "other seed")]

    first_progress = (first.run_dir / "progress.csv").read_text()
    other_progress = (other.run_dir / "progress.csv").read_text()
    assert first_progress != other_progress, f"{name}: seeds 0 and 1 wrote the same progress"
    assert metrics(first)["per_episode"] != metrics(other)["per_episode"], (
        f"{name}: seeds 0 and 1 gave the same per-episode metrics"
    )


def test_resumed_run_matches_uninterrupted(
    runs: dict[tuple[str, str], TrainResult], tmp_path: Path
) -> None:
    finished = runs[("lending PPO", "first")].run_dir
    run_dir = tmp_path / "stopped"
    shutil.copytree(finished, run_dir)
    # Make the copy look like a run stopped after its second checkpoint: no final model, no
    # evaluation, no later checkpoints, and the rows written after the checkpoint still there.
    (run_dir / "model.zip").unlink()
    shutil.rmtree(run_dir / "eval")
    checkpoints = sorted(
        (run_dir / "checkpoints").glob("model_*.zip"), key=lambda path: int(path.stem[6:])
    )
    assert len(checkpoints) >= 3, [path.name for path in checkpoints]
    stop = int(checkpoints[1].stem[6:])
    for path in (run_dir / "checkpoints").iterdir():
        if int(path.stem.split("_")[1]) > stop:
            path.unlink()

    resumed = train(load_config(run_dir / "config.yaml"), run_dir, resume=True, progress_bar=False)

    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["resumed_from"]["lender"] == {
        "model": f"checkpoints/model_{stop}.zip",
        "exact": True,
    }, provenance["resumed_from"]
    expected = (finished / "progress.csv").read_text()
    assert (run_dir / "progress.csv").read_text() == expected, "progress.csv differs"
    assert metrics(resumed) == metrics(runs[("lending PPO", "first")]), "metrics differ"
