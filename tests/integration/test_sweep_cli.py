"""Tests of ``ledgerzoo sweep``, each run in a subprocess from an empty working directory: the
files it writes, the table it prints, training at grid points, and one-line errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
ONE_TO_ONE_SWEEP = REPOSITORY / "configs" / "sweeps" / "one_to_one_rate.yaml"
PLAIN_CONFIG = REPOSITORY / "configs" / "lending" / "one_to_one.yaml"
TIMEOUT_S = 300
SMALL_GRID = ("--set", "env.kwargs.n_lenders=2,3", "--set", "env.kwargs.min_rate=0.05,0.1")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m ledgerzoo.cli ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ledgerzoo.cli", *args],
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def describe(process: subprocess.CompletedProcess) -> str:
    return f"exit {process.returncode}\nstdout:\n{process.stdout}\nstderr:\n{process.stderr}"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def test_sweep_writes_files(tmp_path: Path) -> None:
    out = tmp_path / "figures"

    process = run_cli("sweep", str(ONE_TO_ONE_SWEEP), *SMALL_GRID, "--out", str(out), cwd=tmp_path)

    assert process.returncode == 0, describe(process)
    names = sorted(path.name for path in out.iterdir())
    expected = [
        "borrower_utility.png",
        "mean_rate.png",
        "optimal_lender_profit.png",
        "optimal_lender_rate.png",
        "sweep.csv",
        "sweep.json",
    ]
    assert names == expected, names
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 4, rows
    for row in rows:
        n, min_rate = int(row["env.kwargs.n_lenders"]), float(row["env.kwargs.min_rate"])
        rate = min_rate * (2 * n - 1) / (n - 1)
        assert float(row["optimal_lender_rate"]) == pytest.approx(rate, rel=1e-9), row
    data = json.loads((out / "sweep.json").read_text())
    assert data["grid"]["env.kwargs.n_lenders"] == [2, 3], data["grid"]
    assert data["name"] == "one_to_one_rate", data["name"]
    assert f"sweep directory: {out}" in process.stdout, describe(process)
    table = [line for line in process.stdout.splitlines() if line.strip().startswith(("2 ", "3 "))]
    assert len(table) == 4, describe(process)


def test_sweep_default_directory(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    data = yaml.safe_load(PLAIN_CONFIG.read_text())
    data["env"]["kwargs"].update(willingness=1.0, min_rate=0.05)
    config.write_text(yaml.safe_dump(data))

    process = run_cli("sweep", str(config), "--set", "env.kwargs.n_lenders=2,4", cwd=tmp_path)

    assert process.returncode == 0, describe(process)
    directories = list((tmp_path / "runs").glob("sweep-tiny-*"))
    assert len(directories) == 1, list((tmp_path / "runs").iterdir())
    rows = read_csv(directories[0] / "sweep.csv")
    assert [row["env.kwargs.n_lenders"] for row in rows] == ["2", "4"], rows
    assert (directories[0] / "optimal_lender_rate.png").is_file()


def test_sweep_existing_directory_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_cli("sweep", str(ONE_TO_ONE_SWEEP), *SMALL_GRID, "--out", str(out), cwd=tmp_path)
    assert first.returncode == 0, describe(first)

    again = run_cli("sweep", str(ONE_TO_ONE_SWEEP), *SMALL_GRID, "--out", str(out), cwd=tmp_path)

    assert_one_line_error(again, "already contains a sweep", str(out))


@pytest.mark.parametrize(
    ("config", "arguments", "fragments"),
    [
        pytest.param(
            ONE_TO_ONE_SWEEP,
            ("--set", "env.kwargs.n_lender=2,3"),
            ("'env.kwargs.n_lender'", "env.kwargs.n_lenders"),
            id="unknown key path",
        ),
        pytest.param(
            ONE_TO_ONE_SWEEP,
            ("--set", "env.kwargs.n_lenders="),
            ("empty value list", "env.kwargs.n_lenders"),
            id="empty value list",
        ),
        pytest.param(
            ONE_TO_ONE_SWEEP,
            ("--set", "env.kwargs.n_lenders=two"),
            ("env.kwargs.n_lenders", "'two'", "not a number"),
            id="not a number",
        ),
        pytest.param(
            ONE_TO_ONE_SWEEP,
            ("--set", "a.b=1", "--set", "c.d=2", "--set", "e.f=3"),
            ("one or two keys",),
            id="three keys",
        ),
        pytest.param(
            ONE_TO_ONE_SWEEP,
            ("--set", "env.kwargs.min_rate=0.05,0.7"),
            ("grid point", "env.kwargs.min_rate=0.7", "0.7"),
            id="value out of range",
        ),
        pytest.param(PLAIN_CONFIG, (), ("no sweep section", "--set"), id="no grid"),
        pytest.param(
            ONE_TO_ONE_SWEEP,
            ("--set", "env.kwargs.n_lenders=2", "--total-timesteps", "100"),
            ("--total-timesteps", "--train"),
            id="budget without training",
        ),
    ],
)
def test_sweep_bad_input_one_line(
    tmp_path: Path, config: Path, arguments: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    process = run_cli("sweep", str(config), *arguments, "--out", str(tmp_path / "o"), cwd=tmp_path)

    assert_one_line_error(process, *fragments)
    assert not (tmp_path / "o" / "sweep.csv").exists(), "a failed sweep wrote its CSV"


@pytest.mark.slow
def test_sweep_train_tiny(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    data = yaml.safe_load(PLAIN_CONFIG.read_text())
    data["env"]["kwargs"].update(n_lenders=2, willingness=1.0, min_rate=0.05, max_cycles=8)
    data["train"].update(num_instances=8, n_steps=16, batch_size=128, n_epochs=2)
    data["train"].update(net_arch=[16, 16], checkpoint_every=0)
    data["eval"].update(episodes=2, skip_rounds=2)
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"

    process = run_cli(
        "sweep",
        str(config),
        "--set",
        "env.kwargs.min_rate=0.05,0.1",
        "--train",
        "--total-timesteps",
        "1000",
        "--out",
        str(out),
        cwd=tmp_path,
    )

    assert process.returncode == 0, describe(process)
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 2, rows
    for row in rows:
        assert row["mean_rate_trained"] not in ("", "nan"), row
        assert row["borrower_utility_trained"] not in ("", "nan"), row
    assert len(list((out / "runs").glob("*/model.zip"))) == 2, list((out / "runs").iterdir())
    assert "mean_rate_trained" in process.stdout, describe(process)


def assert_one_line_error(process: subprocess.CompletedProcess, *fragments: str) -> None:
    """Check exit status 2 and a single-line message on stderr that names each fragment."""
    assert process.returncode == 2, describe(process)
    assert "Traceback" not in process.stderr, describe(process)
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{process.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} missing from {lines[0]!r}"
