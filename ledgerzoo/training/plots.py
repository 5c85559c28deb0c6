"""Figures of a run (learned against equilibrium rates, the learning curve) and of a sweep.

Matplotlib with the non-interactive Agg backend; files are written atomically.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from ledgerzoo.training.evaluate import EvaluationResult
    from ledgerzoo.training.sweep import SweepResult

# Sizes for a figure printed at about one column of a paper (6 inches wide).
SWEEP_STYLE: dict[Any, Any] = {
    "font.size": 11,
    "axes.labelsize": 12,
    "axes.titlesize": 11,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "lines.linewidth": 1.8,
}
# Curves differ in line style as well as color, so they stay apart in grayscale prints.
SWEEP_LINE_STYLES = ("-", "--", "-.", ":")
SWEEP_MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_rates(result: EvaluationResult, path: str | Path) -> Path:
    """Plot learned against equilibrium rates: per lender in the first episode, and for
    every agent of every episode against the diagonal.

    Returns:
        The path written.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    # A run's policy name carries the run directory, too long for a legend.
    label = result.policy.split(" ")[0]
    rates = np.asarray(result.rates[0])
    equilibrium = np.asarray(result.equilibrium_rates[0])
    positions = np.arange(rates.size)
    left.bar(positions - 0.2, rates, width=0.4, label=label)
    left.bar(positions + 0.2, equilibrium, width=0.4, label="equilibrium")
    left.set_xticks(positions, [str(i) for i in positions])
    left.set_xlabel("agent index")
    left.set_ylabel("interest rate (fraction per loan term)")
    left.set_title(f"first episode, mean over rounds >= {result.skip_rounds}", fontsize=10)
    left.legend(fontsize=8, loc="lower right", framealpha=0.8)

    learned = np.concatenate([np.asarray(r) for r in result.rates])
    reference = np.concatenate([np.asarray(r) for r in result.equilibrium_rates])
    right.scatter(reference, learned, s=12, alpha=0.7, label=label)
    low, high = (
        float(min(reference.min(), learned.min())),
        float(max(reference.max(), learned.max())),
    )
    right.plot([low, high], [low, high], color="black", linewidth=1, label="equilibrium (y = x)")
    right.set_xlabel("equilibrium rate r* (fraction per loan term)")
    right.set_ylabel("played rate r (fraction per loan term)")
    right.set_title(f"all {len(result.rates)} held-out episodes", fontsize=10)
    right.legend(fontsize=8, loc="lower right", framealpha=0.8)
    fig.suptitle(f"{result.env_name}: played against equilibrium rates")
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_learning_curve(progress_csv: str | Path, path: str | Path) -> Path | None:
    """Plot the training curve logged in progress.csv with the equilibrium as a reference line.

    Returns:
        The path written, or None when the file has no rows yet.
    """
    rows = _read_rows(Path(progress_csv))
    if not rows:
        return None
    roles = sorted({row.get("role") or "agents" for row in rows})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for role in roles:
        mine = [row for row in rows if (row.get("role") or "agents") == role]
        steps = np.array([float(row["timesteps"]) for row in mine])
        utility = np.array([float(row["utility"]) for row in mine])
        equilibrium = np.array([float(row["equilibrium_utility"]) for row in mine])
        rate_error = np.array([float(row["rate_error"]) for row in mine])
        (line,) = top.plot(steps, utility, label=f"{role}, learned")
        top.plot(
            steps, equilibrium, linestyle="--", color=line.get_color(), label=f"{role}, equilibrium"
        )
        if np.isfinite(rate_error).any():
            bottom.plot(steps, 100.0 * rate_error, label=role)
    top.set_ylabel("mean utility per agent and round (coins)")
    top.legend(fontsize=8)
    bottom.axhline(0.0, linestyle="--", color="black", label="equilibrium")
    bottom.set_ylabel("mean relative rate error (%)")
    bottom.set_xlabel("agent-steps of the role")
    bottom.legend(fontsize=8)
    fig.suptitle("training against the analytic equilibrium")
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_sweep(result: SweepResult, metric: str, path: str | Path) -> Path:
    """Plot one metric of a sweep: the equilibrium as a line per value of the curve key,
    and trained values, where the sweep has them, as markers with 95% confidence intervals.

    A horizontal axis whose values are not numbers is drawn as evenly spaced categories.

    Returns:
        The path written.
    """
    series = result.series(metric)
    categorical = any(isinstance(value, (bool, str)) for curve in series for value in curve.x)
    categories = list(dict.fromkeys(value for curve in series for value in curve.x))
    with plt.rc_context(SWEEP_STYLE):
        fig, axes = plt.subplots(figsize=(6.0, 4.2))
        handles = []
        for index, curve in enumerate(series):
            positions = [categories.index(value) for value in curve.x] if categorical else curve.x
            color = f"C{index % 10}"
            (line,) = axes.plot(
                positions,
                curve.equilibrium,
                color=color,
                linestyle=SWEEP_LINE_STYLES[index % len(SWEEP_LINE_STYLES)],
                marker=SWEEP_MARKERS[index % len(SWEEP_MARKERS)],
                markersize=4,
                label=curve.label,
            )
            handles.append(line)
            trained = np.asarray(curve.trained, dtype=np.float64)
            if np.isfinite(trained).any():
                errors = np.nan_to_num(np.asarray(curve.trained_ci95, dtype=np.float64))
                axes.errorbar(
                    positions,
                    trained,
                    yerr=errors,
                    color=color,
                    linestyle="none",
                    marker="X",
                    markersize=8,
                    markeredgecolor="black",
                    markeredgewidth=0.6,
                    capsize=3,
                )
        if any(np.isfinite(np.asarray(c.trained, dtype=np.float64)).any() for c in series):
            if result.curve is not None:
                # The curves' entries name the curve values, so one more entry explains
                # that lines are the equilibrium.
                handles.append(
                    Line2D([], [], color="0.35", linestyle="-", label="equilibrium (lines)")
                )
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.35",
                    linestyle="none",
                    marker="X",
                    markersize=8,
                    label=f"trained {result.algorithm} (markers, 95% CI)",
                )
            )
        if categorical:
            axes.set_xticks(range(len(categories)), [str(value) for value in categories])
        elif all(isinstance(value, int) for curve in series for value in curve.x):
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(result.labels[result.x])
        axes.set_ylabel(result.labels[metric])
        axes.set_title(f"{result.env_name}: {result.description()}")
        axes.grid(alpha=0.3)
        axes.legend(handles=handles, title=result.legend_title(), loc="best", framealpha=0.9)
        fig.tight_layout()
        return _save(fig, Path(path), dpi=200)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open() as stream:
        return list(csv.DictReader(stream))


def _save(fig: Any, path: Path, dpi: int = 150) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(handle)
    try:
        fig.savefig(temporary, dpi=dpi)
        # mkstemp creates the file readable by its owner only; give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        plt.close(fig)
        Path(temporary).unlink(missing_ok=True)
    return path
