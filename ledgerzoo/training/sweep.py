"""Parameter sweeps: a config's equilibrium, and optionally trained policies, across a grid.

A sweep varies one or two config keys, dotted paths such as ``env.kwargs.n_lenders`` or
``env.kwargs.min_rate``, over lists of values. At every grid point it validates the config
with the values set, solves the equilibrium with :func:`ledgerzoo.training.solve.solve` and
reads each metric from that output. A point whose scenario draws parameters from ranges is
solved once for each of the config's evaluation seeds (the held-out seeds of
:func:`ledgerzoo.training.evaluate.evaluation_seeds`), and its value is the mean over them.
A scenario with fixed parameters is solved once and its values are exact. With
``train=True`` each point is also trained with :func:`ledgerzoo.training.train.train` and
evaluated on the same held-out seeds, and the trained values are reported beside the
equilibrium for the metrics the evaluator measures.

:func:`sweep` returns a :class:`SweepResult`, and :func:`write_sweep` writes ``sweep.csv``,
``sweep.json`` and one figure per metric. ``ledgerzoo sweep`` calls both.
"""

from __future__ import annotations

import copy
import csv
import difflib
import inspect
import io
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

from ledgerzoo import registry
from ledgerzoo._extras import require
from ledgerzoo.training.config import (
    MAX_SWEEP_KEYS,
    ConfigError,
    EvalConfig,
    ExperimentConfig,
    TrainConfig,
    check_sweep_grid,
    config_from_dict,
    write_atomic,
)
from ledgerzoo.training.evaluate import evaluation_seeds
from ledgerzoo.training.solve import solve

logger = logging.getLogger(__name__)

SECTIONS = {"train": TrainConfig, "eval": EvalConfig}
# Keys of a solve output that count steps of a solver, not outcomes of the game.
BOOKKEEPING_KEYS = ("seed", "iterations", "moves")
# A trained value's equilibrium counterpart may differ from the sweep's by float rounding.
CONSISTENCY_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Metric:
    """A quantity a sweep reads from each solve output.

    Attributes:
        label: Axis label, with the unit.
        extract: Reads the value from one solve output; raises KeyError or IndexError when
            the market's output lacks what it needs.
        evaluator_name: Name of the same quantity in the evaluator's metrics, or None when
            the evaluator does not measure it (then a sweep with training reports no trained
            value for it).
        per_lender: Divide the evaluator's value by the number of lenders (the evaluator
            reports a role's total utility).
    """

    label: str
    extract: Callable[[Mapping[str, Any]], float]
    evaluator_name: str | None = None
    per_lender: bool = False


def _optimal_lender_profit(solution: Mapping[str, Any]) -> float:
    # The profit phi_l = x_l (r_l - r_min,l) from the equilibrium's loan and rate of the
    # optimal lender l. NOTE: this repeats the formula of model.lender_utility_against, which
    # computes phi only inside LU; a model.lender_profits function would keep it in one place.
    lender = solution["optimal_lender"]
    return float(
        solution["loans"][lender]
        * (solution["rates"][lender] - solution["game"]["min_rate"][lender])
    )


METRICS: dict[str, Metric] = {
    "optimal_lender_rate": Metric(
        "optimal lender's rate $r_l$ (per loan term)",
        lambda s: float(s["rates"][s["optimal_lender"]]),
        evaluator_name="optimal_lender_rate",
    ),
    "optimal_lender_profit": Metric(
        r"optimal lender's profit $\phi_l$ (coins)", _optimal_lender_profit
    ),
    "optimal_lender_utility": Metric(
        "optimal lender's utility $LU_l$ (coins)",
        lambda s: float(s["lender_utilities"][s["optimal_lender"]]),
    ),
    "mean_rate": Metric(
        r"mean rate $\bar{r}$ over lenders (per loan term)",
        lambda s: float(np.mean(s["rates"])),
        evaluator_name="mean_rate",
    ),
    "mean_lender_utility": Metric(
        "mean lender utility $LU_i$ (coins)",
        lambda s: float(np.mean(s["lender_utilities"])),
        evaluator_name="utility/lender",
        per_lender=True,
    ),
    "total_investment": Metric(
        r"total investment $\Sigma_i x_i$ (coins)", lambda s: float(np.sum(s["investments"]))
    ),
    "borrower_utility": Metric(
        "borrower's utility $BU$ (coins)",
        lambda s: float(s["borrower_utility"]),
        evaluator_name="borrower_utility",
    ),
    "welfare": Metric(
        "welfare, sum of all utilities (coins)",
        lambda s: float(s["welfare"]),
        evaluator_name="welfare",
    ),
    "total_cost": Metric(
        "total cost of the devices (coins)",
        lambda s: float(s["total_cost"]),
        evaluator_name="total_cost",
    ),
    "price_of_anarchy": Metric("price of anarchy", lambda s: float(s["price_of_anarchy"])),
}

# Axis label and legend symbol of common env arguments, by argument name.
KEY_LABELS: dict[str, tuple[str, str | None]] = {
    "n_lenders": ("number of lenders $N$", "$N$"),
    "min_rate": ("minimum lending rate $r_{min}$ (per loan term)", "$r_{min}$"),
    "max_rate": ("rate cap $r_{max}$ (per loan term)", "$r_{max}$"),
    "willingness": ("borrower's willingness $d$ (coins x rate)", "$d$"),
    "max_investment": ("largest investment $x_{max}$ (coins)", "$x_{max}$"),
    "reward": ("reward $R$ (coins)", "$R$"),
    "weight": ("willingness weight $w$", "$w$"),
    "valuation": (r"valuation $\eta$ (coins)", r"$\eta$"),
    "target": ("amount to raise $X$ (coins)", "$X$"),
    "pricing": ("pricing", None),
}


@dataclass
class SweepPoint:
    """The outcome of one grid point.

    Attributes:
        parameters: Grid key -> value at this point.
        values: Metric -> equilibrium value, the mean over ``seeds`` when parameters are drawn.
        seeds: The seed of each solved episode, or ``[None]`` when the parameters are fixed.
        per_episode: Metric -> the value of each solved episode.
        solutions: The :func:`~ledgerzoo.training.solve.solve` output of each episode.
        converged: Whether the solver converged in every episode.
        trained: With training: metric -> ``{"mean", "ci95"}`` of the evaluation, for the
            metrics the evaluator measures.
        evaluation: With training: the evaluator's metric means.
        run_dir: With training: the run directory of this point.
    """

    parameters: dict[str, Any]
    values: dict[str, float]
    seeds: list[int | None]
    per_episode: dict[str, list[float]]
    solutions: list[dict[str, Any]]
    converged: bool
    trained: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluation: dict[str, float] | None = None
    run_dir: Path | None = None


@dataclass
class SweepSeries:
    """One curve of a sweep figure: the equilibrium, and trained values where measured."""

    label: str
    x: list[Any]
    equilibrium: list[float]
    trained: list[float]
    trained_ci95: list[float]


@dataclass
class SweepResult:
    """A finished sweep.

    Attributes:
        name: Name of the sweep (of its output directory).
        env_name: Registry name of the env.
        grid: Grid key -> values, in the order the rows use (the last key varies fastest).
        metrics: Reported metrics.
        x: Grid key on the figures' horizontal axis.
        curve: Grid key with one curve per value, or None for a one-key sweep.
        labels: Axis labels by grid key or metric name (defaults filled in).
        method: Solver method, None for the market's default.
        points: One entry per grid point, in row order.
        config: The swept config as plain data, with the resolved sweep section.
        trained: Whether the points were trained.
        algorithm: The training algorithm, when trained.
    """

    name: str
    env_name: str
    grid: dict[str, list[Any]]
    metrics: list[str]
    x: str
    curve: str | None
    labels: dict[str, str]
    method: str | None
    points: list[SweepPoint]
    config: dict[str, Any]
    trained: bool = False
    algorithm: str | None = None

    @property
    def exact(self) -> bool:
        """Whether every point's parameters are fixed, so that its values are exact."""
        return all(point.seeds == [None] for point in self.points)

    def description(self) -> str:
        """Describe how the equilibrium values were obtained, for titles and tables."""
        if self.exact:
            return "exact equilibrium"
        episodes = sorted({len(point.seeds) for point in self.points})
        count = episodes[0] if len(episodes) == 1 else f"{episodes[0]}-{episodes[-1]}"
        return f"equilibrium, mean of {count} drawn episodes"

    def trained_metrics(self) -> list[str]:
        """Return the metrics with trained values (empty without training)."""
        if not self.trained:
            return []
        return [name for name in self.metrics if _evaluator_name(name) is not None]

    def rows(self) -> list[dict[str, Any]]:
        """Return one row per grid point: the grid values, then every metric (the CSV)."""
        rows = []
        for point in self.points:
            row: dict[str, Any] = dict(point.parameters)
            row["episodes"] = len(point.seeds)
            row["converged"] = point.converged
            row.update(point.values)
            for name in self.trained_metrics():
                summary = point.trained.get(name, {})
                row[f"{name}_trained"] = summary.get("mean", math.nan)
                row[f"{name}_trained_ci95"] = summary.get("ci95", math.nan)
            rows.append(row)
        return rows

    def series(self, metric: str) -> list[SweepSeries]:
        """Return the curves of a metric's figure, one per value of the curve key."""
        curve_values: list[Any] = [None] if self.curve is None else self.grid[self.curve]
        result = []
        for curve_value in curve_values:
            points = [
                point
                for point in self.points
                if self.curve is None or point.parameters[self.curve] == curve_value
            ]
            trained = [point.trained.get(metric, {}) for point in points]
            result.append(
                SweepSeries(
                    label=self.curve_label(curve_value),
                    x=[point.parameters[self.x] for point in points],
                    equilibrium=[point.values[metric] for point in points],
                    trained=[summary.get("mean", math.nan) for summary in trained],
                    trained_ci95=[summary.get("ci95", math.nan) for summary in trained],
                )
            )
        return result

    def curve_label(self, value: Any) -> str:
        """Return the legend entry of one curve, such as ``$N$ = 5``."""
        if self.curve is None:
            return "equilibrium"
        symbol = KEY_LABELS.get(self.curve.rsplit(".", 1)[-1], ("", None))[1]
        text = _format_value(value)
        return f"{symbol} = {text}" if symbol else text

    def legend_title(self) -> str | None:
        """Return the legend title: the curve key's name when its entries are bare values."""
        if self.curve is None:
            return None
        name = self.curve.rsplit(".", 1)[-1]
        return None if KEY_LABELS.get(name, ("", None))[1] else name

    def table(self) -> str:
        """Format the rows as a text table."""
        rows = self.rows()
        columns = [*self.grid, *self.metrics]
        for name in self.trained_metrics():
            columns.append(f"{name}_trained")
        headers = [
            column.rsplit(".", 1)[-1] if column in self.grid else column for column in columns
        ]
        cells = [[_format_value(row[column]) for column in columns] for row in rows]
        widths = [
            max(len(header), *(len(line[index]) for line in cells))
            for index, header in enumerate(headers)
        ]
        lines = [
            f"{self.env_name}: {self.description()}, {len(self.points)} grid points",
            "  ".join(header.rjust(width) for header, width in zip(headers, widths, strict=True)),
        ]
        for line in cells:
            lines.append(
                "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the sweep as plain data (the content of sweep.json)."""
        return {
            "name": self.name,
            "env": self.env_name,
            "equilibrium": self.description(),
            "grid": self.grid,
            "metrics": self.metrics,
            "trained_metrics": self.trained_metrics(),
            "plot": {"x": self.x, "curve": self.curve},
            "labels": self.labels,
            "method": self.method,
            "trained": self.trained,
            "algorithm": self.algorithm,
            "points": [
                {
                    "parameters": point.parameters,
                    "values": point.values,
                    "converged": point.converged,
                    "seeds": point.seeds,
                    "per_episode": point.per_episode,
                    "trained": point.trained,
                    "evaluation": point.evaluation,
                    "run_dir": None if point.run_dir is None else str(point.run_dir),
                    "solutions": point.solutions,
                }
                for point in self.points
            ],
            "config": self.config,
        }


def sweep(
    config: ExperimentConfig,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    metrics: Sequence[str] | None = None,
    x: str | None = None,
    curve: str | None = None,
    method: str | None = None,
    train: bool = False,
    total_timesteps: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> SweepResult:
    """Solve a config's equilibrium at every point of a grid, and optionally train there.

    Arguments left as None come from the config's ``sweep`` section, then from defaults.

    Args:
        config: A validated experiment config.
        grid: One or two dotted config keys, each with a list of values. None uses
            ``config.sweep.grid``.
        metrics: Metric names: those of :data:`METRICS`, or a dotted path into the solve
            output that leads to a number (``social_optimum.total_cost``). The default is
            every metric of :data:`METRICS` that the market's solve output provides.
        x: Grid key on the figures' horizontal axis (default: the first key with numbers).
        curve: Grid key with one curve per value (default: the other key).
        method: Solver method, as for :func:`~ledgerzoo.training.solve.solve`.
        train: Also train each point with the config's train section and evaluate it.
        total_timesteps: With ``train``: agent-steps per point, in place of
            ``train.total_timesteps``.
        out_dir: Write the results there with :func:`write_sweep` (and, with ``train``, one
            run directory per point under ``runs/``). With ``train`` and no ``out_dir``, the
            directory is :func:`default_sweep_dir`.
        name: Name of the sweep; default ``config.sweep.name``, else ``"sweep"``.

    Returns:
        The values at every point, in row order (the last grid key varies fastest).

    Raises:
        ConfigError: For an unknown or unsettable key, a value of the wrong kind, a grid of
            more than two keys or an empty list, or a grid point the config validator rejects
            (the message names the point).
        ValueError: For an unknown metric or plot key, or ``total_timesteps`` without ``train``.
        FileExistsError: If ``out_dir`` already contains a sweep.
        ImportError: With ``train``, if the train extra is missing.
    """
    spec = config.sweep
    if grid is None:
        if spec is None:
            raise ConfigError(
                "the config has no sweep section, so there is no grid to sweep; pass "
                "--set KEY=V1,V2,... (in Python: grid={KEY: [V1, V2]}) or add sweep.grid"
            )
        grid = spec.grid
    grid = check_sweep_grid(dict(grid), "sweep grid")
    if total_timesteps is not None and not train:
        raise ValueError("total_timesteps (--total-timesteps) applies only with training (--train)")

    base = config.to_dict()
    base.pop("sweep", None)
    env_name = config.env.name
    for key, values in grid.items():
        _check_key(base, env_name, key, values)
    x, curve = _plot_keys(grid, x, curve, spec)
    if spec is not None:
        name = name or spec.name
        method = method if method is not None else spec.method
        metrics = metrics or spec.metrics
    name = _file_name(name or "sweep")
    if total_timesteps is not None:
        base["train"]["total_timesteps"] = total_timesteps
    if train:
        # Fail before the equilibria are solved, not at the first training run.
        require("stable_baselines3", "training")

    directory = Path(out_dir) if out_dir is not None else None
    if directory is None and train:
        directory = default_sweep_dir(name)
    if directory is not None and (directory / "sweep.json").exists():
        raise FileExistsError(
            f"{str(directory)!r} already contains a sweep (sweep.json); choose another --out or "
            "remove that directory"
        )

    assignments = [
        dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
    ]
    point_configs = [_point_config(base, parameters) for parameters in assignments]

    points: list[SweepPoint] = []
    names = list(metrics or [])
    for index, (parameters, point_config) in enumerate(
        zip(assignments, point_configs, strict=True)
    ):
        solutions = _solve_point(point_config, method)
        if index == 0:
            names = _check_metrics(names, solutions[0], env_name)
        point = _summarize_point(parameters, solutions, names)
        if not point.converged:
            logger.warning(
                "the solver did not converge at grid point %s; its values are the solver's "
                "last iterate",
                _describe_point(parameters),
            )
        logger.info(
            "grid point %d/%d (%s): solved %d episode(s)",
            index + 1,
            len(assignments),
            _describe_point(parameters),
            len(solutions),
        )
        points.append(point)

    result = SweepResult(
        name=name,
        env_name=env_name,
        grid=grid,
        metrics=names,
        x=x,
        curve=curve,
        labels=_labels(grid, names, spec.labels if spec is not None else {}),
        method=method,
        points=points,
        config={
            **base,
            "sweep": {
                "grid": grid,
                "metrics": names,
                "plot": {"x": x, "curve": curve},
                "labels": dict(spec.labels) if spec is not None else {},
                "method": method,
                "name": name,
            },
        },
        trained=train,
        algorithm=config.train.algorithm if train else None,
    )
    if train:
        assert directory is not None
        _train_points(result, point_configs, directory)
    if directory is not None:
        write_sweep(result, directory)
    return result


def write_sweep(result: SweepResult, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write sweep.csv, sweep.json and one figure per metric (``<metric>.png``), atomically.

    Values that are undefined (a trained value the evaluator does not measure, an unbounded
    solver output) are empty in the CSV and null in the JSON.

    Returns:
        Kind (``csv``, ``json``, or the metric name of a figure) -> path written.
    """
    from ledgerzoo.training.plots import plot_sweep

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "sweep.csv", "json": out / "sweep.json"}
    rows = result.rows()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    write_atomic(paths["csv"], buffer.getvalue())
    data = _json_ready(result.to_dict())
    write_atomic(paths["json"], json.dumps(data, indent=2, allow_nan=False) + "\n")
    for metric in result.metrics:
        paths[metric] = plot_sweep(result, metric, out / f"{_file_name(metric)}.png")
    return paths


def parse_assignment(text: str) -> tuple[str, list[Any]]:
    """Parse ``KEY=V1,V2,...`` into the key and its values.

    Each value becomes an int, a float, a boolean (``true``/``false``) or else a string.

    Raises:
        ConfigError: For a missing ``=``, an empty key or value list, or an empty value.
    """
    key, separator, listed = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise ConfigError(
            f"invalid --set {text!r}: expected KEY=V1,V2,..., for example "
            "env.kwargs.n_lenders=2,5,10"
        )
    if not listed.strip():
        raise ConfigError(
            f"empty value list in --set {text!r}: give at least one value, for example {key}=1,2,3"
        )
    values = []
    for item in listed.split(","):
        item = item.strip()
        if not item:
            raise ConfigError(
                f"empty value in --set {text!r}: remove the extra comma, for example {key}=1,2,3"
            )
        values.append(_parse_value(item))
    return key, values


def resolve_grid(config: ExperimentConfig, assignments: Sequence[str]) -> dict[str, list[Any]]:
    """Combine ``--set`` assignments with the config's sweep grid.

    When every assigned key is a key of ``config.sweep.grid``, the assignments replace those
    keys' values and the other grid keys stay. When any assigned key is not in that grid, or
    the config has no sweep section, the assigned keys alone form the grid. With no
    assignments the config's grid is returned.

    Raises:
        ConfigError: For an invalid assignment, a key assigned twice, no grid at all, or a
            grid of more than two keys.
    """
    assigned: dict[str, list[Any]] = {}
    for text in assignments:
        key, values = parse_assignment(text)
        if key in assigned:
            raise ConfigError(f"--set {key} is given twice; give each key once")
        assigned[key] = values
    own = dict(config.sweep.grid) if config.sweep is not None else {}
    if not assigned:
        if not own:
            raise ConfigError(
                "the config has no sweep section, so there is no grid to sweep; pass "
                "--set KEY=V1,V2,... with one or two keys, for example "
                "--set env.kwargs.n_lenders=2,5,10"
            )
        return check_sweep_grid(own, "sweep.grid")
    if own and all(key in own for key in assigned):
        own.update(assigned)
        return check_sweep_grid(own, "--set")
    if len(assigned) > MAX_SWEEP_KEYS:
        raise ConfigError(
            f"a sweep takes one or two keys, got {len(assigned)} --set keys: {list(assigned)}; "
            "drop --set options until two are left"
        )
    return check_sweep_grid(assigned, "--set")


def default_sweep_dir(name: str) -> Path:
    """Return ``runs/sweep-<name>-<UTC time>`` in the working directory."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"sweep-{_file_name(name)}-{stamp}"


def available_metrics(solution: Mapping[str, Any]) -> list[str]:
    """Return the metrics of :data:`METRICS` that a solve output provides, then the other
    numbers at its top level (leaving out the solver's step counts)."""
    names = [name for name, metric in METRICS.items() if _extracts(metric, solution)]
    for key, value in solution.items():
        if key not in names and key not in BOOKKEEPING_KEYS and _is_number(value):
            names.append(key)
    return names


# --------------------------------------------------------------------------------------------


def _check_key(base: Mapping[str, Any], env_name: str, key: str, values: Sequence[Any]) -> None:
    """Check that ``key`` leads to a settable config value and that ``values`` fit its kind."""
    parts = key.split(".")
    if parts[0] == "env":
        kind = _env_key_kind(base, env_name, key, parts)
    elif parts[0] in SECTIONS:
        kind = _section_key_kind(key, parts)
    else:
        raise ConfigError(
            f"unknown key path {key!r}: a swept key starts with env.kwargs., train. or eval., "
            "for example env.kwargs.n_lenders"
        )
    _check_values(key, kind, values)


def _env_key_kind(base: Mapping[str, Any], env_name: str, key: str, parts: list[str]) -> str:
    if len(parts) < 3 or parts[1] != "kwargs":
        raise ConfigError(
            f"unknown key path {key!r}: the env is swept through its arguments, "
            f"env.kwargs.<argument>, for example env.kwargs.n_lenders (env.name cannot be swept)"
        )
    argument = parts[2]
    parameters = _env_parameters(env_name)

    if argument not in parameters:
        close = difflib.get_close_matches(argument, list(parameters), n=1)
        hint = f"did you mean env.kwargs.{close[0]}? " if close else ""
        raise ConfigError(
            f"unknown key path {key!r}: {env_name} has no argument {argument!r}; {hint}The "
            f"env's arguments are {sorted(parameters)}"
        )

    kwargs = base["env"].get("kwargs") or {}
    if argument not in kwargs:
        if len(parts) > 3:
            raise ConfigError(
                f"unknown key path {key!r}: the config does not set env.kwargs.{argument}, so "
                f"it has no key {parts[3]!r}; set env.kwargs.{argument} in the config first"
            )
        default = parameters[argument].default
        return _kind_of(None if default is inspect.Parameter.empty else default)

    value = kwargs[argument]
    for depth in range(3, len(parts)):
        if not isinstance(value, Mapping) or parts[depth] not in value:
            prefix = ".".join(parts[:depth])
            contents = (
                f"a mapping with keys {sorted(value)}"
                if isinstance(value, Mapping)
                else repr(value)
            )
            raise ConfigError(
                f"unknown key path {key!r}: {prefix} is {contents} in the config, which has no "
                f"key {parts[depth]!r}"
            )
        value = value[parts[depth]]

    if len(parts) > 3 and isinstance(value, (Mapping, list)):
        raise ConfigError(
            f"{key} is {value!r}, not a number or a choice; sweep one of its entries instead"
        )
    # A top-level argument given as a range or a list (a scenario value) takes a plain value,
    # which sets every lender alike, so only the env can tell what fits.
    return "any" if isinstance(value, (Mapping, list)) else _kind_of(value)


def _section_key_kind(key: str, parts: list[str]) -> str:
    section = SECTIONS[parts[0]]
    hints = get_type_hints(section)
    if len(parts) != 2 or parts[1] not in hints:
        field_name = parts[1] if len(parts) > 1 else ""
        close = difflib.get_close_matches(field_name, list(hints), n=1)
        hint = f"did you mean {parts[0]}.{close[0]}? " if close else ""
        raise ConfigError(
            f"unknown key path {key!r}: {hint}The keys of {parts[0]} are {sorted(hints)}"
        )
    expected = hints[parts[1]]
    if expected is bool:
        return "bool"
    if expected in (int, float):
        return "number"
    if expected is str:
        return "string"
    raise ConfigError(
        f"{key} is a list setting, not a number or a choice; a sweep sets numbers, strings or "
        "true/false"
    )


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def _check_values(key: str, kind: str, values: Sequence[Any]) -> None:
    for value in values:
        if kind == "number" and not _is_number(value):
            raise ConfigError(f"{key} takes numbers, but {value!r} is not a number")
        if kind == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{key} takes true or false, but got {value!r}")
        if kind == "string" and not isinstance(value, str):
            raise ConfigError(f"{key} takes a name (a choice), but got {value!r}")


def _env_parameters(env_name: str) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(registry.spec(env_name).load().raw_env.__init__)
    return {name: p for name, p in signature.parameters.items() if name != "self"}


def _plot_keys(
    grid: Mapping[str, Sequence[Any]], x: str | None, curve: str | None, spec: Any
) -> tuple[str, str | None]:
    """Resolve the figures' axes: arguments first, then the config's plot keys that are
    still in the grid, then the first number key as x and the other key as the curves."""
    for axis, key in (("x", x), ("curve", curve)):
        if key is not None and key not in grid:
            raise ValueError(f"plot {axis} {key!r} is not a key of the grid {list(grid)}")
    if spec is not None:
        if x is None and spec.plot.x in grid and spec.plot.x != curve:
            x = spec.plot.x
        if curve is None and spec.plot.curve in grid and spec.plot.curve != x:
            curve = spec.plot.curve
    keys = list(grid)
    if x is None:
        numeric = [key for key in keys if key != curve and all(_is_number(v) for v in grid[key])]
        x = numeric[0] if numeric else next(key for key in keys if key != curve)
    if x == curve:
        raise ValueError(f"the plot's x and curve are both {x!r}; give different keys")
    others = [key for key in keys if key != x]
    if curve is None and others:
        curve = others[0]
    return x, curve


def _point_config(base: Mapping[str, Any], parameters: Mapping[str, Any]) -> ExperimentConfig:
    """Validate the config with one grid point's values set."""
    data = copy.deepcopy(dict(base))
    for key, value in parameters.items():
        parts = key.split(".")
        target = data
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return config_from_dict(data, source=f"grid point {_describe_point(parameters)}")


def _solve_point(config: ExperimentConfig, method: str | None) -> list[dict[str, Any]]:
    """Solve a point once when its parameters are fixed, else once per evaluation seed."""
    seeds = evaluation_seeds(config.eval.seed, config.eval.episodes)
    first = solve(config, method=method, seed=seeds[0])
    if not first.get("drawn_parameters"):
        return [first]
    return [first, *(solve(config, method=method, seed=seed) for seed in seeds[1:])]


def _check_metrics(names: list[str], solution: Mapping[str, Any], env_name: str) -> list[str]:
    available = available_metrics(solution)
    if not names:
        return [name for name in available if name in METRICS] or available
    for name in names:
        metric = METRICS.get(name)
        found = (
            _extracts(metric, solution)
            if metric is not None
            else _is_number(_lookup(solution, name))
        )
        if not found:
            raise ValueError(
                f"metric {name!r} is not available for {env_name}: use one of {available}, or a "
                "dotted path into the output of 'ledgerzoo solve --json' that leads to a number"
            )
    return names


def _summarize_point(
    parameters: dict[str, Any], solutions: list[dict[str, Any]], names: Sequence[str]
) -> SweepPoint:
    per_episode = {
        name: [_metric_value(name, solution) for solution in solutions] for name in names
    }
    values = {name: float(np.mean(episode)) for name, episode in per_episode.items()}
    seeds: list[int | None] = [solution.get("seed") for solution in solutions]
    converged = all(solution.get("converged", True) for solution in solutions)
    return SweepPoint(parameters, values, seeds, per_episode, solutions, bool(converged))


def _metric_value(name: str, solution: Mapping[str, Any]) -> float:
    metric = METRICS.get(name)
    if metric is not None:
        return metric.extract(solution)
    value = _lookup(solution, name)
    # solve() writes an unbounded value as None.
    return math.nan if value is None else float(value)


def _lookup(solution: Mapping[str, Any], path: str) -> Any:
    value: Any = solution
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _extracts(metric: Metric | None, solution: Mapping[str, Any]) -> bool:
    if metric is None:
        return False
    try:
        metric.extract(solution)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _evaluator_name(name: str) -> str | None:
    metric = METRICS.get(name)
    return None if metric is None else metric.evaluator_name


def _train_points(
    result: SweepResult, point_configs: Sequence[ExperimentConfig], directory: Path
) -> None:
    """Train and evaluate every point, and record the trained values beside the equilibrium."""
    from ledgerzoo.training.train import train

    for index, (point, point_config) in enumerate(zip(result.points, point_configs, strict=True)):
        run_dir = directory / "runs" / f"{index:03d}-{_point_slug(point.parameters)}"
        logger.info(
            "training grid point %d/%d (%s) in %s",
            index + 1,
            len(result.points),
            _describe_point(point.parameters),
            run_dir,
        )
        outcome = train(point_config, run_dir, progress_bar=False, evaluate_after=True)
        assert outcome.evaluation is not None
        summaries = outcome.evaluation.metrics
        point.run_dir = run_dir
        point.evaluation = {name: summary.mean for name, summary in summaries.items()}
        for name in result.trained_metrics():
            metric = METRICS[name]
            evaluator_name = metric.evaluator_name
            if evaluator_name is None or evaluator_name not in summaries:
                continue
            scale = len(point.solutions[0]["lender_utilities"]) if metric.per_lender else 1
            summary = summaries[evaluator_name]
            point.trained[name] = {"mean": summary.mean / scale, "ci95": summary.ci95 / scale}
            _check_consistency(point, name, summaries, scale)


def _check_consistency(
    point: SweepPoint, name: str, summaries: Mapping[str, Any], scale: int
) -> None:
    """Warn when the evaluator's equilibrium value differs from the sweep's: both read the
    same solver on the same seeds, so a difference means the two saw different games."""
    # The evaluator names the equilibrium value of its metric m "equilibrium_m".
    reference = f"equilibrium_{METRICS[name].evaluator_name}"
    if reference not in summaries:
        return
    expected = point.values[name]
    measured = summaries[reference].mean / scale
    if abs(measured - expected) > CONSISTENCY_TOLERANCE * max(1.0, abs(expected)):
        logger.warning(
            "at grid point %s the evaluator's equilibrium %s is %.8g but the sweep's is %.8g",
            _describe_point(point.parameters),
            name,
            measured,
            expected,
        )


def _labels(
    grid: Mapping[str, Any], metrics: Sequence[str], given: Mapping[str, str]
) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key in grid:
        default = (
            KEY_LABELS.get(key.rsplit(".", 1)[-1], (key, None))[0] if key.count(".") == 2 else key
        )
        labels[key] = given.get(key, default)
    for name in metrics:
        metric = METRICS.get(name)
        labels[name] = given.get(name, metric.label if metric is not None else name)
    return labels


def _parse_value(text: str) -> Any:
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    if not math.isfinite(number):
        raise ConfigError(f"invalid value {text!r} in --set: give a finite number")
    return number


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe_point(parameters: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_format_value(value)}" for key, value in parameters.items())


def _point_slug(parameters: Mapping[str, Any]) -> str:
    text = "_".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in parameters.items())
    return _file_name(text)


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text)


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.6g}"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def _json_ready(value: Any) -> Any:
    """Replace nan and infinite floats, at any depth, by None, and paths by strings."""
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
