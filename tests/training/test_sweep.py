"""Tests of parameter sweeps: values against solve() and the closed form, the behaviour the
shipped sweep configs must show, the written files, training at grid points, and the errors
of bad grids."""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from ledgerzoo.training.config import ConfigError, config_from_dict, load_config
from ledgerzoo.training.evaluate import evaluate_config, evaluation_seeds
from ledgerzoo.training.solve import solve
from ledgerzoo.training.sweep import (
    METRICS,
    available_metrics,
    parse_assignment,
    resolve_grid,
    sweep,
)

REPOSITORY = Path(__file__).resolve().parents[2]
ONE_TO_ONE_SWEEP = REPOSITORY / "configs" / "sweeps" / "one_to_one_rate.yaml"
ONE_TO_MANY_SWEEP = REPOSITORY / "configs" / "sweeps" / "one_to_many_borrower_utility.yaml"
N_KEY = "env.kwargs.n_lenders"
RATE_KEY = "env.kwargs.min_rate"
# Identical lenders: the equilibrium rate is r_min (2N - 1) / (N - 1) below the cap.
IDENTICAL_LENDERS: dict[str, Any] = {
    "env": {
        "name": "lending_one_to_one_v0",
        "kwargs": {"n_lenders": 3, "willingness": 2.0, "min_rate": 0.05, "max_rate": 0.5},
    },
    "train": {"seed": 0},
    "eval": {"seed": 17, "episodes": 3, "skip_rounds": 2},
}
TINY_TRAINING: dict[str, Any] = {
    "env": {
        "name": "lending_one_to_one_v0",
        "kwargs": {"n_lenders": 2, "willingness": 1.0, "min_rate": 0.05, "max_cycles": 8},
    },
    "train": {
        "total_timesteps": 1000,
        "num_instances": 8,
        "n_steps": 16,
        "batch_size": 128,
        "n_epochs": 2,
        "checkpoint_every": 0,
        "net_arch": [16, 16],
    },
    "eval": {"episodes": 2, "seed": 17, "skip_rounds": 2},
}


def identical_lenders(**kwargs: Any) -> Any:
    data = copy.deepcopy(IDENTICAL_LENDERS)
    data["env"]["kwargs"].update(kwargs)
    return config_from_dict(data)


def point_config(data: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """Build the config of one grid point by hand, independently of the sweep's code."""
    data = copy.deepcopy(data)
    for key, value in parameters.items():
        section, *rest = key.split(".")
        if section == "env":
            data["env"]["kwargs"][rest[-1]] = value
        else:
            data[section][rest[0]] = value
    return config_from_dict(data)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def values_by(result: Any, metric: str) -> dict[tuple[Any, ...], float]:
    """Map each point's grid values (in grid order) to a metric's value."""
    return {tuple(p.parameters.values()): p.values[metric] for p in result.points}


# ---------------------------------------------------------------------------------- values


def test_tiny_grid_matches_closed_form() -> None:
    result = sweep(identical_lenders(), {N_KEY: [2, 3], RATE_KEY: [0.02, 0.05]})

    assert len(result.points) == 4, len(result.points)
    assert result.exact, [p.seeds for p in result.points]
    for point in result.points:
        n, min_rate = point.parameters[N_KEY], point.parameters[RATE_KEY]
        rate = min_rate * (2 * n - 1) / (n - 1)
        assert point.values["optimal_lender_rate"] == pytest.approx(rate, rel=1e-9), point
        # phi = d (1 - r_min / r) = d N / (2N - 1) with d = 2.
        profit = 2.0 * n / (2 * n - 1)
        assert point.values["optimal_lender_profit"] == pytest.approx(profit, rel=1e-9), point
        assert point.converged, point


def test_rows_follow_grid_order() -> None:
    result = sweep(identical_lenders(), {N_KEY: [2, 3], RATE_KEY: [0.02, 0.05, 0.1]})

    order = [tuple(p.parameters.values()) for p in result.points]

    assert order == [(n, r) for n in (2, 3) for r in (0.02, 0.05, 0.1)], order


def test_csv_matches_solve(tmp_path: Path) -> None:
    grid = {N_KEY: [2, 4], RATE_KEY: [0.03, 0.2]}
    sweep(identical_lenders(), grid, out_dir=tmp_path / "out")

    rows = read_csv(tmp_path / "out" / "sweep.csv")

    assert len(rows) == 4, rows
    for row in rows:
        parameters = {N_KEY: int(row[N_KEY]), RATE_KEY: float(row[RATE_KEY])}
        solution = solve(point_config(IDENTICAL_LENDERS, parameters))
        lender = solution["optimal_lender"]
        expected = {
            "optimal_lender_rate": solution["rates"][lender],
            "optimal_lender_utility": solution["lender_utilities"][lender],
            "mean_rate": float(np.mean(solution["rates"])),
            "mean_lender_utility": float(np.mean(solution["lender_utilities"])),
            "borrower_utility": solution["borrower_utility"],
            "welfare": solution["welfare"],
        }
        for metric, value in expected.items():
            assert float(row[metric]) == pytest.approx(value, rel=1e-12), (row, metric, value)
        assert row["episodes"] == "1", row
        assert row["converged"] == "True", row


def test_drawn_parameters_mean_over_eval_seeds() -> None:
    config = identical_lenders(willingness={"low": 1.0, "high": 5.0})
    seeds = evaluation_seeds(config.eval.seed, config.eval.episodes)

    result = sweep(config, {RATE_KEY: [0.04]}, metrics=["borrower_utility", "mean_rate"])

    point = result.points[0]
    assert point.seeds == seeds, (point.seeds, seeds)
    assert not result.exact
    assert "mean of 3" in result.description(), result.description()
    by_hand = point_config(
        IDENTICAL_LENDERS, {"env.kwargs.willingness": {"low": 1.0, "high": 5.0}, RATE_KEY: 0.04}
    )
    expected = np.mean([solve(by_hand, seed=seed)["borrower_utility"] for seed in seeds])
    assert point.values["borrower_utility"] == pytest.approx(expected, rel=1e-12)
    # The evaluator reads its equilibrium from the env on the same seeds: the same numbers.
    evaluation = evaluate_config(by_hand, "equilibrium")
    reference = evaluation.metrics["equilibrium_borrower_utility"].mean
    assert point.values["borrower_utility"] == pytest.approx(reference, rel=1e-9)
    reference_rate = evaluation.metrics["equilibrium_mean_rate"].mean
    assert point.values["mean_rate"] == pytest.approx(reference_rate, rel=1e-9)


def test_default_metrics_for_one_to_one() -> None:
    result = sweep(identical_lenders(), {N_KEY: [2]})

    assert result.metrics == [
        "optimal_lender_rate",
        "optimal_lender_profit",
        "optimal_lender_utility",
        "mean_rate",
        "mean_lender_utility",
        "borrower_utility",
        "welfare",
    ], result.metrics


def test_metric_as_path_into_solve_output() -> None:
    result = sweep(identical_lenders(), {N_KEY: [2, 3]}, metrics=["game.max_rate", "welfare"])

    assert [p.values["game.max_rate"] for p in result.points] == [0.5, 0.5]


def test_unknown_metric_lists_available() -> None:
    with pytest.raises(ValueError) as caught:
        sweep(identical_lenders(), {N_KEY: [2]}, metrics=["total_investment"])

    message = str(caught.value)
    assert "'total_investment'" in message, message
    assert "optimal_lender_rate" in message, message


def test_available_metrics_of_one_to_many() -> None:
    config = config_from_dict(
        {
            "env": {"name": "lending_one_to_many_v0", "kwargs": {"n_lenders": 2}},
            "train": {"seed": 0},
            "eval": {"seed": 1},
        }
    )

    names = available_metrics(solve(config))

    for name in ("mean_rate", "total_investment", "borrower_utility", "welfare"):
        assert name in names, names
    assert "optimal_lender_rate" not in names, names


# ------------------------------------------------------------------- shipped sweep configs


def test_one_to_one_rate_config_behaviour() -> None:
    config = load_config(ONE_TO_ONE_SWEEP)

    result = sweep(config)

    max_rate = config.env.kwargs["max_rate"]
    rates = values_by(result, "optimal_lender_rate")
    profits = values_by(result, "optimal_lender_profit")
    counts, min_rates = config.sweep.grid[N_KEY], config.sweep.grid[RATE_KEY]
    assert counts == [2, 5, 10, 20], counts
    for min_rate in min_rates:
        for fewer, more in itertools.pairwise(counts):
            before, after = rates[(fewer, min_rate)], rates[(more, min_rate)]
            # One more competitor lowers the rate, strictly unless both sit at the cap.
            assert after <= before + 1e-12, (min_rate, fewer, more, before, after)
            if before < max_rate - 1e-9:
                assert after < before, (min_rate, fewer, more, before, after)
            assert profits[(more, min_rate)] <= profits[(fewer, min_rate)] + 1e-12, min_rate
    for n in counts:
        for low, high in itertools.pairwise(min_rates):
            assert rates[(n, high)] >= rates[(n, low)] - 1e-12, (n, low, high)
        for min_rate in min_rates:
            interior = min_rate * (2 * n - 1) / (n - 1)
            expected = min(interior, max_rate)
            assert rates[(n, min_rate)] == pytest.approx(expected, rel=1e-9), (n, min_rate)


@pytest.mark.slow
def test_one_to_many_config_behaviour() -> None:
    config = load_config(ONE_TO_MANY_SWEEP)

    result = sweep(config)

    check_one_to_many(result, config.sweep.grid[N_KEY])


def test_one_to_many_small_grid_behaviour() -> None:
    # The shipped config with two lender counts and three episodes, to run in seconds.
    config = load_config(ONE_TO_MANY_SWEEP)
    config.eval.episodes = 3

    result = sweep(config, resolve_grid(config, [f"{N_KEY}=2,3"]))

    assert not result.exact
    check_one_to_many(result, [2, 3])


def check_one_to_many(result: Any, counts: list[int]) -> None:
    """More lenders raise the borrower's utility under both pricing rules, and differentiated
    pricing is never worse for the borrower than uniform pricing."""
    utilities = values_by(result, "borrower_utility")
    for pricing in ("uniform", "differentiated"):
        for fewer, more in itertools.pairwise(counts):
            before, after = utilities[(pricing, fewer)], utilities[(pricing, more)]
            assert after > before, (pricing, fewer, more, before, after)
    for n in counts:
        uniform, differentiated = utilities[("uniform", n)], utilities[("differentiated", n)]
        assert differentiated >= uniform - 1e-9 * abs(uniform), (n, uniform, differentiated)
    by_point = {tuple(p.parameters.values()): p for p in result.points}
    for n in counts:
        uniform, differentiated = by_point[("uniform", n)], by_point[("differentiated", n)]
        # Both rules see the same drawn episodes, so the comparison applies episode by episode.
        assert uniform.seeds == differentiated.seeds, (uniform.seeds, differentiated.seeds)
        for low, high in zip(
            uniform.per_episode["borrower_utility"],
            differentiated.per_episode["borrower_utility"],
            strict=True,
        ):
            assert high >= low - 1e-9 * abs(low), (n, low, high)


# ----------------------------------------------------------------------------------- files


def test_writes_csv_json_and_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    metrics = ["optimal_lender_rate", "borrower_utility"]

    result = sweep(
        identical_lenders(), {N_KEY: [2, 3], RATE_KEY: [0.05]}, metrics=metrics, out_dir=out
    )

    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "borrower_utility.png",
        "optimal_lender_rate.png",
        "sweep.csv",
        "sweep.json",
    ], names
    for metric in metrics:
        image = matplotlib.image.imread(out / f"{metric}.png")
        assert image.shape[0] > 500, image.shape
        assert image.shape[1] > 800, image.shape
    umask = os.umask(0)
    os.umask(umask)
    for name in names:
        # Temporary files are private to their owner; the renamed files get the usual mode.
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))
    data = json.loads((out / "sweep.json").read_text())
    assert data["grid"] == {N_KEY: [2, 3], RATE_KEY: [0.05]}, data["grid"]
    assert data["config"]["env"]["name"] == "lending_one_to_one_v0", data["config"]
    assert data["config"]["sweep"]["grid"] == data["grid"], data["config"]["sweep"]
    assert data["equilibrium"] == "exact equilibrium", data["equilibrium"]
    for entry, point in zip(data["points"], result.points, strict=True):
        assert entry["values"] == point.values, (entry["values"], point.values)
        assert entry["solutions"][0]["rates"] == point.solutions[0]["rates"]


def test_written_config_sweeps_again(tmp_path: Path) -> None:
    # sweep.json's config is a valid config with a sweep section that reproduces the values.
    first = sweep(
        identical_lenders(), {N_KEY: [2, 3]}, metrics=["mean_rate"], out_dir=tmp_path / "a"
    )
    data = json.loads((tmp_path / "a" / "sweep.json").read_text())

    again = sweep(config_from_dict(data["config"]))

    assert [p.values for p in again.points] == [p.values for p in first.points]


def test_existing_sweep_directory_rejected(tmp_path: Path) -> None:
    sweep(identical_lenders(), {N_KEY: [2]}, metrics=["mean_rate"], out_dir=tmp_path)

    with pytest.raises(FileExistsError, match="already contains a sweep"):
        sweep(identical_lenders(), {N_KEY: [3]}, metrics=["mean_rate"], out_dir=tmp_path)


def test_choice_axis_plotted_as_categories(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "env": {
                "name": "lending_one_to_many_v0",
                "kwargs": {
                    "n_lenders": 2,
                    "min_rate": [0.01, 0.04],
                    "max_investment": 20.0,
                    "reward": 5.0,
                },
            },
            "train": {"seed": 0},
            "eval": {"seed": 1},
        }
    )

    result = sweep(
        config,
        {"env.kwargs.pricing": ["uniform", "differentiated"]},
        metrics=["borrower_utility"],
        out_dir=tmp_path,
    )

    assert result.exact, [p.seeds for p in result.points]
    assert result.x == "env.kwargs.pricing", result.x
    assert result.curve is None, result.curve
    assert (tmp_path / "borrower_utility.png").is_file()
    uniform, differentiated = (p.values["borrower_utility"] for p in result.points)
    assert differentiated >= uniform - 1e-9 * abs(uniform), (uniform, differentiated)


def test_plot_keys_default_and_override() -> None:
    grid = {N_KEY: [2, 3], RATE_KEY: [0.05, 0.1]}

    default = sweep(identical_lenders(), grid, metrics=["mean_rate"])
    swapped = sweep(identical_lenders(), grid, metrics=["mean_rate"], x=RATE_KEY)

    assert (default.x, default.curve) == (N_KEY, RATE_KEY), (default.x, default.curve)
    assert (swapped.x, swapped.curve) == (RATE_KEY, N_KEY), (swapped.x, swapped.curve)
    series = swapped.series("mean_rate")
    assert [s.label for s in series] == ["$N$ = 2", "$N$ = 3"], [s.label for s in series]
    assert series[0].x == [0.05, 0.1], series[0].x


# -------------------------------------------------------------------------------- training


def test_train_tiny_grid(tmp_path: Path) -> None:
    config = config_from_dict(copy.deepcopy(TINY_TRAINING))
    metrics = [
        "optimal_lender_rate",
        "optimal_lender_profit",
        "mean_rate",
        "mean_lender_utility",
        "borrower_utility",
    ]
    trained = [name for name in metrics if name != "optimal_lender_profit"]

    result = sweep(config, {RATE_KEY: [0.05, 0.1]}, metrics=metrics, train=True, out_dir=tmp_path)

    assert result.trained_metrics() == trained, result.trained_metrics()
    rows = read_csv(tmp_path / "sweep.csv")
    assert "optimal_lender_profit_trained" not in rows[0], list(rows[0])
    for row, point in zip(rows, result.points, strict=True):
        for metric in trained:
            assert math.isfinite(float(row[f"{metric}_trained"])), row
        assert point.run_dir is not None and (point.run_dir / "model.zip").is_file(), point
        assert point.evaluation is not None
        # The evaluator's own equilibrium agrees with the sweep's at the point.
        reference = point.evaluation["equilibrium_mean_rate"]
        assert reference == pytest.approx(point.values["mean_rate"], rel=1e-6), point
        optimal = point.evaluation["equilibrium_optimal_lender_rate"]
        assert optimal == pytest.approx(point.values["optimal_lender_rate"], rel=1e-6), point
        per_lender = point.evaluation["equilibrium_utility/lender"] / 2
        assert per_lender == pytest.approx(point.values["mean_lender_utility"], rel=1e-6)
    assert (tmp_path / "mean_rate.png").is_file()


def test_total_timesteps_needs_train() -> None:
    with pytest.raises(ValueError, match="only with training"):
        sweep(identical_lenders(), {N_KEY: [2]}, total_timesteps=100)


# ------------------------------------------------------------------------------ bad input

# (case id, grid, fragments that the error message must contain)
INVALID_GRIDS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("unknown env argument", {"env.kwargs.n_lender": [2]}, ("'env.kwargs.n_lender'", "n_lenders")),
    ("int beyond float range", {"env.kwargs.n_lenders": [10**400]}, ("401 digits", "finite")),
    ("unknown section", {"model.size": [1]}, ("'model.size'", "env.kwargs.")),
    ("env name", {"env.name": ["x"]}, ("'env.name'", "env.kwargs")),
    ("whole kwargs", {"env.kwargs": [1]}, ("'env.kwargs'",)),
    ("unknown train key", {"train.n_step": [8]}, ("'train.n_step'", "train.n_steps")),
    ("list setting", {"train.net_arch": [64]}, ("train.net_arch", "not a number or a choice")),
    ("key inside a number", {"env.kwargs.max_rate.low": [0.1]}, ("env.kwargs.max_rate", "0.5")),
    (
        "key inside an unset argument",
        {"env.kwargs.max_loan.low": [1.0]},
        ("env.kwargs.max_loan", "'low'"),
    ),
    ("text for a number", {N_KEY: ["two"]}, (N_KEY, "'two'", "not a number")),
    ("number for a choice", {"env.kwargs.followers": [1]}, ("env.kwargs.followers", "1")),
    ("text for a boolean", {"eval.deterministic": ["yes"]}, ("eval.deterministic", "'yes'")),
    (
        "three keys",
        {N_KEY: [2], RATE_KEY: [0.05], "env.kwargs.max_rate": [0.5]},
        ("one or two", "3"),
    ),
    ("empty list", {N_KEY: []}, (N_KEY, "non-empty")),
    ("repeated value", {N_KEY: [2, 3, 2]}, (N_KEY, "twice")),
    ("mixed kinds", {N_KEY: [2, "x"]}, (N_KEY, "mix")),
    ("not finite", {RATE_KEY: [math.nan]}, (RATE_KEY, "finite")),
    ("mapping value", {RATE_KEY: [{"low": 0.01}]}, (RATE_KEY, "{'low': 0.01}")),
    (
        "out of range at a point",
        {RATE_KEY: [0.05, 0.6]},
        ("grid point env.kwargs.min_rate=0.6", "min_rate", "0.6"),
    ),
    (
        "non-integer lender count",
        {N_KEY: [2, 2.5]},
        ("grid point env.kwargs.n_lenders=2.5", "n_lenders"),
    ),
    ("float for an integer", {"train.n_steps": [8, 1.5]}, ("grid point train.n_steps=1.5", "1.5")),
    ("unknown choice", {"env.kwargs.followers": ["leaned"]}, ("followers", "'leaned'")),
]


@pytest.mark.parametrize(
    ("grid", "fragments"),
    [pytest.param(grid, fragments, id=case) for case, grid, fragments in INVALID_GRIDS],
)
def test_invalid_grid_names_problem(grid: dict[str, Any], fragments: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        sweep(identical_lenders(), grid)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message {message!r}"
    assert "\n" not in message, message


def test_no_grid_names_fix() -> None:
    with pytest.raises(ConfigError, match="--set KEY=V1,V2"):
        sweep(identical_lenders())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env.kwargs.n_lenders=2,5,10", (N_KEY, [2, 5, 10])),
        ("a.b.c=1, 2.5 ,1e-3,-4", ("a.b.c", [1, 2.5, 0.001, -4])),
        (
            "env.kwargs.pricing=uniform,differentiated",
            ("env.kwargs.pricing", ["uniform", "differentiated"]),
        ),
        ("eval.deterministic=true,False", ("eval.deterministic", [True, False])),
    ],
)
def test_parse_assignment(text: str, expected: tuple[str, list[Any]]) -> None:
    key, values = parse_assignment(text)

    assert (key, values) == expected, (key, values)
    assert [type(v) for v in values] == [type(v) for v in expected[1]], values


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("env.kwargs.n_lenders", ("'env.kwargs.n_lenders'", "KEY=V1,V2")),
        ("=2,3", ("'=2,3'", "KEY=V1,V2")),
        ("env.kwargs.n_lenders=", ("empty value list", "env.kwargs.n_lenders=1,2,3")),
        ("env.kwargs.n_lenders= ", ("empty value list",)),
        ("env.kwargs.n_lenders=2,,3", ("empty value", "extra comma")),
        ("env.kwargs.min_rate=0.1,inf", ("'inf'", "finite")),
    ],
)
def test_invalid_assignment_names_fix(text: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_assignment(text)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message {message!r}"


def test_set_overrides_config_grid_values() -> None:
    config = load_config(ONE_TO_ONE_SWEEP)

    grid = resolve_grid(config, [f"{N_KEY}=3,4"])

    assert grid[N_KEY] == [3, 4], grid
    assert grid[RATE_KEY] == config.sweep.grid[RATE_KEY], grid


def test_set_new_key_replaces_config_grid() -> None:
    config = load_config(ONE_TO_ONE_SWEEP)

    grid = resolve_grid(config, ["env.kwargs.max_rate=0.4,0.5", f"{N_KEY}=2"])

    assert grid == {"env.kwargs.max_rate": [0.4, 0.5], N_KEY: [2]}, grid


@pytest.mark.parametrize(
    ("assignments", "fragments"),
    [
        ([f"{N_KEY}=2", f"{N_KEY}=3"], ("given twice",)),
        (["a.b=1", "c.d=2", "e.f=3"], ("one or two keys", "3")),
        ([f"{N_KEY}=2,2"], ("twice",)),
    ],
)
def test_invalid_set_combination(assignments: list[str], fragments: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_grid(load_config(ONE_TO_ONE_SWEEP), assignments)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message {message!r}"


def test_no_sweep_section_needs_set() -> None:
    with pytest.raises(ConfigError, match="no sweep section"):
        resolve_grid(identical_lenders(), [])


# (case id, sweep section, fragments that the error message must contain)
INVALID_SECTIONS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("not a mapping", [1, 2], ("sweep", "mapping")),
    ("missing grid", {"metrics": ["mean_rate"]}, ("'grid'",)),
    ("unknown key", {"grid": {N_KEY: [2]}, "metric": ["x"]}, ("'metric'", "metrics")),
    ("empty grid", {"grid": {}}, ("sweep.grid", "one or two")),
    ("grid list empty", {"grid": {N_KEY: []}}, (N_KEY, "non-empty")),
    ("three keys", {"grid": {"a.b": [1], "c.d": [1], "e.f": [1]}}, ("one or two keys",)),
    ("plot key not in grid", {"grid": {N_KEY: [2]}, "plot": {"x": RATE_KEY}}, ("plot.x", RATE_KEY)),
    (
        "same plot keys",
        {"grid": {N_KEY: [2], RATE_KEY: [0.1]}, "plot": {"x": N_KEY, "curve": N_KEY}},
        ("x and curve",),
    ),
    ("metrics not a list", {"grid": {N_KEY: [2]}, "metrics": "mean_rate"}, ("sweep.metrics",)),
    ("repeated metric", {"grid": {N_KEY: [2]}, "metrics": ["a", "a"]}, ("'a'", "twice")),
    ("bad name", {"grid": {N_KEY: [2]}, "name": "a/b"}, ("sweep.name", "'a/b'")),
    ("labels not strings", {"grid": {N_KEY: [2]}, "labels": {N_KEY: 3}}, ("sweep.labels",)),
]


@pytest.mark.parametrize(
    ("section", "fragments"),
    [pytest.param(section, fragments, id=case) for case, section, fragments in INVALID_SECTIONS],
)
def test_invalid_sweep_section_names_problem(section: Any, fragments: tuple[str, ...]) -> None:
    data = {**copy.deepcopy(IDENTICAL_LENDERS), "sweep": section}

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message {message!r}"


def test_config_without_sweep_has_no_sweep_key() -> None:
    # Run directories save config.to_dict(), so a plain config's config.yaml stays unchanged.
    assert "sweep" not in identical_lenders().to_dict()


def test_metric_labels_name_units() -> None:
    for name, metric in METRICS.items():
        assert "(" in metric.label or name == "price_of_anarchy", (name, metric.label)
