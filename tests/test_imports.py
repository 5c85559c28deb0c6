"""Tests that ledgerzoo works without the ``train`` extra: in a subprocess where importing
stable_baselines3, sb3_contrib, torch or tensorboard fails, the envs, the solver and the
evaluator with analytic policies work, and training raises an ImportError that names the pip
command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
REFERENCE_CONFIG = REPOSITORY / "configs" / "lending" / "one_to_one.yaml"
BLOCKED = ("stable_baselines3", "sb3_contrib", "torch", "tensorboard")

# A finder placed first on sys.meta_path makes every import of these packages, or of their
# submodules, raise ModuleNotFoundError, as if they were not installed. (Setting
# sys.modules[name] = None is not enough, because scipy 1.17's array API helpers read torch
# from sys.modules and fail on None.)
BLOCK_PRELUDE = f"""
import sys


class _BlockTrainExtra:
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{fullname!r}} (blocked)", name=fullname)
        return None


sys.meta_path.insert(0, _BlockTrainExtra())
"""


def run_blocked(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a Python script with the train extra's packages blocked, in ``tmp_path``."""
    path = tmp_path / "script.py"
    path.write_text(BLOCK_PRELUDE + textwrap.dedent(script))
    return subprocess.run(
        [sys.executable, str(path), *args],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def describe(process: subprocess.CompletedProcess) -> str:
    return f"exit {process.returncode}\nstdout:\n{process.stdout}\nstderr:\n{process.stderr}"


def small_config(tmp_path: Path) -> Path:
    data = yaml.safe_load(REFERENCE_CONFIG.read_text())
    data["env"]["kwargs"]["max_cycles"] = 8
    data["eval"].update(episodes=2, skip_rounds=2)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_blocking_prelude_blocks(tmp_path: Path) -> None:
    process = run_blocked(
        """
        for name in ("stable_baselines3", "torch", "stable_baselines3.common.vec_env"):
            try:
                __import__(name)
            except ImportError:
                continue
            raise SystemExit(f"{name} was importable")
        print("blocked")
        """,
        tmp_path,
    )

    assert process.returncode == 0, describe(process)
    assert "blocked" in process.stdout, describe(process)


def test_core_works_without_train(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    process = run_blocked(
        """
        import sys

        import ledgerzoo
        from ledgerzoo.agents import BASELINES
        from ledgerzoo.training.config import load_config
        from ledgerzoo.training.evaluate import evaluate_config
        from ledgerzoo.training.solve import solve

        env = ledgerzoo.make("lending_one_to_one_v0")
        observations, _ = env.reset(seed=0)
        env.step({agent: env.action_space(agent).sample() for agent in env.agents})
        aec = ledgerzoo.make_aec("lending_one_to_one_v0")
        aec.reset(seed=0)

        config = load_config(sys.argv[1])
        result = solve(config)
        assert len(result["rates"]) == config.env.kwargs["n_lenders"], result["rates"]

        for policy in BASELINES:
            evaluation = evaluate_config(config, policy, out_dir=f"eval-{policy}")
            print(policy, evaluation.metrics["rate_error"].mean)

        loaded = sorted(
            name for name in sys.modules if name.split(".")[0] in ("stable_baselines3", "torch")
        )
        assert not loaded, loaded
        print("ok")
        """,
        tmp_path,
        str(config),
    )

    assert process.returncode == 0, describe(process)
    assert process.stdout.strip().endswith("ok"), describe(process)
    for policy in ("equilibrium", "best_response", "random", "fixed"):
        assert (tmp_path / f"eval-{policy}" / "metrics.json").is_file(), describe(process)


def test_train_names_pip_extra(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    process = run_blocked(
        """
        import sys

        from ledgerzoo.training.config import load_config
        from ledgerzoo.training.train import train

        try:
            train(load_config(sys.argv[1]), "run", progress_bar=False)
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("train() ran without stable_baselines3")
        """,
        tmp_path,
        str(config),
    )

    assert process.returncode == 0, describe(process)
    assert "pip install 'ledgerzoo[train]'" in process.stdout, describe(process)
    assert not (tmp_path / "run").exists(), "train() wrote a run before failing on the import"


def test_cli_train_names_pip_extra(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    process = run_blocked(
        """
        import sys

        from ledgerzoo.cli import main

        sys.exit(main(["train", sys.argv[1], "--run-dir", "run", "--no-progress"]))
        """,
        tmp_path,
        str(config),
    )

    assert process.returncode == 2, describe(process)
    assert "Traceback" not in process.stderr, describe(process)
    assert "pip install 'ledgerzoo[train]'" in process.stderr, describe(process)
