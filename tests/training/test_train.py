"""Tests of training runs with a tiny budget: the run directory's files, the error on a second
run in the same directory, resuming from the newest checkpoint, and evaluating a finished run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerzoo.envs.core.seeding import instance_seeds
from ledgerzoo.training.algorithms import load_model
from ledgerzoo.training.config import ExperimentConfig, config_from_dict, load_config
from ledgerzoo.training.evaluate import evaluation_seeds
from ledgerzoo.training.train import (
    TrainResult,
    evaluate_run,
    latest_checkpoint,
    resume_point,
    train,
)

pytest.importorskip("stable_baselines3")

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE_CONFIG = REPOSITORY / "configs" / "lending" / "one_to_one.yaml"
TOTAL_TIMESTEPS = 2_000
RESUMED_TIMESTEPS = 3_000


def tiny_config(**train_overrides: Any) -> ExperimentConfig:
    """The reference config shrunk to a budget that trains in seconds."""
    data = yaml.safe_load(REFERENCE_CONFIG.read_text())
    data["env"]["kwargs"]["max_cycles"] = 10
    data["train"].update(
        total_timesteps=TOTAL_TIMESTEPS,
        num_instances=4,
        n_steps=8,
        batch_size=32,
        n_epochs=2,
        checkpoint_every=1_000,
        net_arch=[16, 16],
    )
    data["train"].update(train_overrides)
    data["eval"].update(episodes=2, skip_rounds=2)
    return config_from_dict(data, source="tiny config")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentConfig, TrainResult]:
    """One tiny training run, shared by the tests that only read it."""
    config = tiny_config()
    result = train(config, tmp_path_factory.mktemp("runs") / "tiny", progress_bar=False)
    return config, result


def test_run_writes_every_file(trained_run: tuple[ExperimentConfig, TrainResult]) -> None:
    _, result = trained_run
    run_dir = result.run_dir

    for name in (
        "config.yaml",
        "provenance.json",
        "progress.csv",
        "model.zip",
        "learning_curve.png",
        "eval/metrics.json",
        "eval/metrics.csv",
        "eval/rates.png",
    ):
        assert (run_dir / name).is_file(), f"{name} missing from {sorted(_listing(run_dir))}"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("model_*.zip"))
    assert checkpoints, f"no checkpoint in {sorted(_listing(run_dir))}"
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event file in {sorted(_listing(run_dir))}"
    leftovers = [name for name in _listing(run_dir) if Path(name).name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_run_result_values(trained_run: tuple[ExperimentConfig, TrainResult]) -> None:
    _, result = trained_run

    assert result.model_path == result.run_dir / "model.zip", result.model_path
    assert result.timesteps >= TOTAL_TIMESTEPS, result.timesteps
    assert result.evaluation is not None, "the run was not evaluated"
    assert result.evaluation.metrics["rate_error"].n == 2, result.evaluation.metrics["rate_error"]
    model = load_model(str(result.model_path))
    assert model.num_timesteps == result.timesteps, f"{model.num_timesteps} vs {result.timesteps}"


def test_run_config_is_resolved(trained_run: tuple[ExperimentConfig, TrainResult]) -> None:
    config, result = trained_run

    saved = load_config(result.run_dir / "config.yaml")

    assert saved.to_dict() == config.to_dict(), f"{saved.to_dict()} vs {config.to_dict()}"


def test_run_provenance_contents(trained_run: tuple[ExperimentConfig, TrainResult]) -> None:
    config, result = trained_run

    provenance = json.loads((result.run_dir / "provenance.json").read_text())

    packages = provenance["packages"]
    for package in ("ledgerzoo", "numpy", "stable-baselines3", "torch"):
        assert packages.get(package), f"no version of {package} in {packages}"
    git = provenance["git"]
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool)), git
    seeds = provenance["seeds"]
    assert seeds["train_seed"] == config.train.seed, seeds
    assert seeds["eval_seed"] == config.eval.seed, seeds
    expected_training = instance_seeds(config.train.seed, config.train.num_instances)
    assert seeds["training_instance_seeds"] == expected_training, seeds
    expected_eval = evaluation_seeds(config.eval.seed, config.eval.episodes)
    assert seeds["eval_episode_seeds"] == expected_eval, seeds
    assert not set(expected_training) & set(expected_eval), "held-out seeds overlap training"
    machine = provenance["machine"]
    assert machine["cpu_count"] and machine["platform"], machine
    assert provenance["timesteps"] == result.timesteps, provenance["timesteps"]


def test_run_progress_rows(trained_run: tuple[ExperimentConfig, TrainResult]) -> None:
    from ledgerzoo.training.callbacks import PROGRESS_FIELDS

    _, result = trained_run

    with (result.run_dir / "progress.csv").open() as stream:
        reader = csv.DictReader(stream)
        rows = list(reader)

    assert reader.fieldnames == list(PROGRESS_FIELDS), reader.fieldnames
    assert rows, "progress.csv has no rows"
    steps = [int(row["timesteps"]) for row in rows]
    assert steps == sorted(steps), f"timesteps out of order: {steps}"
    assert all(float(row["rate_error"]) >= 0.0 for row in rows), rows


def test_second_run_raises(trained_run: tuple[ExperimentConfig, TrainResult]) -> None:
    config, result = trained_run

    with pytest.raises(FileExistsError, match="--resume"):
        train(config, result.run_dir, progress_bar=False, evaluate_after=False)


def test_resume_continues_training(
    trained_run: tuple[ExperimentConfig, TrainResult], tmp_path: Path
) -> None:
    _, result = trained_run
    run_dir = tmp_path / "resumed"
    shutil.copytree(result.run_dir, run_dir)
    newest = latest_checkpoint(run_dir)
    assert newest is not None, f"no checkpoint in {run_dir}"
    start = load_model(str(newest)).num_timesteps
    config = load_config(run_dir / "config.yaml")
    config.train.total_timesteps = RESUMED_TIMESTEPS

    resumed = train(config, run_dir, resume=True, progress_bar=False, evaluate_after=False)

    assert resumed.timesteps >= RESUMED_TIMESTEPS, resumed.timesteps
    assert resumed.timesteps > result.timesteps, f"{resumed.timesteps} vs {result.timesteps}"
    final = load_model(str(run_dir / "model.zip"))
    assert final.num_timesteps == resumed.timesteps, f"{final.num_timesteps} vs {resumed.timesteps}"
    # Training restarts from the final model (or the newest checkpoint), so it runs about the
    # missing steps only.
    assert resumed.timesteps - start < RESUMED_TIMESTEPS, f"started at {start}"
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["timesteps"] == resumed.timesteps, provenance["timesteps"]
    assert "previous" in provenance, sorted(provenance)


def test_resume_finished_run_keeps_steps(
    trained_run: tuple[ExperimentConfig, TrainResult], tmp_path: Path
) -> None:
    config, result = trained_run
    run_dir = tmp_path / "finished"
    shutil.copytree(result.run_dir, run_dir)

    assert resume_point(run_dir) == run_dir / "model.zip"
    resumed = train(config, run_dir, resume=True, progress_bar=False, evaluate_after=False)

    assert resumed.timesteps == result.timesteps, f"{resumed.timesteps} vs {result.timesteps}"


def test_resume_without_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_config(), tmp_path / "empty", resume=True, progress_bar=False)


def test_evaluate_run_writes_metrics(
    trained_run: tuple[ExperimentConfig, TrainResult], tmp_path: Path
) -> None:
    config, result = trained_run

    evaluation = evaluate_run(result.run_dir, tmp_path / "again")

    for name in ("metrics.json", "metrics.csv", "rates.png"):
        assert (tmp_path / "again" / name).is_file(), f"{name} missing"
    assert evaluation.seeds == evaluation_seeds(config.eval.seed, config.eval.episodes)
    assert evaluation.metrics["rate_error"].mean >= 0.0, evaluation.metrics["rate_error"]
    assert result.evaluation is not None
    # The evaluation is deterministic: same model, same held-out seeds, same numbers.
    assert evaluation.per_episode == result.evaluation.per_episode, (
        f"{evaluation.per_episode} vs {result.evaluation.per_episode}"
    )


def test_evaluate_run_needs_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "unfinished"
    run_dir.mkdir()
    shutil.copy(REFERENCE_CONFIG, run_dir / "config.yaml")

    with pytest.raises(FileNotFoundError, match=r"no model\.zip"):
        evaluate_run(run_dir)


def test_learned_followers_train_by_role(tmp_path: Path) -> None:
    data = tiny_config().to_dict()
    data["env"]["kwargs"].update(followers="learned", n_lenders=3)
    data["train"].update(total_timesteps=1_500, alternate_rollouts=1, checkpoint_every=0)
    config = config_from_dict(data)
    run_dir = tmp_path / "learned"

    result = train(config, run_dir, progress_bar=False, evaluate_after=False)

    lender = load_model(str(run_dir / "model_lender.zip"))
    borrower = load_model(str(run_dir / "model_borrower.zip"))
    assert lender.num_timesteps > 0, "the lender model never trained"
    assert borrower.num_timesteps > 0, "the borrower model never trained"
    assert result.timesteps == lender.num_timesteps + borrower.num_timesteps, result.timesteps
    with (run_dir / "progress.csv").open() as stream:
        roles = {row["role"] for row in csv.DictReader(stream)}
    assert roles == {"lender", "borrower"}, roles
    evaluation = evaluate_run(run_dir)
    assert "nash_conv" in evaluation.metrics, sorted(evaluation.metrics)


def _listing(folder: Path) -> list[str]:
    return [str(path.relative_to(folder)) for path in folder.rglob("*")]


def test_evaluate_run_rejects_non_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        evaluate_run(tmp_path)


def offloading_config(**env_overrides: Any) -> ExperimentConfig:
    """The small offloading config shrunk to a budget that trains in seconds."""
    data = yaml.safe_load((REPOSITORY / "configs" / "offloading" / "small.yaml").read_text())
    data["env"]["kwargs"].update(n_devices=4, max_cycles=5, **env_overrides)
    data["train"].update(
        total_timesteps=1_000,
        num_instances=4,
        n_steps=8,
        batch_size=32,
        n_epochs=1,
        checkpoint_every=0,
        net_arch=[16, 16],
        alternate_rollouts=1,
    )
    data["eval"].update(episodes=2, skip_rounds=1)
    return config_from_dict(data, source="tiny offloading config")


def test_masked_devices_train_with_maskable_ppo(tmp_path: Path) -> None:
    config = offloading_config()
    run_dir = tmp_path / "offloading"

    result = train(config, run_dir, progress_bar=False, evaluate_after=False)

    model = load_model(str(run_dir / "model.zip"), "MaskablePPO")
    assert model.num_timesteps == result.timesteps > 0, result.timesteps
    evaluation = evaluate_run(run_dir)
    for key in ("nash_conv", "total_cost_gap", "price_of_anarchy"):
        assert key in evaluation.metrics, sorted(evaluation.metrics)


def test_pricing_edges_train_with_ppo(tmp_path: Path) -> None:
    config = offloading_config(leaders="learned")
    run_dir = tmp_path / "edges"

    train(config, run_dir, progress_bar=False, evaluate_after=False)

    devices = load_model(str(run_dir / "model_device.zip"), "MaskablePPO")
    edges = load_model(str(run_dir / "model_edge.zip"), "PPO")
    assert devices.num_timesteps > 0, "the device model never trained"
    assert edges.num_timesteps > 0, "the edge model never trained"
    evaluation = evaluate_run(run_dir)
    assert "nash_conv/device" in evaluation.metrics, sorted(evaluation.metrics)


def test_masked_role_needs_maskable_ppo(tmp_path: Path) -> None:
    data = offloading_config().to_dict()
    data["train"]["algorithm"] = "PPO"
    with pytest.raises(ValueError, match="MaskablePPO"):
        train(config_from_dict(data), tmp_path / "ppo", progress_bar=False)


def test_bidders_and_relays_train_by_role(tmp_path: Path) -> None:
    data = yaml.safe_load((REPOSITORY / "configs" / "data_market" / "bidders.yaml").read_text())
    data["env"]["kwargs"].update(max_cycles=4)
    data["train"].update(
        total_timesteps=1_500,
        num_instances=2,
        n_steps=8,
        batch_size=16,
        n_epochs=1,
        checkpoint_every=0,
        net_arch=[16, 16],
        alternate_rollouts=1,
    )
    data["eval"].update(episodes=1, skip_rounds=1)
    run_dir = tmp_path / "bidders"

    train(config_from_dict(data), run_dir, progress_bar=False, evaluate_after=False)

    for role in ("buyer", "seller", "relay"):
        assert load_model(str(run_dir / f"model_{role}.zip")).num_timesteps > 0, role
    evaluation = evaluate_run(run_dir)
    assert "welfare_efficiency" in evaluation.metrics, sorted(evaluation.metrics)
