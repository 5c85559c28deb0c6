"""Tests of experiment configs: every shipped config validates, and each kind of invalid config
is a ConfigError whose message names the key and the value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import ledgerzoo
from ledgerzoo.training.config import (
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    load_config,
    save_config,
    write_atomic,
)

REPOSITORY = Path(__file__).resolve().parents[2]
SHIPPED_CONFIGS = sorted((REPOSITORY / "configs").rglob("*.yaml"))
BASE_CONFIG: dict[str, Any] = {
    "env": {
        "name": "lending_one_to_one_v0",
        "kwargs": {"n_lenders": 3, "max_rate": 0.5, "max_cycles": 10},
    },
    "train": {"seed": 0},
    "eval": {"seed": 17, "skip_rounds": 2},
}


def config_with(section: str, key: str, value: Any) -> dict[str, Any]:
    """Return a copy of BASE_CONFIG with ``section.key`` (or ``env.kwargs.key``) set."""
    data = copy.deepcopy(BASE_CONFIG)
    if section == "env.kwargs":
        data["env"]["kwargs"][key] = value
    else:
        data.setdefault(section, {})[key] = value
    return data


def test_shipped_configs_exist() -> None:
    assert SHIPPED_CONFIGS, f"no YAML config found under {REPOSITORY / 'configs'}"


@pytest.mark.parametrize(
    "path", SHIPPED_CONFIGS, ids=[str(p.relative_to(REPOSITORY)) for p in SHIPPED_CONFIGS]
)
def test_shipped_config_validates(path: Path) -> None:
    config = load_config(path)

    assert isinstance(config, ExperimentConfig)
    assert config.env.name in ledgerzoo.list_envs(), (
        f"{path}: env {config.env.name!r} is not in {ledgerzoo.list_envs()}"
    )
    assert config.eval.seed != config.train.seed, (
        f"{path}: eval.seed {config.eval.seed} equals train.seed {config.train.seed}"
    )
    env = ledgerzoo.make(config.env.name, **config.env.kwargs)
    env.reset(seed=config.eval.seed)
    env.close()


@pytest.mark.parametrize(
    "path", SHIPPED_CONFIGS, ids=[str(p.relative_to(REPOSITORY)) for p in SHIPPED_CONFIGS]
)
def test_saved_config_loads_back(path: Path, tmp_path: Path) -> None:
    config = load_config(path)
    save_config(config, tmp_path / "config.yaml")

    again = load_config(tmp_path / "config.yaml")

    assert again.to_dict() == config.to_dict(), f"{again.to_dict()} != {config.to_dict()}"


def test_base_config_is_valid() -> None:
    # The invalid cases below each change one value of this config.
    config = config_from_dict(copy.deepcopy(BASE_CONFIG))

    assert config.env.kwargs["n_lenders"] == 3


# (case id, config data, fragments that the error message must contain)
INVALID_CASES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("unknown top-level key", {**BASE_CONFIG, "trian": {}}, ("'trian'", "env", "train")),
    ("unknown train key", config_with("train", "n_step", 8), ("train", "'n_step'")),
    ("unknown eval key", config_with("eval", "episode", 3), ("eval", "'episode'")),
    ("unknown env kwarg", config_with("env.kwargs", "n_lender", 3), ("'n_lender'", "n_lenders")),
    ("min_rate above max_rate", config_with("env.kwargs", "min_rate", 0.6), ("min_rate", "0.6")),
    (
        "min_rate range above max_rate",
        config_with("env.kwargs", "min_rate", {"low": 0.02, "high": 0.7}),
        ("min_rate", "0.7"),
    ),
    ("negative willingness", config_with("env.kwargs", "willingness", -1.0), ("willingness", "-1")),
    (
        "negative willingness range",
        config_with("env.kwargs", "willingness", {"low": -2.0, "high": 3.0}),
        ("willingness", "-2"),
    ),
    ("n_steps not an integer", config_with("train", "n_steps", "ten"), ("train.n_steps", "'ten'")),
    ("total_timesteps a float", config_with("train", "total_timesteps", 1.5), ("1.5",)),
    (
        "deterministic not a boolean",
        config_with("eval", "deterministic", "yes"),
        ("eval.deterministic", "'yes'"),
    ),
    ("net_arch not a list", config_with("train", "net_arch", 64), ("train.net_arch", "64")),
    ("zero batch size", config_with("train", "batch_size", 0), ("train.batch_size", "0")),
    ("gamma above one", config_with("train", "gamma", 1.5), ("train.gamma", "1.5")),
    ("unknown algorithm", config_with("train", "algorithm", "DQN"), ("'DQN'", "PPO")),
    ("eval seed equals train seed", config_with("eval", "seed", 0), ("eval.seed", "train.seed")),
    (
        "skip_rounds equals max_cycles",
        config_with("eval", "skip_rounds", 10),
        ("skip_rounds", "10"),
    ),
    ("skip_rounds above max_cycles", config_with("eval", "skip_rounds", 12), ("skip_rounds", "12")),
    (
        "skip_rounds above default max_cycles",
        {
            "env": {"name": "lending_one_to_one_v0"},
            "train": {"seed": 0},
            "eval": {"seed": 1, "skip_rounds": 1000},
        },
        ("skip_rounds", "1000"),
    ),
    ("missing env section", {"train": {"seed": 0}}, ("env",)),
    ("missing env name", {"env": {"kwargs": {}}}, ("'name'",)),
    ("not a mapping", ["env", "train"], ("mapping",)),
    ("train section not a mapping", {**BASE_CONFIG, "train": [1, 2]}, ("train", "[1, 2]")),
]


@pytest.mark.parametrize(
    ("data", "fragments"),
    [pytest.param(data, fragments, id=case) for case, data, fragments in INVALID_CASES],
)
def test_invalid_config_names_problem(data: Any, fragments: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message {message!r}"


def test_unknown_env_lists_registered() -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["env"] = {"name": "lending_one_to_one_v9"}

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    message = str(caught.value)
    assert "'lending_one_to_one_v9'" in message, message
    for name in ledgerzoo.list_envs():
        assert name in message, f"registered env {name!r} missing from the message {message!r}"


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert "not found" in message, message
    assert str(path) in message, f"{str(path)!r} missing from the message {message!r}"


def test_invalid_yaml_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("env: [unclosed\n  name: x\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert "not valid YAML" in message, message
    assert str(path) in message, f"{str(path)!r} missing from the message {message!r}"
    assert "line 2" in message, f"the location is missing from the message {message!r}"
    assert "\n" not in message, f"the message spans several lines: {message!r}"


def test_empty_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")

    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_config_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(BASE_CONFIG))

    config = load_config(path)

    assert config.env.kwargs == BASE_CONFIG["env"]["kwargs"], (
        f"{config.env.kwargs} != {BASE_CONFIG['env']['kwargs']}"
    )
    assert config.eval.skip_rounds == 2, config.eval.skip_rounds
    assert config.train.algorithm == "PPO", config.train.algorithm


def test_integer_accepted_as_float() -> None:
    config = config_from_dict(config_with("train", "learning_rate", 1))

    assert isinstance(config.train.learning_rate, float), type(config.train.learning_rate)
    assert config.train.learning_rate == 1.0, config.train.learning_rate


def test_atomic_write_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "out.txt"

    write_atomic(path, "first\n")
    write_atomic(path, "second\n")

    assert path.read_text() == "second\n", repr(path.read_text())
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"], sorted(
        p.name for p in path.parent.iterdir()
    )


def test_failed_atomic_write_keeps_old(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    write_atomic(path, "kept\n")

    with pytest.raises(TypeError):
        write_atomic(path, 12345)  # type: ignore[arg-type]

    assert path.read_text() == "kept\n", repr(path.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"], sorted(
        p.name for p in tmp_path.iterdir()
    )
