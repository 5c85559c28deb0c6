"""Tests of a tiny RLlib training run of the one-to-one lending market on a local Ray instance:
the command line, the run directory, evaluation through the RLlibPolicy adapter, and resuming
from the newest checkpoint."""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ledgerzoo import registry
from ledgerzoo.agents.rllib import RLlibPolicy, load_rllib_policy
from ledgerzoo.cli import main
from ledgerzoo.training import rllib as backend
from ledgerzoo.training.config import ExperimentConfig, config_from_dict, load_config
from ledgerzoo.training.evaluate import evaluate_on_config

pytest.importorskip("ray.rllib")

# Each RLlib algorithm registers its env with gymnasium under the same id (ray 2.60), and the
# resume test builds a second one in this process.
pytestmark = pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-multi-agent-env-v0")

TOTAL_TIMESTEPS = 1_200
RESUMED_TIMESTEPS = 2_000
KEEP_CHECKPOINTS = 2


def tiny_config() -> ExperimentConfig:
    return config_from_dict(
        {
            "env": {
                "name": "lending_one_to_one_v0",
                "kwargs": {"n_lenders": 3, "max_cycles": 6, "reward_scale": 0.1},
            },
            "train": {
                "total_timesteps": TOTAL_TIMESTEPS,
                "num_instances": 4,
                "n_steps": 8,
                "batch_size": 48,
                "n_epochs": 2,
                "net_arch": [16, 16],
                "learning_rate_schedule": "linear",
                "checkpoint_every": 400,
                "keep_checkpoints": KEEP_CHECKPOINTS,
            },
            "eval": {"episodes": 3, "skip_rounds": 1},
        }
    )


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def read_progress(run: Path) -> list[dict[str, str]]:
    with (run / "progress.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def trained_run(local_ray: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the tiny config once through the command line, on the session's Ray instance."""
    folder = tmp_path_factory.mktemp("rllib")
    config_path = folder / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config().to_dict(), sort_keys=False))
    run = folder / "run"
    status = main(
        ["train", str(config_path), "--backend", "rllib", "--run-dir", str(run), "--no-progress"]
    )
    assert status == 0
    return run


def test_run_directory(trained_run: Path) -> None:
    provenance = read_json(trained_run / "provenance.json")
    assert provenance["backend"] == "rllib"
    assert provenance["timesteps"] >= TOTAL_TIMESTEPS
    assert provenance["env_steps"] > 0
    assert provenance["packages"]["ray"] is not None
    assert provenance["ray"]["num_env_runners"] == 0
    assert load_config(trained_run / "config.yaml") == tiny_config()

    checkpoints = sorted((trained_run / "checkpoints").iterdir())
    assert all(backend.CHECKPOINT_PATTERN.fullmatch(path.name) for path in checkpoints)
    assert len(checkpoints) == KEEP_CHECKPOINTS
    newest = backend.latest_rllib_checkpoint(trained_run)
    assert newest is not None
    assert provenance["checkpoint"] == str(newest.relative_to(trained_run))
    assert backend.checkpoint_steps(newest) == provenance["timesteps"]
    assert (newest / "learner_group" / "learner" / "rl_module" / "lender").is_dir()

    rows = read_progress(trained_run)
    steps = [int(row["agent_steps"]) for row in rows]
    assert steps == sorted(set(steps))
    assert steps[-1] == provenance["timesteps"]
    assert "episode_return_mean/lender" in rows[0]

    # The linear schedule reaches 0 at total_timesteps agent-steps, although RLlib's schedules
    # count env steps.
    rates = [float(row["learning_rate/lender"]) for row in rows]
    assert 0.0 < rates[0] < tiny_config().train.learning_rate
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_run_evaluated_through_adapter(trained_run: Path, tmp_path: Path) -> None:
    written = read_json(trained_run / "eval" / "metrics.json")
    assert written["policy"].startswith("RLlib PPO")
    assert np.isfinite(written["metrics"]["rate_error"]["mean"])
    assert written["metrics"]["rate_error"]["n"] == 3

    again = backend.evaluate_rllib_run(trained_run, tmp_path / "eval")
    assert again.metrics["rate_error"].mean == written["metrics"]["rate_error"]["mean"]
    assert (tmp_path / "eval" / "metrics.csv").is_file()

    config = load_config(trained_run / "config.yaml")
    checkpoint = backend.latest_rllib_checkpoint(trained_run)
    assert checkpoint is not None
    policy = load_rllib_policy(checkpoint, ["lender"])
    direct = evaluate_on_config(config, policy, "direct")
    assert direct.per_episode["rate_error"] == written["per_episode"]["rate_error"]


def test_cli_evaluates_rllib_run(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = read_json(trained_run / "eval" / "metrics.json")

    status = main(["evaluate", str(trained_run), "--out", str(tmp_path / "cli-eval")])

    assert status == 0
    again = read_json(tmp_path / "cli-eval" / "metrics.json")
    assert again["policy"] == written["policy"]
    assert again["per_episode"]["rate_error"] == written["per_episode"]["rate_error"]
    assert "rate_error" in capsys.readouterr().out


def test_adapter_actions(trained_run: Path) -> None:
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    checkpoint = backend.latest_rllib_checkpoint(trained_run)
    assert checkpoint is not None
    policy = RLlibPolicy.load(checkpoint, "lender")
    config = load_config(trained_run / "config.yaml")
    env = registry.make(config.env.name, **config.env.kwargs)
    observations, _ = env.reset(seed=11)

    actions = policy.act(observations)
    assert set(actions) == set(observations)
    for agent, action in actions.items():
        assert env.action_space(agent).contains(action), agent
    assert policy.act(observations)["lender_0"] == actions["lender_0"]

    # The same action as RLlib's module-to-env connector computes for explore=False.
    import torch

    batch = torch.from_numpy(np.stack([observations[a] for a in observations]))
    inputs = policy.module.forward_inference({"obs": batch})["action_dist_inputs"]
    distribution = policy.module.get_inference_action_dist_cls().from_logits(inputs)
    expected = distribution.to_deterministic().sample().numpy()
    space = env.action_space("lender_0")
    for agent, row in zip(observations, expected, strict=True):
        np.testing.assert_allclose(actions[agent], unsquash_action(row, space), rtol=1e-6)

    with pytest.raises(KeyError, match="acts for role 'lender'"):
        policy.act({"borrower_0": observations["lender_0"]})


def test_adapter_missing_module(trained_run: Path) -> None:
    checkpoint = backend.latest_rllib_checkpoint(trained_run)
    assert checkpoint is not None
    with pytest.raises(FileNotFoundError, match=r"its modules are \['lender'\]"):
        RLlibPolicy.load(checkpoint, "borrower")


def test_unreachable_address_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config().to_dict(), sort_keys=False))
    run = tmp_path / "run"
    arguments = ["--backend", "rllib", "--address", f"127.0.0.1:{port}", "--run-dir", str(run)]
    status = main(["train", str(config_path), *arguments])
    assert status == 2
    assert f"cannot reach a Ray cluster at '127.0.0.1:{port}'" in capsys.readouterr().err
    assert not run.exists()


def test_second_run_rejected(trained_run: Path) -> None:
    with pytest.raises(FileExistsError, match="already contains a run"):
        backend.train_rllib(tiny_config(), trained_run)


def test_resume_from_newest_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = read_json(run / "provenance.json")
    old_rows = read_progress(run)

    status = main(
        [
            "train",
            "--resume",
            str(run),
            "--total-timesteps",
            str(RESUMED_TIMESTEPS),
            "--no-progress",
            "--no-eval",
        ]
    )
    assert status == 0

    after = read_json(run / "provenance.json")
    assert after["backend"] == "rllib"
    assert after["timesteps"] >= RESUMED_TIMESTEPS
    assert after["previous"]["timesteps"] == before["timesteps"]
    newest = backend.latest_rllib_checkpoint(run)
    assert newest is not None
    assert backend.checkpoint_steps(newest) == after["timesteps"]
    assert len(list((run / "checkpoints").iterdir())) == KEEP_CHECKPOINTS

    rows = read_progress(run)
    assert rows[: len(old_rows)] == old_rows
    iterations = [int(row["iteration"]) for row in rows]
    assert iterations == list(range(1, len(rows) + 1))
    steps = [int(row["agent_steps"]) for row in rows]
    assert steps == sorted(set(steps))
