"""stable-baselines3 callbacks of ledgerzoo runs: atomic checkpoints and market metrics."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ledgerzoo._extras import require
from ledgerzoo.envs.core import keys
from ledgerzoo.training.config import write_atomic

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


class AtomicCheckpointCallback(BaseCallback):  # type: ignore[misc, valid-type]
    """Save the model every ``every`` agent-steps as ``model_<timesteps>.zip``, atomically,
    keeping the newest ``keep`` files.

    Args:
        folder: Checkpoint folder.
        every: Agent-steps between checkpoints; 0 disables periodic checkpoints.
        keep: Number of checkpoints to keep.
    """

    def __init__(self, folder: Path, every: int, keep: int) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.every = int(every)
        self.keep = int(keep)
        self._next = 0

    def _on_training_start(self) -> None:
        if self.every > 0:
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.every > 0 and self.num_timesteps >= self._next:
            self.save_now(self.model)
            self._next += self.every
        return True

    def save_now(self, model: Any) -> Path:
        """Save a checkpoint of ``model`` at its current timestep."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"model_{int(model.num_timesteps)}.zip"
        temporary = self.folder / f".model_{int(model.num_timesteps)}.partial.zip"
        model.save(str(temporary))
        os.replace(temporary, path)
        checkpoints = sorted(
            self.folder.glob("model_*.zip"), key=lambda p: int(p.stem.split("_")[1])
        )
        for old in checkpoints[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


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
