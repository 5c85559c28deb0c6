"""Experiment configs: YAML files validated into typed objects before anything runs.

A config has three sections::

    env:    registry name and the env's keyword arguments (its scenario)
    train:  the SB3 algorithm and its settings
    eval:   held-out seeds, rounds to skip, deterministic actions

An unknown key, a wrong type or an infeasible value is a :class:`ConfigError` that names the
key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from ledgerzoo import registry

ALGORITHMS = ("PPO", "A2C", "RecurrentPPO", "MaskablePPO")
LEARNING_RATE_SCHEDULES = ("constant", "linear")


class ConfigError(ValueError):
    """An invalid experiment config; the message names the key, the value and the fix."""


@dataclass
class EnvConfig:
    """The env to build and its arguments."""

    name: str = field(metadata={"help": "registry name, for example lending_one_to_one_v0"})
    kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "keyword arguments of the env (scenario, max_cycles, followers, ...)"},
    )


@dataclass
class TrainConfig:
    """Settings of training with stable-baselines3 on the env's vector face."""

    algorithm: str = field(default="PPO", metadata={"help": f"one of {', '.join(ALGORITHMS)}"})
    total_timesteps: int = field(
        default=1_000_000, metadata={"help": "agent-steps to train for (all slots together)"}
    )
    num_instances: int = field(
        default=64, metadata={"help": "market instances stepped together (B)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the model and the training instances"})
    n_steps: int = field(default=32, metadata={"help": "steps per slot in each rollout"})
    batch_size: int = field(default=1024, metadata={"help": "minibatch size of each update"})
    n_epochs: int = field(default=10, metadata={"help": "passes over each rollout"})
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam step size"})
    learning_rate_schedule: str = field(
        default="constant",
        metadata={"help": "constant, or linear: decay from learning_rate to 0 over training"},
    )
    gamma: float = field(
        default=0.0,
        metadata={"help": "discount; 0 makes agents myopic, matching the stage-game benchmark"},
    )
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda"})
    clip_range: float = field(default=0.2, metadata={"help": "PPO clip range"})
    ent_coef: float = field(default=0.0, metadata={"help": "entropy bonus coefficient"})
    vf_coef: float = field(default=0.5, metadata={"help": "value loss coefficient"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "gradient clipping norm"})
    log_std_init: float = field(
        default=-1.0, metadata={"help": "initial log standard deviation of Gaussian actions"}
    )
    net_arch: list[int] = field(
        default_factory=lambda: [64, 64],
        metadata={"help": "hidden layer sizes of policy and value"},
    )
    alternate_rollouts: int = field(
        default=4,
        metadata={"help": "with several learned roles: rollouts one role trains before the next"},
    )
    reference_metrics: bool = field(
        default=True,
        metadata={"help": "solve each training episode's equilibrium to log market/ metrics"},
    )
    checkpoint_every: int = field(
        default=100_000, metadata={"help": "agent-steps between checkpoints (0: none)"}
    )
    keep_checkpoints: int = field(default=3, metadata={"help": "newest checkpoints to keep"})
    torch_threads: int = field(default=1, metadata={"help": "torch CPU threads (0: torch default)"})
    device: str = field(default="cpu", metadata={"help": "torch device: cpu, cuda or auto"})


@dataclass
class EvalConfig:
    """Settings of evaluation against the analytic equilibrium."""

    episodes: int = field(default=20, metadata={"help": "held-out episodes, one seed each"})
    seed: int = field(
        default=1_000_003,
        metadata={"help": "base of the held-out seeds; must differ from train.seed"},
    )
    skip_rounds: int = field(
        default=5, metadata={"help": "rounds left out at the start of each episode"}
    )
    deterministic: bool = field(default=True, metadata={"help": "use the policy's mean action"})


@dataclass
class ExperimentConfig:
    """A whole experiment: env, training and evaluation."""

    env: EnvConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain data (the content of a run's config.yaml)."""
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read and validate a YAML experiment config.

    Raises:
        ConfigError: If the file is missing, is not YAML, or fails validation.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {str(file)!r}; pass the path of a YAML file")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(
            f"config {str(file)!r} is not valid YAML: {_describe_yaml_error(error)}"
        ) from None
    return config_from_dict(data, source=str(file))


def config_from_dict(data: Any, source: str = "config") -> ExperimentConfig:
    """Validate plain data (as loaded from YAML) into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: For an unknown key, a wrong type or an infeasible value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with sections env, train, eval")
    _check_keys(data, {"env", "train", "eval"}, source)
    if "env" not in data:
        raise ConfigError(f"{source}: missing section 'env' (with at least env.name)")
    env = _build(EnvConfig, data["env"], f"{source}: env")
    train = _build(TrainConfig, data.get("train") or {}, f"{source}: train")
    evaluation = _build(EvalConfig, data.get("eval") or {}, f"{source}: eval")
    config = ExperimentConfig(env=env, train=train, eval=evaluation)
    validate(config, source)
    return config


def validate(config: ExperimentConfig, source: str = "config") -> None:
    """Check values that the types alone do not: ranges, names and the env's arguments."""
    train, evaluation = config.train, config.eval
    if config.env.name not in registry.list_envs():
        try:
            registry.spec(config.env.name)
        except KeyError as error:
            raise ConfigError(f"{source}: env.name: {error.args[0]}") from None
    if train.algorithm not in ALGORITHMS:
        raise ConfigError(
            f"{source}: train.algorithm {train.algorithm!r} is not supported; use one of "
            f"{list(ALGORITHMS)}"
        )
    if train.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
        raise ConfigError(
            f"{source}: train.learning_rate_schedule {train.learning_rate_schedule!r} is not "
            f"supported; use one of {list(LEARNING_RATE_SCHEDULES)}"
        )
    positive = {
        "train.total_timesteps": train.total_timesteps,
        "train.num_instances": train.num_instances,
        "train.n_steps": train.n_steps,
        "train.batch_size": train.batch_size,
        "train.n_epochs": train.n_epochs,
        "train.learning_rate": train.learning_rate,
        "train.keep_checkpoints": train.keep_checkpoints,
        "train.alternate_rollouts": train.alternate_rollouts,
        "eval.episodes": evaluation.episodes,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{source}: {key} must be above 0, got {value}")
    for key, value in {
        "train.gamma": train.gamma,
        "train.gae_lambda": train.gae_lambda,
    }.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{source}: {key} must be in [0, 1], got {value}")
    for key, value in {
        "train.checkpoint_every": train.checkpoint_every,
        "train.torch_threads": train.torch_threads,
        "eval.skip_rounds": evaluation.skip_rounds,
        "train.ent_coef": train.ent_coef,
    }.items():
        if value < 0:
            raise ConfigError(f"{source}: {key} must be at least 0, got {value}")
    if not train.net_arch or any(size <= 0 for size in train.net_arch):
        raise ConfigError(
            f"{source}: train.net_arch must be a list of positive layer sizes, got {train.net_arch}"
        )
    if evaluation.seed == train.seed:
        raise ConfigError(
            f"{source}: eval.seed equals train.seed ({train.seed}); held-out seeds must differ "
            "from the training seeds, so pick another eval.seed"
        )
    _check_env_kwargs(config.env, source)
    max_cycles = config.env.kwargs.get("max_cycles", _default_argument(config.env, "max_cycles"))
    if isinstance(max_cycles, int) and evaluation.skip_rounds >= max_cycles:
        raise ConfigError(
            f"{source}: eval.skip_rounds ({evaluation.skip_rounds}) leaves no round of the "
            f"{max_cycles} in an episode; lower it below env.kwargs.max_cycles"
        )


def save_config(config: ExperimentConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML, atomically."""
    write_atomic(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False))


def write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file readable by its owner only; give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys are {sorted(allowed)}"
        )


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(data, set(fields), where)
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _coerce(value, hints[name], f"{where}.{name}")
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    return cls(**values)


def _coerce(value: Any, expected: Any, where: str) -> Any:
    """Check a YAML value against a field's type; ints are accepted where floats are."""
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    origin = getattr(expected, "__origin__", None)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type,) = expected.__args__
        return [_coerce(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    """Describe a YAML error on one line: the problem and its line and column, from 1."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem is None:
        return " ".join(str(error).split())
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def _default_argument(env: EnvConfig, name: str) -> Any:
    """The default of one of the env's constructor arguments, or None if it has none."""
    parameters = inspect.signature(registry.spec(env.name).load().raw_env.__init__).parameters
    parameter = parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def _check_env_kwargs(env: EnvConfig, source: str) -> None:
    """Check the env's keyword arguments by name, then by building the env once."""
    try:
        registry.check_kwargs(env.name, env.kwargs)
        registry.make(env.name, **env.kwargs).close()
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: env.kwargs: {error}") from None
