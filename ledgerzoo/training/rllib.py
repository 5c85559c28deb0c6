"""Training on Ray RLlib's new API stack: the ``--backend rllib`` of ``ledgerzoo train``.

The experiment is the one the SB3 backend runs, on the market's PettingZoo face. Each env is
the registry's ParallelEnv in RLlib's ``ParallelPettingZooEnv`` wrapper, registered with
``ray.tune.registry.register_env`` so that Ray workers can build it. Every role has its own
PPO module, shared by the agents of the role (``policy_mapping_fn`` maps ``lender_3`` to
``lender``). Ray runs as a local instance, or the driver joins an existing cluster by address.

How the ``train`` section maps onto ``PPOConfig`` is in :func:`build_algorithm_config` and in
docs/rllib.md. A run directory holds::

    config.yaml                       the resolved config
    provenance.json                   backend "rllib", package versions, git commit, seeds, Ray
    checkpoints/checkpoint_<steps>/   Algorithm.save_to_path, the newest train.keep_checkpoints
    progress.csv                      one row per training iteration
    eval/                             metrics.json, metrics.csv, rates.png

``<steps>`` counts agent-steps. ledgerzoo writes its own files atomically, and saves each
checkpoint to a temporary folder that is renamed when complete. A resumed run restores the
newest checkpoint.

Ray, RLlib and torch are imported inside the functions, so this module imports without the
``rllib`` extra.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import logging
import math
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from ledgerzoo import registry
from ledgerzoo._extras import require
from ledgerzoo.agents.base import role_of
from ledgerzoo.training.config import ExperimentConfig, load_config, save_config, write_atomic
from ledgerzoo.training.evaluate import (
    EvaluationResult,
    evaluate_on_config,
    evaluation_seeds,
    write_results,
)
from ledgerzoo.training.provenance import (
    read_json,
    run_header,
    save_provenance,
    update_provenance,
)

logger = logging.getLogger(__name__)

BACKEND = "rllib"
#: The config's train.algorithm values that the backend trains.
ALGORITHMS = ("PPO",)
CHECKPOINT_PATTERN = re.compile(r"checkpoint_(\d+)$")
#: Seconds to wait for a TCP connection to a cluster's address before training starts.
CONNECT_TIMEOUT_S = 10.0
#: Object store of a local Ray instance. Sample batches of these markets take a few MB.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
PROVENANCE_PACKAGES = (
    "ledgerzoo",
    "numpy",
    "scipy",
    "gymnasium",
    "pettingzoo",
    "ray",
    "torch",
    "pyyaml",
)
INSTALL_HINT = (
    "Install it with: pip install 'ledgerzoo[rllib]' (on a CPU-only machine, install a CPU "
    "build of torch first; see docs/rllib.md)"
)


@dataclass
class RLlibTrainResult:
    """Outputs of an RLlib training run.

    Attributes:
        run_dir: The run directory.
        checkpoint: The final checkpoint folder.
        timesteps: Agent-steps sampled in total (the unit of train.total_timesteps).
        env_steps: Env steps sampled in total (one step of one env moves all its agents).
        evaluation: The evaluation of the final checkpoint, if it was run.
    """

    run_dir: Path
    checkpoint: Path
    timesteps: int
    env_steps: int
    evaluation: EvaluationResult | None


@dataclass(frozen=True)
class MarketLayout:
    """The roles, spaces and phases of a market, as read from one of its PettingZoo envs.

    Attributes:
        roles: Role names in the order of ``possible_agents``.
        agents: Number of agents in an episode.
        role_agents: Role -> number of its agents.
        steps_per_round: 2 for a market whose rounds take a leaders' and a followers' step,
            else 1.
        observation_spaces: Role -> the observation space shared by its agents.
        action_spaces: Role -> the action space shared by its agents.
    """

    roles: tuple[str, ...]
    agents: int
    role_agents: dict[str, int]
    steps_per_round: int
    observation_spaces: dict[str, gymnasium.spaces.Space]
    action_spaces: dict[str, gymnasium.spaces.Space]

    @property
    def agent_steps_per_env_step(self) -> float:
        """Agent-steps in one env step, on average over a round (every agent acts once)."""
        return self.agents / self.steps_per_round


# --------------------------------------------------------------------------------------------
# Supported markets and settings.


def market_layout(env_name: str, env_kwargs: Mapping[str, Any]) -> MarketLayout:
    """Read the roles, spaces and phases of a market from one PettingZoo env.

    Raises:
        ValueError: If agents of one role have different spaces, or a role has Dict
            observations (action masks), which the backend does not train.
    """
    env = registry.make(env_name, **{**env_kwargs, "reference": False})
    try:
        observation_spaces: dict[str, gymnasium.spaces.Space] = {}
        action_spaces: dict[str, gymnasium.spaces.Space] = {}
        for agent in env.possible_agents:
            role = role_of(agent)
            observation, action = env.observation_space(agent), env.action_space(agent)
            if role not in observation_spaces:
                observation_spaces[role], action_spaces[role] = observation, action
            elif observation != observation_spaces[role] or action != action_spaces[role]:
                raise ValueError(
                    f"{env_name}: agents of role {role!r} have different spaces ({agent}: "
                    f"{observation}, {action}); one RLlib module per role needs equal spaces"
                )
        for role, space in observation_spaces.items():
            if isinstance(space, gymnasium.spaces.Dict):
                raise ValueError(
                    f"{env_name}: role {role!r} has Dict observations with an action mask, "
                    "which the RLlib backend does not train yet; train this market with the "
                    "SB3 backend and train.algorithm: MaskablePPO (ledgerzoo train CONFIG "
                    "--backend sb3)"
                )
        market = getattr(env.unwrapped, "market", None)
        two_phase = bool(getattr(market, "two_phase", False))
        return MarketLayout(
            roles=tuple(observation_spaces),
            agents=len(env.possible_agents),
            role_agents={
                role: sum(1 for agent in env.possible_agents if role_of(agent) == role)
                for role in observation_spaces
            },
            steps_per_round=2 if two_phase else 1,
            observation_spaces=observation_spaces,
            action_spaces=action_spaces,
        )
    finally:
        env.close()


def check_supported(config: ExperimentConfig) -> MarketLayout:
    """Check that the backend can run a config; returns the market's layout.

    Raises:
        ValueError: For an algorithm other than PPO, a device other than the CPU, a market
            with action masks, or a minibatch larger than one iteration's batch.
    """
    settings = config.train
    layout = market_layout(config.env.name, config.env.kwargs)
    if settings.algorithm not in ALGORITHMS:
        raise ValueError(
            f"train.algorithm {settings.algorithm!r} is not supported by the RLlib backend, "
            f"which trains with {list(ALGORITHMS)}; set train.algorithm: PPO, or use "
            "--backend sb3"
        )
    if settings.device != "cpu":
        raise ValueError(
            f"train.device {settings.device!r} is not supported by the RLlib backend, whose "
            "learner runs on the CPU; set train.device: cpu"
        )
    for role, count in layout.role_agents.items():
        rows = settings.n_steps * settings.num_instances * count
        if settings.batch_size > rows:
            raise ValueError(
                f"train.batch_size ({settings.batch_size}) is larger than the {rows} rows that "
                f"role {role!r} collects in one iteration (train.n_steps x train.num_instances "
                f"x its {count} agents); lower train.batch_size or raise train.n_steps"
            )
    return layout


def train_batch_agent_steps(config: ExperimentConfig, layout: MarketLayout) -> int:
    """Agent-steps in one training iteration: train.n_steps actions of every agent of every
    instance, as in one rollout of every role with stable-baselines3."""
    return config.train.n_steps * config.train.num_instances * layout.agents


# --------------------------------------------------------------------------------------------
# The env that Ray workers build.


def rllib_env_id(env_name: str) -> str:
    """Return the name under which :func:`register_rllib_env` registers a market."""
    return f"ledgerzoo/{env_name}"


def register_rllib_env(env_name: str) -> str:
    """Register :func:`make_rllib_env` with Ray Tune's registry and return the env id.

    Ray workers look envs up in Tune's registry once Ray is initialized, but they do not see
    the gymnasium registry of the driver.
    """
    tune_registry = _require_rllib("ray.tune.registry")
    env_id = rllib_env_id(env_name)
    tune_registry.register_env(env_id, make_rllib_env)
    return env_id


def make_rllib_env(env_config: Mapping[str, Any]) -> Any:
    """Build a market's PettingZoo env in RLlib's wrapper (the creator Ray workers call).

    Args:
        env_config: ``{"env": registry name, "kwargs": the env's keyword arguments}``.
    """
    env = registry.make(str(env_config["env"]), **dict(env_config.get("kwargs") or {}))
    return market_env_class()(env)


@functools.cache
def market_env_class() -> type:
    """Return RLlib's ``ParallelPettingZooEnv`` extended for ledgerzoo markets.

    The class is built on first use, because it needs ray. It differs from RLlib's wrapper
    in three ways. It takes its spaces from ``possible_agents`` rather than from the agents
    live after the first reset. It returns observations only to the agents whose roles act in
    the coming step (a leaders' step and a followers' step when followers learn). It raises
    RuntimeError if an episode ends with some agents terminated and others truncated, because
    RLlib would not end that episode.
    """
    wrapper: Any = _require_rllib("ray.rllib.env.wrappers.pettingzoo_env").ParallelPettingZooEnv

    class MarketRLlibEnv(wrapper):
        def __init__(self, env: Any) -> None:
            super().__init__(env)
            self.possible_agents = list(env.possible_agents)
            self.agents = list(env.possible_agents)
            self.observation_spaces = {a: env.observation_space(a) for a in self.possible_agents}
            self.action_spaces = {a: env.action_space(a) for a in self.possible_agents}
            self.observation_space = gymnasium.spaces.Dict(self.observation_spaces)
            self.action_space = gymnasium.spaces.Dict(self.action_spaces)
            self._market = getattr(env.unwrapped, "market", None)

        def reset(
            self, *, seed: int | None = None, options: dict[str, Any] | None = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            observations, infos = self.par_env.reset(seed=seed, options=options)
            self.agents = list(self.par_env.agents)
            acting = self._acting_agents()
            return _select(observations, acting), _select(infos or {}, acting)

        def step(self, action_dict: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
            actions = dict(action_dict)
            for agent in self.par_env.agents:
                if agent not in actions:
                    # The market ignores the actions of roles that do not act in this step.
                    actions[agent] = idle_action(self.par_env.action_space(agent))
            observations, rewards, terminateds, truncateds, infos = self.par_env.step(actions)
            if self.par_env.agents:
                acting = self._acting_agents()
                observations, infos = _select(observations, acting), _select(infos, acting)
            finished = all(terminateds[a] or truncateds[a] for a in terminateds)
            terminateds["__all__"] = all(terminateds.values())
            truncateds["__all__"] = all(truncateds.values())
            if finished and not (terminateds["__all__"] or truncateds["__all__"]):
                raise RuntimeError(
                    f"the episode ended with some agents terminated and others truncated "
                    f"(terminated {terminateds}, truncated {truncateds}); RLlib ends an "
                    "episode only when every agent has the same flag"
                )
            self.agents = list(self.par_env.agents)
            return observations, rewards, terminateds, truncateds, infos

        def _acting_agents(self) -> list[str]:
            if self._market is None:
                return list(self.par_env.agents)
            roles = set(self._market.acting_roles())
            return [agent for agent in self.par_env.agents if role_of(agent) in roles]

    return MarketRLlibEnv


def idle_action(space: gymnasium.spaces.Space) -> Any:
    """Return a valid placeholder action for an agent whose role does not act in a step."""
    if isinstance(space, gymnasium.spaces.Box):
        # Zero moved into the bounds: finite even where a bound is infinite.
        return np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)
    if isinstance(space, gymnasium.spaces.Discrete):
        return np.int64(space.start)
    raise ValueError(f"no placeholder action for the space {space}")


def policy_for_agent(agent_id: str, *args: Any, **kwargs: Any) -> str:
    """RLlib's ``policy_mapping_fn``: the module of an agent is its role's."""
    return role_of(agent_id)


def _select(values: Mapping[str, Any], agents: list[str]) -> dict[str, Any]:
    return {agent: values[agent] for agent in agents if agent in values}


# --------------------------------------------------------------------------------------------
# The algorithm.


def build_algorithm_config(
    config: ExperimentConfig,
    layout: MarketLayout,
    env_id: str,
    *,
    num_env_runners: int = 0,
) -> Any:
    """Map an experiment config onto RLlib's ``PPOConfig`` (new API stack).

    The train section maps as follows:

    - learning_rate -> lr; with learning_rate_schedule linear, a schedule from learning_rate
      to 0 at the env step where total_timesteps agent-steps are expected;
    - gamma, gae_lambda, clip_range -> gamma, lambda_, clip_param;
    - ent_coef, vf_coef, max_grad_norm -> entropy_coeff, vf_loss_coeff, grad_clip (global
      norm);
    - n_epochs, batch_size -> num_epochs, minibatch_size (rows of one role's module);
    - n_steps x num_instances x agents -> train_batch_size_per_learner, in agent-steps
      (count_steps_by="agent_steps");
    - num_instances -> envs per env runner, split evenly over the runners;
    - net_arch -> fcnet_hiddens (tanh, separate value network);
    - seed -> the debugging seed.

    As in stable-baselines3's PPO, there is no KL penalty and no clipping of the value loss.
    """
    ppo = _require_rllib("ray.rllib.algorithms.ppo")
    model_config = _require_rllib("ray.rllib.core.rl_module.default_model_config")
    multi_module = _require_rllib("ray.rllib.core.rl_module.multi_rl_module")
    rl_module = _require_rllib("ray.rllib.core.rl_module.rl_module")

    settings = config.train
    runners = max(1, num_env_runners)
    learning_rate: Any = settings.learning_rate
    if settings.learning_rate_schedule == "linear":
        # RLlib's schedules count env steps sampled (ray 2.60), not agent-steps.
        horizon = math.ceil(settings.total_timesteps / layout.agent_steps_per_env_step)
        learning_rate = [[0, settings.learning_rate], [max(1, horizon), 0.0]]
    env_kwargs = {**config.env.kwargs, "reference": False}
    specs = {
        role: rl_module.RLModuleSpec(
            observation_space=layout.observation_spaces[role],
            action_space=layout.action_spaces[role],
        )
        for role in layout.roles
    }
    return (
        ppo.PPOConfig()
        .environment(
            env_id,
            env_config={"env": config.env.name, "kwargs": env_kwargs},
            normalize_actions=True,
            clip_actions=False,
        )
        .env_runners(
            num_env_runners=num_env_runners,
            num_envs_per_env_runner=math.ceil(settings.num_instances / runners),
        )
        .multi_agent(
            policies=set(layout.roles),
            policy_mapping_fn=policy_for_agent,
            count_steps_by="agent_steps",
        )
        .rl_module(
            rl_module_spec=multi_module.MultiRLModuleSpec(rl_module_specs=specs),
            model_config=model_config.DefaultModelConfig(
                fcnet_hiddens=list(settings.net_arch),
                fcnet_activation="tanh",
                vf_share_layers=False,
            ),
        )
        .training(
            lr=learning_rate,
            gamma=settings.gamma,
            lambda_=settings.gae_lambda,
            clip_param=settings.clip_range,
            entropy_coeff=settings.ent_coef,
            vf_loss_coeff=settings.vf_coef,
            grad_clip=settings.max_grad_norm,
            grad_clip_by="global_norm",
            train_batch_size_per_learner=train_batch_agent_steps(config, layout),
            minibatch_size=settings.batch_size,
            num_epochs=settings.n_epochs,
            use_kl_loss=False,
            vf_clip_param=math.inf,
        )
        .debugging(seed=settings.seed)
    )


def training_env_seeds(config: ExperimentConfig, num_env_runners: int) -> list[int]:
    """Return the seeds of the training envs' first resets, as RLlib derives them (ray 2.60).

    An env runner's seed is train.seed plus its index (0 for sampling in the driver, 1..K for
    K remote runners), and env i of a runner adds i. Later episodes are not reseeded.
    """
    runners = [0] if num_env_runners == 0 else list(range(1, num_env_runners + 1))
    per_runner = math.ceil(config.train.num_instances / max(1, num_env_runners))
    return [config.train.seed + runner + i for runner in runners for i in range(per_runner)]


# --------------------------------------------------------------------------------------------
# Training.


def train_rllib(
    config: ExperimentConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    config_path: str | None = None,
    resume: bool = False,
    address: str | None = None,
    num_env_runners: int = 0,
    progress: bool = True,
    evaluate_after: bool = True,
) -> RLlibTrainResult:
    """Train the config's experiment with RLlib's PPO, then evaluate it against the equilibrium.

    Args:
        config: A validated experiment config.
        run_dir: Where to write the run; by default ``runs/<env>__<config>__seed<s>__<time>``.
        config_path: Path of the config file, used only to name the default run directory.
        resume: Continue the run in ``run_dir`` from its newest checkpoint.
        address: Address of an existing Ray cluster (``HEAD:6379``); None starts a local Ray
            instance. If Ray is already initialized in this process, it is used as it is.
        num_env_runners: Ray actors that sample; 0 samples in the driver process.
        progress: Print one line per training iteration to stderr.
        evaluate_after: Evaluate the final checkpoint on the config's held-out seeds.

    Raises:
        ImportError: If the rllib extra is missing (the message names the pip command).
        ValueError: If the config sets something the backend does not support, or Ray
            cannot connect to ``address``.
        FileExistsError: If ``run_dir`` already contains a run and ``resume`` is False.
        FileNotFoundError: If ``resume`` is True and ``run_dir`` contains no run.
    """
    from ledgerzoo.training.train import default_run_dir

    ray = _require_rllib("ray")
    torch = _require_rllib("torch")
    if num_env_runners < 0:
        raise ValueError(f"invalid num_env_runners {num_env_runners}: expected 0 or more")
    layout = check_supported(config)
    directory = Path(run_dir) if run_dir is not None else default_run_dir(config, config_path)
    _check_run_directory(directory, resume)
    overlap = set(evaluation_seeds(config.eval.seed, config.eval.episodes)) & set(
        training_env_seeds(config, num_env_runners)
    )
    if overlap:
        raise ValueError(
            f"held-out evaluation seeds overlap the training seeds {sorted(overlap)}; pick "
            "another eval.seed or train.seed"
        )
    if config.train.torch_threads > 0:
        torch.set_num_threads(config.train.torch_threads)

    # The run directory is written once Ray is connected and the algorithm is built, so that a
    # wrong address or setting leaves no run behind that would block the same --run-dir.
    started_ray = connect_ray(address, num_env_runners)
    algorithm = None
    try:
        env_id = register_rllib_env(config.env.name)
        rllib_config = build_algorithm_config(
            config, layout, env_id, num_env_runners=num_env_runners
        )
        algorithm = rllib_config.build_algo()
        directory.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_config(config, directory / "config.yaml")
        start = latest_rllib_checkpoint(directory) if resume else None
        agent_steps = 0
        if start is not None:
            logger.info("resuming from %s", start)
            algorithm.restore_from_path(str(start.resolve()))
            agent_steps = checkpoint_steps(start)
        _write_provenance(directory, config, address, num_env_runners, ray)
        started = time.perf_counter()
        agent_steps, env_steps, checkpoint = _training_loop(
            algorithm, config, directory, agent_steps, progress
        )
        elapsed = time.perf_counter() - started
    finally:
        if algorithm is not None:
            algorithm.stop()
        if started_ray:
            ray.shutdown()
    update_provenance(
        directory,
        {
            "train_seconds": elapsed,
            "timesteps": agent_steps,
            "env_steps": env_steps,
            "checkpoint": str(checkpoint.relative_to(directory)),
        },
    )
    evaluation = evaluate_rllib_run(directory) if evaluate_after else None
    return RLlibTrainResult(directory, checkpoint, agent_steps, env_steps, evaluation)


def connect_ray(address: str | None, num_env_runners: int) -> bool:
    """Start a local Ray instance or join the cluster at ``address``; returns whether this call
    connected (and the caller must call ``ray.shutdown()``).

    Raises:
        ValueError: If nothing listens at a ``HOST:PORT`` address, Ray cannot connect to
            ``address``, or Ray is already initialized in this process and an ``address`` is
            given.
    """
    ray = _require_rllib("ray")
    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        if address is not None:
            raise ValueError(
                f"Ray is already initialized in this process, so --address {address} cannot "
                "take effect; call ray.shutdown() first or leave the address out"
            )
        logger.info("using the Ray instance already initialized in this process")
        return False
    if address is None:
        ray.init(
            address="local",
            num_cpus=max(num_env_runners + 1, os.cpu_count() or 1),
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        )
        return True
    try:
        ray.init(address=address)
    except ConnectionError as error:
        raise ValueError(
            f"cannot connect to the Ray cluster at {address!r}: {error}; start it with "
            "'ray start --head' on the head machine and pass its address as HEAD:6379"
        ) from error
    return True


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Open and close a TCP connection to a ``HOST:PORT`` address, to fail fast where no Ray
    head listens. Against a closed port, ray.init (ray 2.60) kept retrying for the ten
    minutes it was given. Other address forms (``auto``, ``ray://...``) are left to Ray.

    Raises:
        ValueError: If the connection fails or times out.
    """
    host, separator, port = address.rpartition(":")
    if "://" in address or not separator or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ValueError(
            f"cannot reach a Ray cluster at {address!r}: {error}; start one with 'ray start "
            "--head --port=6379' on the head machine and pass --address HEAD:6379"
        ) from error


def _training_loop(
    algorithm: Any,
    config: ExperimentConfig,
    directory: Path,
    agent_steps: int,
    progress: bool,
) -> tuple[int, int, Path]:
    """Run training iterations from ``agent_steps`` until train.total_timesteps agent-steps;
    returns the agent-steps, the env steps and the final checkpoint."""
    settings = config.train
    progress_path = directory / "progress.csv"
    # Iterations after the checkpoint that a run resumes from are trained again.
    rows = [row for row in _read_progress(progress_path) if int(row["agent_steps"]) <= agent_steps]
    env_steps = int(rows[-1]["env_steps"]) if rows else 0
    next_checkpoint = _next_multiple(agent_steps, settings.checkpoint_every)

    if agent_steps >= settings.total_timesteps:
        logger.warning(
            "%s already has %d agent-steps of the %d requested; nothing left to train",
            directory,
            agent_steps,
            settings.total_timesteps,
        )
    try:
        while agent_steps < settings.total_timesteps:
            started = time.perf_counter()
            result = algorithm.train()
            runners = result.get("env_runners", {})
            agent_steps += int(sum(runners.get("num_agent_steps_sampled", {}).values()))
            env_steps += int(runners.get("num_env_steps_sampled", 0))

            row = _progress_row(result, agent_steps, env_steps, time.perf_counter() - started)
            rows.append(row)
            write_atomic(progress_path, _format_progress(rows))
            if progress:
                print(
                    f"iteration {row['iteration']}: {agent_steps}/{settings.total_timesteps} "
                    f"agent-steps, mean episode return {row['episode_return_mean']:.5g}, "
                    f"{row['seconds']:.1f} s",
                    file=sys.stderr,
                )

            if next_checkpoint is not None and agent_steps >= next_checkpoint:
                save_checkpoint(algorithm, directory, agent_steps, settings.keep_checkpoints)
                next_checkpoint = _next_multiple(agent_steps, settings.checkpoint_every)
    except KeyboardInterrupt:
        save_checkpoint(algorithm, directory, agent_steps, settings.keep_checkpoints)
        logger.warning("training interrupted; resume with --resume %s", directory)
        raise

    checkpoint = directory / "checkpoints" / f"checkpoint_{agent_steps}"
    if not checkpoint.is_dir():
        checkpoint = save_checkpoint(algorithm, directory, agent_steps, settings.keep_checkpoints)
    return agent_steps, env_steps, checkpoint


def save_checkpoint(algorithm: Any, directory: Path, agent_steps: int, keep: int) -> Path:
    """Save the algorithm to RUN_DIR/checkpoints/checkpoint_<agent_steps> and keep only the
    newest ``keep`` checkpoints.

    The checkpoint is written to a hidden temporary folder and renamed when complete, so a
    crash never leaves a partial checkpoint under the final name.
    """
    folder = directory / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"checkpoint_{agent_steps}"
    partial = folder / f".checkpoint_{agent_steps}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    algorithm.save_to_path(str(partial.resolve()))
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    found = sorted(
        (checkpoint_steps(path), path) for path in folder.iterdir() if _is_checkpoint(path)
    )
    for _, old in found[: max(0, len(found) - keep)]:
        shutil.rmtree(old)
    return final


def latest_rllib_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """Return the newest checkpoint folder of an RLlib run, or None."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = [(checkpoint_steps(path), path) for path in folder.iterdir() if _is_checkpoint(path)]
    return max(found)[1] if found else None


def checkpoint_steps(path: Path) -> int:
    """Return the agent-steps in a checkpoint folder's name ``checkpoint_<steps>``."""
    match = CHECKPOINT_PATTERN.search(path.name)
    if match is None:
        raise ValueError(f"{str(path)!r} is not named checkpoint_<agent-steps>")
    return int(match.group(1))


def is_rllib_run(run_dir: str | os.PathLike[str]) -> bool:
    """Check whether a run directory was written by the RLlib backend, as its provenance.json
    records."""
    return read_json(Path(run_dir) / "provenance.json").get("backend") == BACKEND


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and CHECKPOINT_PATTERN.fullmatch(path.name) is not None


def _next_multiple(steps: int, every: int) -> int | None:
    """Return the next checkpoint mark above ``steps``, or None when checkpoints are off."""
    return None if every <= 0 else (steps // every + 1) * every


def _check_run_directory(directory: Path, resume: bool) -> None:
    has_run = (directory / "config.yaml").is_file()
    if resume and not has_run:
        raise FileNotFoundError(
            f"nothing to resume in {str(directory)!r}: it has no config.yaml; start a new run "
            "without --resume"
        )
    if has_run and not resume:
        raise FileExistsError(
            f"{str(directory)!r} already contains a run; pass --resume to continue it or choose "
            "another --run-dir"
        )
    if resume and (directory / "provenance.json").is_file() and not is_rllib_run(directory):
        raise ValueError(
            f"{str(directory)!r} was trained by another backend; resume it without --backend rllib"
        )


# --------------------------------------------------------------------------------------------
# Evaluation.


def evaluate_rllib_run(
    run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> EvaluationResult:
    """Evaluate the newest checkpoint of an RLlib run on the config's held-out seeds.

    Each role's module acts through :class:`~ledgerzoo.agents.rllib.RLlibPolicy`, and the
    metrics come from ledgerzoo's evaluator, as for every other policy. Writes metrics.json,
    metrics.csv and rates.png to ``out_dir`` (default ``RUN_DIR/eval``).

    Raises:
        FileNotFoundError: If the run has no config.yaml or no checkpoint.
    """
    from ledgerzoo.agents.rllib import load_rllib_policy
    from ledgerzoo.training.train import run_config_path

    directory = Path(run_dir)
    config = load_config(run_config_path(directory))
    checkpoint = latest_rllib_checkpoint(directory)
    if checkpoint is None:
        raise FileNotFoundError(
            f"no checkpoint in {str(directory / 'checkpoints')!r}; finish or resume the run "
            f"with 'ledgerzoo train --resume {directory} --backend rllib'"
        )
    layout = market_layout(config.env.name, config.env.kwargs)
    policy = load_rllib_policy(
        checkpoint, list(layout.roles), deterministic=config.eval.deterministic
    )
    result = evaluate_on_config(config, policy, f"RLlib PPO ({directory.name})")
    write_results(result, Path(out_dir) if out_dir is not None else directory / "eval")
    return result


# --------------------------------------------------------------------------------------------
# Files of the run directory.


def _progress_row(
    result: Mapping[str, Any], agent_steps: int, env_steps: int, seconds: float
) -> dict[str, Any]:
    runners = result.get("env_runners", {})
    row: dict[str, Any] = {
        "iteration": int(result.get("training_iteration", 0)),
        "agent_steps": agent_steps,
        "env_steps": env_steps,
        "seconds": seconds,
        "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
    }
    for role, value in sorted(runners.get("module_episode_returns_mean", {}).items()):
        row[f"episode_return_mean/{role}"] = float(value)
    for role, values in sorted(result.get("learners", {}).items()):
        if isinstance(values, Mapping) and "default_optimizer_learning_rate" in values:
            row[f"learning_rate/{role}"] = float(values["default_optimizer_learning_rate"])
    return row


def _read_progress(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def _format_progress(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_provenance(
    directory: Path,
    config: ExperimentConfig,
    address: str | None,
    num_env_runners: int,
    ray: Any,
) -> None:
    provenance = {"backend": BACKEND, **run_header(PROVENANCE_PACKAGES)}
    provenance.update(
        ray={
            "address": address or "local",
            "nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
            "cluster_cpus": ray.cluster_resources().get("CPU"),
            "num_env_runners": num_env_runners,
        },
        seeds={
            "train_seed": config.train.seed,
            "training_env_seeds": training_env_seeds(config, num_env_runners),
            "eval_seed": config.eval.seed,
            "eval_episode_seeds": evaluation_seeds(config.eval.seed, config.eval.episodes),
            # RLlib orders agents by string hashing, so a run repeats only with the same value.
            "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
        },
    )
    save_provenance(directory, provenance)


def _require_rllib(module: str) -> Any:
    """Import a module of the rllib extra, or explain how to install the extra."""
    if module.split(".")[0] == "torch" and importlib.util.find_spec("torch") is None:
        # _extras.require would name the train extra for torch.
        raise ImportError(
            f"the RLlib backend needs the optional dependency 'torch', which is not installed. "
            f"{INSTALL_HINT}"
        )
    return require(module, "the RLlib backend")
