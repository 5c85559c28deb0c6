"""Smoke tests of the ``ledgerzoo`` command, each run in a subprocess from an empty working
directory, with configs written into it: list, solve, evaluate, train, resume, and the one-line
errors of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import ledgerzoo
from ledgerzoo.envs.lending import equilibrium
from ledgerzoo.training.config import load_config
from ledgerzoo.training.solve import solve

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE_CONFIG = REPOSITORY / "configs" / "lending" / "one_to_one.yaml"
CONSOLE_SCRIPT = Path(sys.executable).parent / "ledgerzoo"
TIMEOUT_S = 120
SOLVE_KEYS = (
    "rates",
    "prices",
    "loans",
    "lender_utilities",
    "borrower_utilities",
    "optimal_lender",
    "iterations",
)


def run_cli(*args: str, cwd: Path, command: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m ledgerzoo.cli ARGS`` (or ``command``) in ``cwd`` and capture its output."""
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [*(command or [sys.executable, "-m", "ledgerzoo.cli"]), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def describe(process: subprocess.CompletedProcess) -> str:
    return f"exit {process.returncode}\nstdout:\n{process.stdout}\nstderr:\n{process.stderr}"


def assert_ok(process: subprocess.CompletedProcess) -> None:
    assert process.returncode == 0, describe(process)


def assert_one_line_error(process: subprocess.CompletedProcess, *fragments: str) -> str:
    """Check exit status 2 and a single-line message on stderr that names each fragment."""
    assert process.returncode == 2, describe(process)
    assert "Traceback" not in process.stderr, describe(process)
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{process.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} missing from {lines[0]!r}"
    return lines[0]


def strict_json(text: str) -> Any:
    """Parse JSON and reject NaN and Infinity, which the JSON standard does not allow."""

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_config_data() -> dict[str, Any]:
    """The reference config shrunk to a budget that trains in seconds."""
    data = yaml.safe_load(REFERENCE_CONFIG.read_text())
    data["env"]["kwargs"]["max_cycles"] = 10
    data["train"].update(
        total_timesteps=1_000,
        num_instances=4,
        n_steps=8,
        batch_size=32,
        n_epochs=2,
        checkpoint_every=500,
        net_arch=[16, 16],
    )
    data["eval"].update(episodes=2, skip_rounds=2)
    return data


# ------------------------------------------------------------------------------------------------
# list and solve


def test_list_prints_envs(tmp_path: Path) -> None:
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.is_file() else None

    process = run_cli("list", cwd=tmp_path, command=command)

    assert_ok(process)
    assert "lending_one_to_one_v0" in process.stdout, describe(process)
    for name in ledgerzoo.list_envs():
        assert name in process.stdout, f"{name} missing:\n{describe(process)}"


def test_solve_json_shipped_config(tmp_path: Path) -> None:
    config_path = tmp_path / "one_to_one.yaml"
    shutil.copy(REFERENCE_CONFIG, config_path)

    process = run_cli("solve", str(config_path), "--json", cwd=tmp_path)

    assert_ok(process)
    data = strict_json(process.stdout)
    for key in SOLVE_KEYS:
        assert key in data, f"{key!r} missing from {sorted(data)}"
    expected = solve(load_config(REFERENCE_CONFIG))
    np.testing.assert_allclose(data["rates"], expected["rates"], rtol=1e-12)
    assert data["game"] == expected["game"], f"{data['game']} vs {expected['game']}"
    assert data["optimal_lender"] == expected["optimal_lender"], data["optimal_lender"]


def test_solve_json_explicit_parameters(tmp_path: Path) -> None:
    willingness = [2.0, 3.5, 1.25]
    min_rate = [0.05, 0.08, 0.04]
    max_rate = 0.4
    config_path = write_config(
        tmp_path / "explicit.yaml",
        {
            "env": {
                "name": "lending_one_to_one_v0",
                "kwargs": {
                    "n_lenders": 3,
                    "willingness": willingness,
                    "min_rate": min_rate,
                    "max_rate": max_rate,
                },
            },
        },
    )

    process = run_cli("solve", str(config_path), "--json", cwd=tmp_path)

    assert_ok(process)
    data = strict_json(process.stdout)
    assert data["drawn_parameters"] is False, data["drawn_parameters"]
    assert data["game"]["willingness"] == willingness, data["game"]
    assert data["game"]["min_rate"] == min_rate, data["game"]
    assert data["game"]["max_rate"] == max_rate, data["game"]
    game = equilibrium.OneToOneGame.from_values(willingness, min_rate, max_rate)
    solution = equilibrium.solve(game)
    for key in ("rates", "prices", "loans", "lender_utilities", "borrower_utilities"):
        np.testing.assert_allclose(
            data[key], getattr(solution, key)[0], rtol=1e-12, err_msg=f"{key} differs"
        )
    assert data["optimal_lender"] == int(solution.optimal_lender[0]), data["optimal_lender"]
    assert data["iterations"] == int(solution.iterations[0]), data["iterations"]


def test_solve_prints_table(tmp_path: Path) -> None:
    process = run_cli("solve", str(REFERENCE_CONFIG), cwd=tmp_path)

    assert_ok(process)
    n_lenders = yaml.safe_load(REFERENCE_CONFIG.read_text())["env"]["kwargs"]["n_lenders"]
    for index in range(n_lenders):
        assert f"lender_{index}" in process.stdout, describe(process)
    assert "optimal" in process.stdout, describe(process)


# ------------------------------------------------------------------------------------------------
# evaluate with analytic policies


@pytest.mark.parametrize(
    ("policy", "max_rate_error"), [("equilibrium", 1e-6), ("best_response", 1e-4)]
)
def test_evaluate_baseline_policy(tmp_path: Path, policy: str, max_rate_error: float) -> None:
    out = tmp_path / "eval"

    process = run_cli(
        "evaluate",
        str(REFERENCE_CONFIG),
        "--policy",
        policy,
        "--episodes",
        "3",
        "--out",
        str(out),
        cwd=tmp_path,
    )

    assert_ok(process)
    assert "rate_error" in process.stdout, describe(process)
    for name in ("metrics.json", "metrics.csv", "rates.png"):
        assert (out / name).is_file(), f"{name} missing:\n{describe(process)}"
    data = strict_json((out / "metrics.json").read_text())
    assert data["policy"] == policy, data["policy"]
    assert len(data["seeds"]) == 3, data["seeds"]
    rate_error = data["metrics"]["rate_error"]["mean"]
    assert rate_error < max_rate_error, f"{policy}: rate error {rate_error} >= {max_rate_error}"


def test_evaluate_default_output_in_cwd(tmp_path: Path) -> None:
    process = run_cli(
        "evaluate", str(REFERENCE_CONFIG), "--policy", "random", "--episodes", "2", cwd=tmp_path
    )

    assert_ok(process)
    written = list((tmp_path / "runs").glob("eval-random-*/metrics.json"))
    assert len(written) == 1, f"{written}\n{describe(process)}"


# ------------------------------------------------------------------------------------------------
# train, evaluate the run, resume


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Train a tiny run through the command line; returns its working directory and run dir."""
    workdir = tmp_path_factory.mktemp("cli")
    config_path = write_config(workdir / "tiny.yaml", tiny_config_data())
    run_dir = workdir / "run"

    process = run_cli(
        "train",
        str(config_path),
        "--total-timesteps",
        "1000",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        cwd=workdir,
    )

    assert_ok(process)
    assert f"run directory: {run_dir}" in process.stdout, describe(process)
    assert "rate_error" in process.stdout, describe(process)
    return workdir, run_dir


def test_train_writes_run(cli_run: tuple[Path, Path]) -> None:
    _, run_dir = cli_run

    for name in (
        "config.yaml",
        "provenance.json",
        "model.zip",
        "progress.csv",
        "eval/metrics.json",
    ):
        assert (run_dir / name).is_file(), f"{name} missing from {run_dir}"
    provenance = strict_json((run_dir / "provenance.json").read_text())
    assert provenance["timesteps"] >= 1000, provenance["timesteps"]
    assert load_config(run_dir / "config.yaml").train.total_timesteps == 1000


def test_evaluate_run_dir(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    workdir, run_dir = cli_run
    out = tmp_path / "again"

    process = run_cli("evaluate", str(run_dir), "--out", str(out), cwd=workdir)

    assert_ok(process)
    assert "rate_error" in process.stdout, describe(process)
    data = strict_json((out / "metrics.json").read_text())
    assert data["metrics"]["rate_error"]["n"] == 2, data["metrics"]["rate_error"]


def test_train_resume_run(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = cli_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = strict_json((copy / "provenance.json").read_text())["timesteps"]

    process = run_cli(
        "train",
        "--resume",
        str(copy),
        "--total-timesteps",
        "2000",
        "--no-progress",
        "--no-eval",
        cwd=tmp_path,
    )

    assert_ok(process)
    after = strict_json((copy / "provenance.json").read_text())["timesteps"]
    assert after >= 2000, f"resumed run ended at {after} agent-steps"
    assert after > before, f"{after} agent-steps after resume, {before} before"


def test_train_rejects_existing_run(cli_run: tuple[Path, Path]) -> None:
    workdir, run_dir = cli_run

    process = run_cli(
        "train", str(workdir / "tiny.yaml"), "--run-dir", str(run_dir), "--no-progress", cwd=workdir
    )

    assert_one_line_error(process, "already contains a run", "--resume")


# ------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("command", ["solve", "evaluate", "train"])
def test_missing_config_one_line(tmp_path: Path, command: str) -> None:
    process = run_cli(command, "absent.yaml", cwd=tmp_path)

    assert_one_line_error(process, f"ledgerzoo {command}: error:", "absent.yaml", "not found")


@pytest.mark.parametrize("command", ["solve", "evaluate", "train"])
def test_invalid_config_one_line(tmp_path: Path, command: str) -> None:
    data = tiny_config_data()
    data["train"]["n_step"] = 8
    config_path = write_config(tmp_path / "typo.yaml", data)

    process = run_cli(command, str(config_path), cwd=tmp_path)

    assert_one_line_error(process, "train", "'n_step'")


def test_invalid_value_one_line(tmp_path: Path) -> None:
    data = tiny_config_data()
    data["env"]["kwargs"]["min_rate"] = 0.9
    config_path = write_config(tmp_path / "rate.yaml", data)

    process = run_cli("solve", str(config_path), cwd=tmp_path)

    assert_one_line_error(process, "min_rate", "0.9")


def test_invalid_yaml_one_line(tmp_path: Path) -> None:
    config_path = tmp_path / "broken.yaml"
    config_path.write_text("env: [unclosed\n  name: x\n")

    process = run_cli("solve", str(config_path), cwd=tmp_path)

    assert_one_line_error(process, "not valid YAML", "broken.yaml")


def test_unknown_policy_one_line(tmp_path: Path) -> None:
    process = run_cli("evaluate", str(REFERENCE_CONFIG), "--policy", "greedy", cwd=tmp_path)

    assert_one_line_error(process, "'greedy'", "equilibrium")


def test_train_without_config(tmp_path: Path) -> None:
    process = run_cli("train", cwd=tmp_path)

    assert_one_line_error(process, "missing config")


@pytest.mark.parametrize("pricing", ["uniform", "differentiated"])
def test_solve_one_to_many_json(tmp_path: Path, pricing: str) -> None:
    config = REPOSITORY / "configs" / "lending" / f"one_to_many_{pricing}.yaml"

    process = run_cli("solve", str(config), "--json", cwd=tmp_path)

    assert_ok(process)
    result = json.loads(process.stdout)
    for key in ("rates", "investments", "lender_utilities", "borrower_utility", "iterations"):
        assert key in result, f"{key} missing from {sorted(result)}"
    assert result["feasible"] is True, result
    assert result["pricing"] == pricing, result["pricing"]


def test_solve_offloading_config(tmp_path: Path) -> None:
    config = REPOSITORY / "configs" / "offloading" / "small.yaml"
    process = run_cli("solve", str(config), "--json", cwd=tmp_path)

    assert_ok(process)
    data = strict_json(process.stdout)
    for key in ("profile", "costs", "total_cost", "potential", "moves", "social_optimum"):
        assert key in data, f"{key!r} missing from {sorted(data)}"
    assert data["social_optimum"]["exact"], data["social_optimum"]
    assert data["price_of_anarchy"] >= 1.0, data["price_of_anarchy"]
    n_devices = yaml.safe_load(config.read_text())["env"]["kwargs"]["n_devices"]
    assert len(data["profile"]) == n_devices, data["profile"]

    table = run_cli("solve", str(config), cwd=tmp_path)
    assert_ok(table)
    assert "price of anarchy" in table.stdout, describe(table)
    for index in range(n_devices):
        assert f"device_{index}" in table.stdout, describe(table)


def test_solve_data_market_config(tmp_path: Path) -> None:
    config = REPOSITORY / "configs" / "data_market" / "relays.yaml"
    process = run_cli("solve", str(config), "--json", cwd=tmp_path)

    assert_ok(process)
    data = strict_json(process.stdout)
    for key in ("allocation", "welfare", "optimum_welfare", "iterations", "payments"):
        assert key in data, f"{key!r} missing from {sorted(data)}"
    assert data["welfare"] == pytest.approx(data["optimum_welfare"], rel=1e-3)

    table = run_cli("solve", str(config), cwd=tmp_path)
    assert_ok(table)
    assert "optimum welfare" in table.stdout, describe(table)
