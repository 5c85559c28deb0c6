"""stable-baselines3 callbacks of ledgerzoo runs: atomic checkpoints and market metrics.

A checkpoint is taken at the start of a rollout, between two updates, where nothing of the
run lives outside the model, the vector env and the global random generators. With
``save_state=True`` it stores, beside ``model_<timesteps>.zip``, ``state_<timesteps>.pkl``:
the vector env (every market instance mid-episode), the episode statistics of SB3's monitor
and the states of the torch, numpy and Python generators. A run resumed from both continues
exactly as if it had not stopped (see :func:`restore_training_state`).

The state file is a pickle, like the data inside SB3's model files: load only run
directories that you wrote.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ledgerzoo._extras import require
from ledgerzoo.envs.core import keys
from ledgerzoo.training.config import write_atomic
from ledgerzoo.training.train import CHECKPOINT_PATTERN

BaseCallback = require("stable_baselines3.common.callbacks", "training").BaseCallback

PROGRESS_FIELDS = (
    "timesteps",
    "role",
    "rate_error",
    "utility",
    "equilibrium_utility",
    "nash_conv",
    "normalized_nash_conv",
)
STATE_PATTERN = re.compile(r"state_(\d+)\.pkl$")
#: Version of the layout of state_<timesteps>.pkl. A file of another version is not resumed.
TRAINING_STATE_FORMAT = 1
# The monitor's attributes that are not its episode statistics.
_MONITOR_STRUCTURE = ("venv", "class_attributes")


class AtomicCheckpointCallback(BaseCallback):  # type: ignore[misc, valid-type]
    """Save the model as ``model_<timesteps>.zip`` at the first rollout start after every
    ``every`` agent-steps, atomically, keeping the newest ``keep`` checkpoints.

    Args:
        folder: Checkpoint folder.
        every: Agent-steps between checkpoints; 0 disables periodic checkpoints.
        keep: Number of checkpoints to keep.
        save_state: Also save ``state_<timesteps>.pkl`` (see the module docstring). The vector
            env must be picklable: one trained role, whose other roles act inside the market.
    """

    def __init__(self, folder: Path, every: int, keep: int, save_state: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.every = int(every)
        self.keep = int(keep)
        self.save_state = bool(save_state)
        self._next = 0

    def _on_training_start(self) -> None:
        self._schedule_next()

    def _on_rollout_start(self) -> None:
        if self.every > 0 and self.num_timesteps >= self._next:
            self.save_now(self.model, with_state=self.save_state)

    def _on_step(self) -> bool:
        return True

    def save_now(self, model: Any, with_state: bool = False) -> Path:
        """Save a checkpoint of ``model`` at its current timestep.

        Args:
            model: The SB3 model.
            with_state: Also save the training state. Only a rollout start is a consistent
                point for it, so a checkpoint taken elsewhere (on an interrupt) has none.

        Returns:
            The path of the model file.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        timesteps = int(model.num_timesteps)
        path = self.folder / f"model_{timesteps}.zip"
        # The state goes first and the model last: a model file marks a complete checkpoint,
        # so a kill between the two leaves a stray state file that resuming ignores.
        if with_state:
            state = capture_training_state(self.training_env, timesteps)
            write_bytes_atomic(training_state_path(path), pickle.dumps(state))
        save_model_atomic(model, path)
        self._prune()
        self._schedule_next()
        return path

    def _schedule_next(self) -> None:
        if self.every > 0:
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def _prune(self) -> None:
        models = checkpoint_steps(self.folder, CHECKPOINT_PATTERN)
        newest = set(sorted(models)[-self.keep :])
        for steps, path in models.items():
            if steps not in newest:
                path.unlink(missing_ok=True)
        for steps, path in checkpoint_steps(self.folder, STATE_PATTERN).items():
            if steps not in newest:
                path.unlink(missing_ok=True)


def checkpoint_steps(folder: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    """Map the timesteps of every file in ``folder`` that matches ``pattern`` to its path."""
    found: dict[int, Path] = {}
    for path in folder.glob("*"):
        match = pattern.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def training_state_path(checkpoint: Path) -> Path:
    """Return the state file that belongs to ``model_<timesteps>.zip``."""
    match = CHECKPOINT_PATTERN.fullmatch(checkpoint.name)
    if match is None:
        raise ValueError(f"{checkpoint.name!r} is not a checkpoint name (model_<timesteps>.zip)")
    return checkpoint.with_name(f"state_{match.group(1)}.pkl")


def capture_training_state(monitor: Any, timesteps: int) -> dict[str, Any]:
    """Collect what a run needs, beside its model file, to continue exactly.

    Args:
        monitor: SB3's VecMonitor around the role's :class:`~ledgerzoo.envs.core.vector.RoleVecEnv`.
        timesteps: The model's timesteps, which the state belongs to.
    """
    torch = require("torch", "training")
    role_env = monitor.venv
    statistics = {
        name: value for name, value in vars(monitor).items() if name not in _MONITOR_STRUCTURE
    }
    # SB3 shuffles its minibatches with numpy's global generator, so its state is saved too.
    return {
        "format": TRAINING_STATE_FORMAT,
        "timesteps": int(timesteps),
        "role_env": role_env,
        "monitor": statistics,
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # noqa: NPY002
            "python": random.getstate(),
        },
    }


def load_training_state(path: Path) -> dict[str, Any] | None:
    """Read a state file, or return None when it is of another format version."""
    state = pickle.loads(Path(path).read_bytes())
    if not isinstance(state, Mapping) or state.get("format") != TRAINING_STATE_FORMAT:
        return None
    return dict(state)


def restore_training_state(
    state: Mapping[str, Any], other_policies: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    """Rebuild the vector env of a state: the role's VecEnv and the VecMonitor around it.

    The random generators are restored by :func:`restore_random_state`, after the model is
    loaded, because loading a model seeds them again.

    Returns:
        The RoleVecEnv and its VecMonitor.
    """
    vec_env = require("stable_baselines3.common.vec_env", "training")
    role_env = state["role_env"]
    role_env.other_policies = dict(other_policies or {})
    monitor = vec_env.VecMonitor(role_env)
    for name, value in state["monitor"].items():
        setattr(monitor, name, value)
    return role_env, monitor


def restore_random_state(state: Mapping[str, Any]) -> None:
    """Set the torch, numpy and Python generators to the states saved in ``state``."""
    torch = require("torch", "training")
    generators = state["rng"]
    torch.set_rng_state(generators["torch"])
    np.random.set_state(generators["numpy"])  # noqa: NPY002
    random.setstate(generators["python"])


def save_model_atomic(model: Any, path: Path) -> None:
    """Save an SB3 model to a temporary file beside ``path``, then rename it over ``path``.

    SB3's ``save`` writes the zip in place, so a kill mid-save would leave a truncated file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=".partial.zip"
    )
    os.close(handle)
    try:
        model.save(temporary)
        _sync_and_replace(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write bytes to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=".partial.pkl"
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        _sync_and_replace(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sync_and_replace(temporary: Path, path: Path) -> None:
    # Flush the file's data to disk before the rename makes it visible under its name.
    with temporary.open("rb+") as stream:
        os.fsync(stream.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, path)


class MarketMetricsCallback(BaseCallback):  # type: ignore[misc, valid-type]
    """Log the market's distance to the equilibrium over each rollout.

    Reads the trained role's info arrays from the vector env after every step (the env must be
    built with ``reference=True``), logs ``market/*`` keys to TensorBoard at the end of each
    rollout and appends a row to progress.csv (rewritten atomically).

    Args:
        vec_env: The :class:`~ledgerzoo.envs.core.vector.RoleVecEnv` being trained on.
        progress_csv: Path of progress.csv.
    """

    def __init__(self, vec_env: Any, progress_csv: Path) -> None:
        super().__init__()
        self.vec_env = vec_env
        self.progress_csv = Path(progress_csv)
        self._sums: dict[str, float] = {}
        self._count = 0

    def _on_step(self) -> bool:
        # With learned followers a round settles in another role's step, so read the step that
        # settled the round, once.
        step = self.vec_env.settled_step
        if step is None:
            return True
        self.vec_env.settled_step = None
        infos = step.infos.get(self.vec_env.role.name, {})
        reference = f"{keys.REFERENCE}/"
        if keys.UTILITY not in infos or reference + keys.UTILITY not in infos:
            return True
        values = {
            "utility": float(np.mean(infos[keys.UTILITY])),
            "equilibrium_utility": float(np.mean(infos[reference + keys.UTILITY])),
        }
        # A role that sets one rate per counterpart reports them all under RATES.
        rate_key = keys.RATES if keys.RATES in infos else keys.RATE
        rate_roles = self.vec_env.market.rate_roles
        sets_rates = not rate_roles or self.vec_env.role.name in rate_roles
        if sets_rates and rate_key in infos and reference + rate_key in infos:
            rate, equilibrium_rate = infos[rate_key], infos[reference + rate_key]
            values["rate_error"] = float(
                np.mean(np.abs(rate - equilibrium_rate) / equilibrium_rate)
            )
        if keys.BEST_RESPONSE_UTILITY in infos:
            gain = (infos[keys.BEST_RESPONSE_UTILITY] - infos[keys.UTILITY]).sum(axis=1)
            # As the evaluator does: agents that minimize costs are scaled by the equilibrium
            # cost, the others by their equilibrium utilities.
            scale_key = keys.COST if reference + keys.COST in infos else keys.UTILITY
            equilibrium_total = infos[reference + scale_key].sum(axis=1)
            values["nash_conv"] = float(np.mean(gain))
            # Rounds whose equilibrium total is 0 (no relay carried a message) have no scale.
            scaled = np.divide(
                gain,
                equilibrium_total,
                out=np.full_like(gain, np.nan),
                where=equilibrium_total > 0.0,
            )
            if np.isfinite(scaled).any():
                values["normalized_nash_conv"] = float(np.nanmean(scaled))
        for name, value in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
        self._count += 1
        return True

    def _on_rollout_end(self) -> None:
        if not self._count:
            return
        means = {name: total / self._count for name, total in self._sums.items()}
        for name, value in means.items():
            self.logger.record(f"market/{name}", value)
        row: dict[str, Any] = {"timesteps": self.num_timesteps, "role": self.vec_env.role.name}
        row.update({name: means.get(name, float("nan")) for name in PROGRESS_FIELDS[2:]})
        self._append(row)
        self._sums, self._count = {}, 0

    def _append(self, row: dict[str, Any]) -> None:
        existing = self.progress_csv.read_text() if self.progress_csv.is_file() else ""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(PROGRESS_FIELDS))
        if not existing:
            writer.writeheader()
        writer.writerow(row)
        write_atomic(self.progress_csv, existing + buffer.getvalue())


def trim_progress(progress_csv: Path, timesteps: Mapping[str, int]) -> int:
    """Drop the rows of progress.csv that a resumed run will write again.

    A row of role r stays when its timesteps are at most ``timesteps[r]``, the model's
    timesteps where the run resumes. Rows of other roles stay. The file is rewritten
    atomically.

    Returns:
        The number of rows dropped.
    """
    path = Path(progress_csv)
    if not path.is_file():
        return 0
    with path.open(newline="") as stream:
        reader = csv.DictReader(stream)
        fields = reader.fieldnames or list(PROGRESS_FIELDS)
        rows = list(reader)
    remaining_rows = [
        row
        for row in rows
        if row.get("role") not in timesteps or int(row["timesteps"]) <= timesteps[row["role"]]
    ]
    if len(remaining_rows) == len(rows):
        return 0
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(remaining_rows)
    write_atomic(path, buffer.getvalue())
    return len(rows) - len(remaining_rows)
