"""Experiment configs: YAML files validated into typed objects before anything runs.

A config has three sections, and a fourth for parameter sweeps::

    env:    registry name and the env's keyword arguments (its scenario)
    train:  the SB3 algorithm and its settings
    eval:   held-out seeds, rounds to skip, deterministic actions
    sweep:  (optional) the grid, metrics and figures of ``ledgerzoo sweep``

An unknown key, a wrong type or an infeasible value is a :class:`ConfigError` that names the
key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from ledgerzoo import registry
from ledgerzoo.envs.core.params import describe_value

ALGORITHMS = ("PPO", "A2C", "RecurrentPPO", "MaskablePPO")
LEARNING_RATE_SCHEDULES = ("constant", "linear")
# Largest train.seed and eval.seed.
MAX_SEED = 2**32 - 1
# Torch device names that train.device accepts.
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps|auto")
# A sweep's figures have one key on the horizontal axis and at most one key whose values
# give the curves, so a grid has one or two keys.
MAX_SWEEP_KEYS = 2
SWEEP_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")


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
class SweepPlotConfig:
    """The axes of a sweep's figures; each is a key of the sweep's grid."""

    x: str | None = field(
        default=None,
        metadata={"help": "key on the horizontal axis (default: the first number key)"},
    )
    curve: str | None = field(
        default=None, metadata={"help": "key with one curve per value (default: the other key)"}
    )


@dataclass
class SweepConfig:
    """A parameter sweep of the experiment (``ledgerzoo sweep``).

    The grid's keys are dotted paths into the config, such as ``env.kwargs.n_lenders``. Only
    the structure is checked here. :func:`ledgerzoo.training.sweep.sweep` checks that each key
    exists and validates the config at every grid point.
    """

    grid: dict[str, list[Any]] = field(
        metadata={"help": "one or two dotted config keys, each with a list of values"}
    )
    metrics: list[str] = field(
        default_factory=list,
        metadata={"help": "metrics to report and plot (default: every metric of the market)"},
    )
    plot: SweepPlotConfig = field(default_factory=SweepPlotConfig)
    labels: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "axis labels (with units) by grid key or metric name"},
    )
    method: str | None = field(
        default=None, metadata={"help": "solver method of the market (default: its default)"}
    )
    name: str | None = field(
        default=None, metadata={"help": "name of the output directory (default: the file name)"}
    )


@dataclass
class ExperimentConfig:
    """A whole experiment: env, training and evaluation, and optionally a sweep."""

    env: EnvConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sweep: SweepConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain data (the content of a run's config.yaml).

        A config without a sweep has no ``sweep`` key, so run directories read as before.
        """
        data = dataclasses.asdict(self)
        if self.sweep is None:
            del data["sweep"]
        return data


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
        raise ConfigError(
            f"{source}: expected a mapping with sections env, train, eval (and optionally sweep)"
        )
    _check_keys(data, {"env", "train", "eval", "sweep"}, source)
    if "env" not in data:
        raise ConfigError(f"{source}: missing section 'env' (with at least env.name)")
    env = _build(EnvConfig, data["env"], f"{source}: env")
    train = _build(TrainConfig, data.get("train") or {}, f"{source}: train")
    evaluation = _build(EvalConfig, data.get("eval") or {}, f"{source}: eval")
    sweep = None if data.get("sweep") is None else _build_sweep(data["sweep"], f"{source}: sweep")
    config = ExperimentConfig(env=env, train=train, eval=evaluation, sweep=sweep)
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
    for key, value in {
        "train.learning_rate": train.learning_rate,
        "train.gamma": train.gamma,
        "train.gae_lambda": train.gae_lambda,
        "train.clip_range": train.clip_range,
        "train.ent_coef": train.ent_coef,
        "train.vf_coef": train.vf_coef,
        "train.max_grad_norm": train.max_grad_norm,
        "train.log_std_init": train.log_std_init,
    }.items():
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value}")
    positive = {
        "train.total_timesteps": train.total_timesteps,
        "train.num_instances": train.num_instances,
        "train.n_steps": train.n_steps,
        "train.batch_size": train.batch_size,
        "train.n_epochs": train.n_epochs,
        "train.learning_rate": train.learning_rate,
        "train.keep_checkpoints": train.keep_checkpoints,
        "train.alternate_rollouts": train.alternate_rollouts,
        "train.clip_range": train.clip_range,
        "train.max_grad_norm": train.max_grad_norm,
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
        "train.vf_coef": train.vf_coef,
        "train.seed": train.seed,
        "eval.seed": evaluation.seed,
    }.items():
        if value < 0:
            raise ConfigError(f"{source}: {key} must be at least 0, got {value}")
    for key, value in {"train.seed": train.seed, "eval.seed": evaluation.seed}.items():
        # numpy's legacy seeding, which SB3 calls, takes 32-bit seeds only.
        if value > MAX_SEED:
            raise ConfigError(
                f"{source}: {key} must be at most {MAX_SEED} (2**32 - 1), got "
                f"{describe_value(value)}"
            )
    if not DEVICE_PATTERN.fullmatch(train.device):
        raise ConfigError(
            f"{source}: train.device {train.device!r} is not a torch device; use cpu, cuda, "
            "cuda:<index>, mps or auto"
        )
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


def check_sweep_grid(grid: Any, where: str) -> dict[str, list[Any]]:
    """Check the structure of a sweep grid and return it as a dict of lists.

    A grid maps one or two keys to non-empty lists of distinct values. Each value is a finite
    number, a string or a boolean, and a list does not mix numbers with strings or booleans.
    Whether a key exists in the config is checked by the sweep itself.

    Raises:
        ConfigError: Naming the key or the value, and the fix.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(
            f"{where}: expected a mapping from one or two config keys to lists of values, got "
            f"{grid!r}; for example {{env.kwargs.n_lenders: [2, 5, 10]}}"
        )
    if len(grid) > MAX_SWEEP_KEYS:
        raise ConfigError(
            f"{where}: a sweep takes one or two keys, got {len(grid)}: {list(grid)}; drop keys "
            "until two are left"
        )
    checked: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key.strip() or any(not part for part in key.split(".")):
            raise ConfigError(
                f"{where}: invalid key {key!r}; expected a dotted config key such as "
                "env.kwargs.n_lenders"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{where}: {key} needs a non-empty list of values, got {values!r}; for example "
                f"{key}: [1, 2, 3]"
            )
        for value in values:
            _check_sweep_value(key, value, where)
        numbers = [_is_number(value) for value in values]
        if any(numbers) and not all(numbers):
            raise ConfigError(
                f"{where}: the values of {key} mix numbers with strings or booleans: {values}; "
                "give one kind"
            )
        distinct: list[Any] = []
        for value in values:
            # 1 and 1.0 are the same grid value, but True and 1 are not.
            if any(_is_number(value) == _is_number(seen) and value == seen for seen in distinct):
                raise ConfigError(f"{where}: {key} lists the value {value!r} twice; list it once")
            distinct.append(value)
        checked[key] = list(values)
    return checked


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _check_sweep_value(key: str, value: Any, where: str) -> None:
    if isinstance(value, (bool, str)):
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{where}: {key} has an empty value; give a number or a name")
        return
    if _is_number(value):
        if not _is_finite(value):
            raise ConfigError(
                f"{where}: {key} has the value {describe_value(value)}; give a finite number"
            )
        return
    raise ConfigError(
        f"{where}: {key} has the value {value!r}; a sweep sets a number, a string or true/false "
        "(set ranges and lists in env.kwargs instead)"
    )


def _optional_string(value: Any, where: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{where}: expected a non-empty string or null, got {value!r}")
    return value


def _build_sweep(data: Any, where: str) -> SweepConfig:
    """Validate the structure of a config's sweep section."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with at least a grid, got {data!r}")
    _check_keys(data, {f.name for f in dataclasses.fields(SweepConfig)}, where)
    if "grid" not in data:
        raise ConfigError(
            f"{where}: missing key 'grid'; for example grid: {{env.kwargs.n_lenders: [2, 5, 10]}}"
        )
    grid = check_sweep_grid(data["grid"], f"{where}.grid")

    metrics = data.get("metrics") or []
    if not isinstance(metrics, list) or not all(
        isinstance(metric, str) and metric.strip() for metric in metrics
    ):
        raise ConfigError(f"{where}.metrics: expected a list of metric names, got {metrics!r}")
    repeated = sorted({metric for metric in metrics if metrics.count(metric) > 1})
    if repeated:
        raise ConfigError(f"{where}.metrics: {repeated[0]!r} is listed twice; list it once")

    plot_data = data.get("plot") or {}
    if not isinstance(plot_data, Mapping):
        raise ConfigError(f"{where}.plot: expected a mapping with x and curve, got {plot_data!r}")
    _check_keys(plot_data, {"x", "curve"}, f"{where}.plot")
    plot = SweepPlotConfig(
        x=_optional_string(plot_data.get("x"), f"{where}.plot.x"),
        curve=_optional_string(plot_data.get("curve"), f"{where}.plot.curve"),
    )
    for axis, key in (("x", plot.x), ("curve", plot.curve)):
        if key is not None and key not in grid:
            raise ConfigError(
                f"{where}.plot.{axis}: {key!r} is not a key of the grid; use one of {list(grid)}"
            )
    if plot.x is not None and plot.x == plot.curve:
        raise ConfigError(f"{where}.plot: x and curve are both {plot.x!r}; give different keys")

    labels = data.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(name, str) and isinstance(text, str) for name, text in labels.items()
    ):
        raise ConfigError(
            f"{where}.labels: expected a mapping from grid keys or metric names to label "
            f"strings, got {labels!r}"
        )
    name = _optional_string(data.get("name"), f"{where}.name")
    if name is not None and not SWEEP_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}.name: {name!r} is not usable in a directory name; use letters, digits, "
            "'.', '_' and '-'"
        )
    return SweepConfig(
        grid=grid,
        metrics=list(metrics),
        plot=plot,
        labels=dict(labels),
        method=_optional_string(data.get("method"), f"{where}.method"),
        name=name,
    )


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
