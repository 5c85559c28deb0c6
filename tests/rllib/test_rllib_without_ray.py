"""Tests of the RLlib backend that need no Ray: the error of the missing extra, the checks of
configs and command-line options, and the mapping of agents to role modules.

They run in the main virtual environment too, where ray is not installed. In both
environments, a missing ray or torch is simulated by blocking its import.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import ledgerzoo.training.rllib as backend
from ledgerzoo.agents.rllib import RLlibPolicy
from ledgerzoo.cli import main
from ledgerzoo.training.config import ExperimentConfig, config_from_dict

PIP_COMMAND = "pip install 'ledgerzoo[rllib]'"


def lending_config(**train: Any) -> ExperimentConfig:
    return config_from_dict(
        {
            "env": {"name": "lending_one_to_one_v0", "kwargs": {"n_lenders": 2, "max_cycles": 4}},
            "train": {"num_instances": 2, "n_steps": 4, "batch_size": 8, **train},
            "eval": {"episodes": 1, "skip_rounds": 0},
        }
    )


def write_config(path: Path, config: ExperimentConfig) -> Path:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import ray`` (and its submodules) fail as if ray were not installed."""
    for name in list(sys.modules):
        if name == "ray" or name.startswith("ray."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)


def test_module_imports_without_ray(without_ray: None, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("rllib_backend_copy", backend.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.BACKEND == "rllib"


def test_missing_ray_names_pip_command(without_ray: None, tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"pip install 'ledgerzoo\[rllib\]'"):
        backend.train_rllib(lending_config(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_missing_ray_cli_message(
    without_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "tiny.yaml", lending_config())
    status = main(["train", str(config), "--backend", "rllib", "--run-dir", str(tmp_path / "r")])
    error = capsys.readouterr().err
    assert status == 2
    assert "RLlib backend" in error
    assert PIP_COMMAND in error


def test_missing_ray_policy_load(without_ray: None, tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"pip install 'ledgerzoo\[rllib\]'"):
        RLlibPolicy.load(tmp_path, "lender")


def test_missing_torch_names_rllib_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "torch" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError) as raised:
        backend._require_rllib("torch")
    assert PIP_COMMAND in str(raised.value)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"algorithm": "A2C"}, "train.algorithm 'A2C' is not supported by the RLlib backend"),
        ({"device": "cuda"}, "train.device 'cuda' is not supported"),
        (
            {"n_steps": 2, "batch_size": 9},
            r"train.batch_size \(9\) is larger than the 8 rows that role 'lender' collects",
        ),
    ],
)
def test_unsupported_settings_rejected(train: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backend.check_supported(lending_config(**train))


def test_masked_market_rejected() -> None:
    config = config_from_dict(
        {"env": {"name": "offloading_v0", "kwargs": {}}, "train": {"algorithm": "MaskablePPO"}}
    )
    with pytest.raises(ValueError) as raised:
        backend.check_supported(config)
    message = str(raised.value)
    assert "role 'device' has Dict observations with an action mask" in message
    assert "MaskablePPO" in message
    assert "--backend sb3" in message


@pytest.mark.parametrize(
    ("kwargs", "roles", "steps_per_round"),
    [
        ({}, ("lender",), 1),
        ({"followers": "learned"}, ("lender", "borrower"), 2),
    ],
)
def test_market_layout(
    kwargs: dict[str, Any], roles: tuple[str, ...], steps_per_round: int
) -> None:
    layout = backend.market_layout("lending_one_to_one_v0", {"n_lenders": 3, **kwargs})
    assert layout.roles == roles
    assert layout.steps_per_round == steps_per_round
    assert layout.agents == 3 + (len(roles) - 1)
    assert set(layout.observation_spaces) == set(roles)
    assert set(layout.action_spaces) == set(roles)


def test_train_batch_counts_agent_steps() -> None:
    config = lending_config(n_steps=4, num_instances=2)
    analytic = backend.market_layout("lending_one_to_one_v0", config.env.kwargs)
    learned = backend.market_layout(
        "lending_one_to_one_v0", {**config.env.kwargs, "followers": "learned"}
    )
    assert backend.train_batch_agent_steps(config, analytic) == 4 * 2 * 2
    assert backend.train_batch_agent_steps(config, learned) == 4 * 2 * 3
    assert learned.role_agents == {"lender": 2, "borrower": 1}
    assert learned.agent_steps_per_env_step == 1.5


@pytest.mark.parametrize(
    ("agent", "role"),
    [("lender_3", "lender"), ("borrower_0", "borrower"), ("lender_12", "lender")],
)
def test_policy_mapping_by_role(agent: str, role: str) -> None:
    assert backend.policy_for_agent(agent, None) == role
    assert backend.policy_for_agent(agent, None, worker=None) == role


@pytest.mark.parametrize(("runners", "expected"), [(0, [5, 6, 7]), (2, [6, 7, 7, 8])])
def test_training_env_seeds(runners: int, expected: list[int]) -> None:
    config = lending_config(seed=5, num_instances=3 if runners == 0 else 4)
    assert backend.training_env_seeds(config, runners) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--address", "127.0.0.1:6379"], "--address applies only with --backend rllib"),
        (
            ["--backend", "sb3", "--num-env-runners", "2", "--address", "127.0.0.1:6379"],
            "--address and --num-env-runners apply only with --backend rllib",
        ),
        (["--backend", "rllib", "--num-env-runners", "-1"], "invalid --num-env-runners -1"),
    ],
)
def test_cli_option_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    config = write_config(tmp_path / "tiny.yaml", lending_config())
    status = main(["train", str(config), "--run-dir", str(tmp_path / "run"), *arguments])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_resume_keeps_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_config(run / "config.yaml", lending_config())
    (run / "provenance.json").write_text('{"backend": "rllib"}\n')
    status = main(["train", "--resume", str(run), "--backend", "sb3"])
    assert status == 2
    assert "trained with --backend rllib" in capsys.readouterr().err


def closed_port() -> int:
    """Return a loopback port that nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_address_rejected() -> None:
    port = closed_port()
    with pytest.raises(ValueError, match=f"cannot reach a Ray cluster at '127.0.0.1:{port}'"):
        backend.check_reachable(f"127.0.0.1:{port}", timeout_s=5.0)


def test_reachable_address_accepted() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        backend.check_reachable(f"127.0.0.1:{port}", timeout_s=5.0)


@pytest.mark.parametrize("form", ["auto", "ray://127.0.0.1:{port}", "127.0.0.1"])
def test_other_address_forms_left_to_ray(form: str) -> None:
    backend.check_reachable(form.format(port=closed_port()), timeout_s=5.0)
