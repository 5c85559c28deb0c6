"""Random experiment configs: every section, unknown keys, wrong types and infeasible values.

``config_from_dict`` must accept every config built from valid values, and reject every config
with one bad value by a ConfigError whose message names the key (``train.n_steps``) and the
value. The fields of the train and eval sections are enumerated from their dataclasses, so a
new field without a valid-value strategy here fails ``test_every_field_has_a_strategy``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledgerzoo
from ledgerzoo.envs.core.params import describe_value
from ledgerzoo.training.config import (
    ConfigError,
    EvalConfig,
    ExperimentConfig,
    TrainConfig,
    config_from_dict,
)
from tests.hardening.arguments import Invalid, market_arguments
from tests.hardening.fuzzing import FUZZ_SETTINGS

BASE_CONFIG: dict[str, Any] = {
    "env": {"name": "lending_one_to_one_v0", "kwargs": {"n_lenders": 2, "max_cycles": 10}},
    "train": {"seed": 0},
    "eval": {"seed": 17, "skip_rounds": 2},
}
MAX_CYCLES = 10

SECTIONS = {"train": TrainConfig, "eval": EvalConfig}

#: Valid values of every field of the train and eval sections.
VALID_VALUES: dict[str, dict[str, st.SearchStrategy]] = {
    "train": {
        "algorithm": st.sampled_from(["PPO", "A2C", "RecurrentPPO", "MaskablePPO"]),
        "total_timesteps": st.integers(1, 10**9),
        "num_instances": st.integers(1, 512),
        "seed": st.integers(0, 2**32 - 1),
        "n_steps": st.integers(1, 4096),
        "batch_size": st.integers(1, 10**5),
        "n_epochs": st.integers(1, 50),
        "learning_rate": st.one_of(st.floats(1e-8, 1.0), st.integers(1, 1)),
        "learning_rate_schedule": st.sampled_from(["constant", "linear"]),
        "gamma": st.floats(0.0, 1.0),
        "gae_lambda": st.floats(0.0, 1.0),
        "clip_range": st.floats(0.01, 1.0),
        "ent_coef": st.floats(0.0, 1.0),
        "vf_coef": st.floats(0.0, 10.0),
        "max_grad_norm": st.floats(0.01, 100.0),
        "log_std_init": st.floats(-10.0, 2.0),
        "net_arch": st.lists(st.integers(1, 512), min_size=1, max_size=3),
        "alternate_rollouts": st.integers(1, 10),
        "reference_metrics": st.booleans(),
        "checkpoint_every": st.integers(0, 10**7),
        "keep_checkpoints": st.integers(1, 10),
        "torch_threads": st.integers(0, 8),
        "device": st.sampled_from(["cpu", "cuda", "auto"]),
    },
    "eval": {
        "episodes": st.integers(1, 100),
        "seed": st.integers(0, 2**32 - 1),
        "skip_rounds": st.integers(0, MAX_CYCLES - 1),
        "deterministic": st.booleans(),
    },
}

#: Values that config.py rejects: (section, field, value).
INFEASIBLE_VALUES: list[tuple[str, str, Any]] = [
    *(
        ("train", field, value)
        for field in (
            "total_timesteps",
            "num_instances",
            "n_steps",
            "batch_size",
            "n_epochs",
            "keep_checkpoints",
            "alternate_rollouts",
        )
        for value in (0, -1)
    ),
    ("eval", "episodes", 0),
    ("eval", "episodes", -3),
    ("train", "learning_rate", 0.0),
    ("train", "learning_rate", -1e-3),
    *(
        ("train", field, value)
        for field in ("gamma", "gae_lambda")
        for value in (-0.1, 1.5, math.nan, math.inf)
    ),
    ("train", "checkpoint_every", -1),
    ("train", "torch_threads", -1),
    ("train", "ent_coef", -0.01),
    ("eval", "skip_rounds", -1),
    ("eval", "skip_rounds", MAX_CYCLES),
    ("train", "net_arch", []),
    ("train", "net_arch", [0]),
    ("train", "net_arch", [64, -1]),
    ("train", "algorithm", "DQN"),
    ("train", "algorithm", "ppo"),
    ("train", "learning_rate_schedule", "cosine"),
]

#: Values of the right type that training cannot use (NaN, infinite, negative seeds, unknown
#: devices): (section, field, value).
UNTRAINABLE_VALUES: list[tuple[str, str, Any]] = [
    ("train", "learning_rate", math.nan),
    ("train", "learning_rate", math.inf),
    ("train", "clip_range", 0.0),
    ("train", "clip_range", -0.2),
    ("train", "clip_range", math.nan),
    ("train", "ent_coef", math.nan),
    ("train", "ent_coef", math.inf),
    ("train", "vf_coef", -1.0),
    ("train", "vf_coef", math.nan),
    ("train", "max_grad_norm", 0.0),
    ("train", "max_grad_norm", -1.0),
    ("train", "max_grad_norm", math.nan),
    ("train", "log_std_init", math.nan),
    ("train", "log_std_init", math.inf),
    ("train", "seed", -1),
    ("eval", "seed", -1),
    ("train", "device", "tpu"),
    ("train", "seed", 2**32),
    ("eval", "seed", 10**400),
]


def wrong_types(annotation: Any) -> list[Any]:
    """Values of the wrong type for a field annotated ``annotation``."""
    if annotation is bool:
        return ["true", 1, 0.0, None, [True]]
    if annotation is int:
        return ["3", 2.5, True, None, [1], {"value": 1}]
    if annotation is float:
        return ["0.1", True, None, [0.1], {"value": 0.1}]
    if annotation is str:
        return [3, None, True, ["PPO"], {"name": "PPO"}]
    if getattr(annotation, "__origin__", None) is list:
        return [64, "64", None, [64.0], [True], ["64"], {"layers": 64}]
    raise NotImplementedError(f"no wrong values for the annotation {annotation}")


def value_texts(value: Any) -> set[str]:
    """Ways a message may show a value: its repr, or the repr of one of its items."""
    texts = {repr(value), str(value), describe_value(value)}
    if isinstance(value, (list, tuple)):
        texts |= {repr(item) for item in value}
    if isinstance(value, dict):
        texts |= {repr(item) for item in value.values()}
    return texts


def config_with(section: str, field: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    data.setdefault(section, {})[field] = value
    return data


def assert_names(data: dict[str, Any], key: str, value: Any) -> str:
    """Validate ``data``, and check that the ConfigError names the key and the value."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    message = str(caught.value)
    assert key in message, f"{key}={value!r}: the error does not name {key!r}: {message}"
    assert any(text in message for text in value_texts(value)), (
        f"{key}={value!r}: the error does not show the value: {message}"
    )
    return message


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_field_has_a_strategy(section: str) -> None:
    fields = {field.name for field in dataclasses.fields(SECTIONS[section])}

    missing = sorted(fields - set(VALID_VALUES[section]))

    assert not missing, f"{section}: no valid-value strategy for the fields {missing}"


@settings(FUZZ_SETTINGS, max_examples=50)
@given(data=st.data())
def test_valid_values_validate(data: Any) -> None:
    config = copy.deepcopy(BASE_CONFIG)
    for section, strategies in VALID_VALUES.items():
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(strategies)), unique=True), label=section
        )
        for field in chosen:
            config[section][field] = data.draw(strategies[field], label=f"{section}.{field}")
    if config["eval"]["seed"] == config["train"]["seed"]:
        config["eval"]["seed"] = config["train"]["seed"] + 1

    validated = config_from_dict(config)

    again = config_from_dict(validated.to_dict())
    assert again.to_dict() == validated.to_dict(), f"{config}: the config does not round-trip"


@settings(FUZZ_SETTINGS, max_examples=50)
@given(data=st.data())
def test_wrong_type_names_key_and_value(data: Any) -> None:
    section = data.draw(st.sampled_from(sorted(SECTIONS)), label="section")
    hints = get_type_hints(SECTIONS[section])
    field = data.draw(st.sampled_from(sorted(hints)), label="field")
    value = data.draw(st.sampled_from(wrong_types(hints[field])), label="value")

    assert_names(config_with(section, field, value), f"{section}.{field}", value)


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [pytest.param(*case, id=f"{case[0]}.{case[1]}={case[2]!r}") for case in INFEASIBLE_VALUES],
)
def test_infeasible_value_names_key_and_value(section: str, field: str, value: Any) -> None:
    assert_names(config_with(section, field, value), f"{section}.{field}", value)


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [pytest.param(*case, id=f"{case[0]}.{case[1]}={case[2]!r}") for case in UNTRAINABLE_VALUES],
)
def test_untrainable_value_rejected(section: str, field: str, value: Any) -> None:
    assert_names(config_with(section, field, value), f"{section}.{field}", value)


@settings(FUZZ_SETTINGS, max_examples=50)
@given(
    section=st.sampled_from(["", "env", "train", "eval"]),
    key=st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True),
)
def test_unknown_key_named(section: str, key: str) -> None:
    allowed = {
        "": {field.name for field in dataclasses.fields(ExperimentConfig)},
        "env": {"name", "kwargs"},
        "train": {field.name for field in dataclasses.fields(TrainConfig)},
        "eval": {field.name for field in dataclasses.fields(EvalConfig)},
    }[section]
    if key in allowed:
        return
    data = copy.deepcopy(BASE_CONFIG)
    (data[section] if section else data)[key] = 1

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    assert repr(key) in str(caught.value), f"{section}.{key}: {caught.value}"


@pytest.mark.parametrize("section", ["env", "train", "eval"])
@pytest.mark.parametrize("value", [[1, 2], "text", 3])
def test_section_not_mapping_named(section: str, value: Any) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data[section] = value

    message = assert_names(data, section, value)

    assert "mapping" in message, message


@pytest.mark.filterwarnings("ignore:the chain confirms at most:UserWarning")
@settings(FUZZ_SETTINGS, max_examples=30)
@given(data=st.data())
def test_env_kwargs_checked_by_name(data: Any) -> None:
    name = data.draw(st.sampled_from(ledgerzoo.list_envs()), label="env")
    kwargs, invalid, corrupt = data.draw(market_arguments(name), label="kwargs")
    config = copy.deepcopy(BASE_CONFIG)
    config["env"] = {"name": name, "kwargs": {**kwargs, "max_cycles": MAX_CYCLES}}
    if corrupt == "max_cycles" and invalid is not None:
        config["env"]["kwargs"]["max_cycles"] = invalid.value
        config["eval"]["skip_rounds"] = 0
    if corrupt == "render_mode":
        # The config does not build the env's render mode; leave it out.
        config["env"]["kwargs"].pop("render_mode", None)
        invalid = None

    try:
        config_from_dict(config)
    except ConfigError as error:
        message = str(error)
        assert "env.kwargs" in message, f"{config['env']}: {message}"
        _check_named(message, config["env"]["kwargs"], invalid)
        return
    assert invalid is None, f"{config['env']}: {corrupt}={invalid.value!r} was accepted"


def _check_named(message: str, kwargs: dict[str, Any], invalid: Invalid | None) -> None:
    from tests.hardening.arguments import NESTED_FIELDS, all_keys

    names = [*NESTED_FIELDS, *all_keys(kwargs)]
    assert any(name in message for name in names), f"{kwargs}: no argument named in {message}"
