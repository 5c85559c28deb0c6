"""Every file a training run and its evaluation write appears by an atomic rename.

An audit hook (``sys.addaudithook``) records each file opened for writing and each rename
(``os.rename`` and ``os.replace`` raise the same audit event) while a tiny run trains,
checkpoints and evaluates. No file of the run directory may be opened for writing under its
own name, every file must be the target of a rename from the same directory, and no temporary
file may be left. TensorBoard's event files are exempt, because TensorBoard appends to them.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerzoo.training.config import config_from_dict, load_config

pytest.importorskip("stable_baselines3")

REPOSITORY = Path(__file__).resolve().parents[2]
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

# What the audit hook records while a test listens: ("write", path) and ("rename", source,
# target). It is None between tests, and the hook then returns at once.
_events: list[tuple[str, ...]] | None = None
_hook_installed = False


def _audit(event: str, arguments: tuple[Any, ...]) -> None:
    if _events is None:
        return
    if event == "open":
        path, mode, flags = arguments
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        if mode is None:
            writes = isinstance(flags, int) and bool(flags & WRITE_FLAGS)
        else:
            writes = any(letter in str(mode) for letter in "wax+")
        if writes:
            _events.append(("write", os.path.abspath(os.fsdecode(path))))
    elif event == "os.rename":
        source, target = arguments[0], arguments[1]
        _events.append(
            ("rename", os.path.abspath(os.fsdecode(source)), os.path.abspath(os.fsdecode(target)))
        )


@pytest.fixture
def file_events() -> Iterator[list[tuple[str, ...]]]:
    """Record file writes and renames for the duration of a test."""
    global _events, _hook_installed
    if not _hook_installed:
        # An audit hook cannot be removed; it stays silent while _events is None.
        sys.addaudithook(_audit)
        _hook_installed = True
    _events = []
    try:
        yield _events
    finally:
        _events = None


def tiny_config() -> Any:
    data = yaml.safe_load((REPOSITORY / "configs" / "lending" / "one_to_one.yaml").read_text())
    data["env"]["kwargs"]["max_cycles"] = 10
    data["train"].update(
        total_timesteps=1_600,
        num_instances=4,
        n_steps=8,
        batch_size=32,
        n_epochs=1,
        checkpoint_every=480,
        keep_checkpoints=2,
        net_arch=[16],
    )
    data["eval"].update(episodes=2, skip_rounds=2)
    return config_from_dict(data, source="tiny config")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ledgerzoo.training.train import train

    run_dir = tmp_path_factory.mktemp("atomic") / "finished"
    train(tiny_config(), run_dir, progress_bar=False)
    return run_dir


def test_run_files_appear_by_rename(tmp_path: Path, file_events: list[tuple[str, ...]]) -> None:
    from ledgerzoo.training.train import evaluate_run, train

    run_dir = tmp_path / "run"
    train(tiny_config(), run_dir, progress_bar=False)
    evaluate_run(run_dir, run_dir / "again")

    files = {
        str(path.resolve())
        for path in run_dir.rglob("*")
        if path.is_file() and "tensorboard" not in path.parts
    }
    in_run = [event for event in file_events if str(run_dir.resolve()) in event[-1]]
    writes = {event[1] for event in in_run if event[0] == "write"}
    renames = [event for event in in_run if event[0] == "rename"]
    targets = {target for _, _, target in renames}

    for name in ("config.yaml", "provenance.json", "progress.csv", "model.zip", "eval"):
        assert (run_dir / name).exists(), f"{name} missing from the run"
    assert any("state_" in path for path in files), f"no training state among {sorted(files)}"
    in_place = sorted(path for path in writes & files)
    assert not in_place, f"files written in place, not by rename: {in_place}"
    not_renamed = sorted(files - targets)
    assert not not_renamed, f"files that no rename produced: {not_renamed}"
    for _, source, target in renames:
        assert os.path.dirname(source) == os.path.dirname(target), f"{source} -> {target}"
    leftovers = sorted(path for path in files if Path(path).name.startswith("."))
    assert not leftovers, f"temporary files left: {leftovers}"


class FailingModel:
    """A stand-in for an SB3 model whose save dies halfway through the file."""

    num_timesteps = 96

    def save(self, path: str) -> None:
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed mid-save")


def test_failed_save_keeps_previous_model(tmp_path: Path) -> None:
    from ledgerzoo.training.callbacks import save_model_atomic

    path = tmp_path / "model.zip"
    path.write_bytes(b"the previous model")

    with pytest.raises(KeyboardInterrupt):
        save_model_atomic(FailingModel(), path)

    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"], list(tmp_path.iterdir())


def test_failed_checkpoint_keeps_older_ones(tmp_path: Path) -> None:
    from ledgerzoo.training.callbacks import AtomicCheckpointCallback

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "model_48.zip").write_bytes(b"older checkpoint")
    callback = AtomicCheckpointCallback(folder, every=48, keep=1)

    with pytest.raises(KeyboardInterrupt):
        callback.save_now(FailingModel())

    assert sorted(p.name for p in folder.iterdir()) == ["model_48.zip"], list(folder.iterdir())


def test_trim_progress_keeps_other_roles(tmp_path: Path) -> None:
    from ledgerzoo.training.callbacks import PROGRESS_FIELDS, trim_progress

    path = tmp_path / "progress.csv"
    rows = [
        {"timesteps": steps, "role": role, "utility": steps / 10}
        for steps, role in ((10, "lender"), (20, "borrower"), (30, "lender"), (40, "borrower"))
    ]
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(PROGRESS_FIELDS))
        writer.writeheader()
        writer.writerows(rows)

    dropped = trim_progress(path, {"lender": 10})

    with path.open(newline="") as stream:
        remaining = [(int(row["timesteps"]), row["role"]) for row in csv.DictReader(stream)]
    assert dropped == 1, dropped
    assert remaining == [(10, "lender"), (20, "borrower"), (40, "borrower")], remaining


def test_resume_removes_stale_temporaries(finished_run: Path, tmp_path: Path) -> None:
    from ledgerzoo.training.train import train

    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    # Named as tempfile.mkstemp names them: 8 random characters between name and suffix.
    stale = [
        run_dir / ".config.yaml.k2j4h1x0.tmp",
        run_dir / ".learning_curve.x81_ab9z.png",
        run_dir / "checkpoints" / ".model_2000.a1b2c3d4.partial.zip",
        run_dir / "checkpoints" / ".state_2000.a1b2c3d4.partial.pkl",
    ]
    for path in stale:
        path.write_bytes(b"left by a killed run")
    own_files = [run_dir / "notes.txt", run_dir / ".thumbnail.png"]
    for path in own_files:
        path.write_text("the user's own file")

    train(load_config(run_dir / "config.yaml"), run_dir, resume=True, progress_bar=False)

    assert not [path.name for path in stale if path.exists()], "stale temporaries kept"
    for path in own_files:
        assert path.read_text() == "the user's own file", f"{path.name} was changed or deleted"
