"""Training with stable-baselines3 on a market's vector face, then evaluation.

One SB3 model per trained role, shared by every agent of the role (parameter sharing), on a
:class:`~ledgerzoo.envs.core.vector.RoleVecEnv` of ``train.num_instances`` market instances.
A run directory holds::

    config.yaml        the resolved config
    provenance.json    package versions, git commit, seeds, machine, command
    checkpoints/       model_<timesteps>.zip, the newest ``train.keep_checkpoints``
                       (checkpoints/<role>/ for each role when several roles learn)
    tensorboard/       TensorBoard logs (SB3's train/ and rollout/ keys, and market/ keys)
    progress.csv       market metrics per rollout (for the learning curve)
    model.zip          the final model (model_<role>.zip for each role when several learn)
    eval/              metrics.json, metrics.csv, rates.png; learning_curve.png beside it

Every file except the TensorBoard logs is written to a temporary file in its directory and
renamed over its name, so a run killed at any moment leaves each file whole (old or new).
``train(..., resume=True)`` continues a run from its final model or newest checkpoint (see
:func:`resume_point`) and drops the rows of progress.csv past that point, which the resumed run
writes again.

A run with one trained role checkpoints its vector env and random generators too
(``checkpoints/state_<timesteps>.pkl``). Resumed from such a checkpoint, it continues exactly:
the same config and seed give the same progress.csv rows, final model and metrics whether or
not the run was stopped. A run resumed from a model without that state (the final model.zip,
a checkpoint saved on an interrupt, or a run with several learned roles) seeds its training
instances again from ``train.seed``, so their episodes do not continue where they were.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from ledgerzoo import registry
from ledgerzoo._extras import require
from ledgerzoo.training.config import ExperimentConfig, load_config, save_config
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

CHECKPOINT_PATTERN = re.compile(r"model_(\d+)\.zip$")
# Temporary files of the atomic writes (write_atomic, save_model_atomic, write_bytes_atomic and
# the plots), which a killed run can leave behind: ".<name>.<8 characters of tempfile>.<suffix>".
STALE_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.(tmp|png|partial\.zip|partial\.pkl)$")
PROVENANCE_PACKAGES = (
    "ledgerzoo",
    "numpy",
    "scipy",
    "gymnasium",
    "pettingzoo",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "tensorboard",
    "matplotlib",
    "pyyaml",
)


@dataclass
class TrainResult:
    """Outputs of a training run.

    Attributes:
        run_dir: The run directory.
        model_path: The final model.
        timesteps: Agent-steps trained in total.
        evaluation: The evaluation of the final model, if it was run.
    """

    run_dir: Path
    model_path: Path
    timesteps: int
    evaluation: EvaluationResult | None


def default_run_dir(config: ExperimentConfig, config_path: str | None = None) -> Path:
    """``runs/<env>__<config name>__seed<seed>__<UTC time>`` in the working directory."""
    stem = Path(config_path).stem if config_path else "config"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.env.name}__{stem}__seed{config.train.seed}__{stamp}"


def train(
    config: ExperimentConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    config_path: str | None = None,
    resume: bool = False,
    progress_bar: bool = True,
    evaluate_after: bool = True,
) -> TrainResult:
    """Train the config's experiment and evaluate the result against the equilibrium.

    Args:
        config: A validated experiment config.
        run_dir: Where to write the run; by default :func:`default_run_dir`.
        config_path: Path of the config file, used only to name the default run directory.
        resume: Continue the run in ``run_dir`` from its final model or newest checkpoint.
        progress_bar: Show a progress bar (needs tqdm and rich, part of the train extra).
        evaluate_after: Evaluate the final model on held-out seeds.

    Returns:
        The run directory, the model path and the evaluation.

    Raises:
        ImportError: If the train extra is missing (the message names the pip command).
        FileExistsError: If ``run_dir`` already contains a run and ``resume`` is False.
        FileNotFoundError: If ``resume`` is True and ``run_dir`` contains no run.
        ValueError: If the config asks for something training does not support.
    """
    require("stable_baselines3", "training")
    torch = require("torch", "training")
    vec_env = require("stable_baselines3.common.vec_env", "training")
    from ledgerzoo.envs.core.vector import RoleVecEnv
    from ledgerzoo.training.algorithms import algorithm_class
    from ledgerzoo.training.callbacks import (
        AtomicCheckpointCallback,
        MarketMetricsCallback,
        restore_random_state,
        restore_training_state,
        save_model_atomic,
        trim_progress,
    )

    directory = Path(run_dir) if run_dir is not None else default_run_dir(config, config_path)
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
    settings = config.train
    market_kwargs = {**config.env.kwargs, "reference": settings.reference_metrics}
    market_type = registry.market_class(config.env.name)
    probe = market_type(num_instances=1, **market_kwargs)
    roles = [role.name for role in probe.roles]
    directory.mkdir(parents=True, exist_ok=True)
    if not resume:
        save_config(config, directory / "config.yaml")
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)

    # One market, vector env and model per trained role. Each role's vector env plays the other
    # roles with their current models, frozen while this role updates (looked up at call time).
    algorithms = {
        role.name: algorithm_class(role_algorithm(settings.algorithm, probe, role.name))
        for role in probe.roles
    }
    models: dict[str, Any] = {}
    role_envs: dict[str, Any] = {}
    venvs: dict[str, Any] = {}
    training_seeds: list[int] = []
    for role in roles:
        others = {other: _frozen_policy(models, other) for other in roles if other != role}
        role_env = RoleVecEnv(
            market_type(num_instances=settings.num_instances, **market_kwargs), role, others
        )
        training_seeds = [int(seed) for seed in role_env.seed(settings.seed) if seed is not None]
        role_envs[role] = role_env
        venvs[role] = vec_env.VecMonitor(role_env)
    single = len(roles) == 1
    starts = _resume_models(directory, roles) if resume else {}
    if resume:
        _remove_stale_temporaries(directory)
    # Runs with one learned role resume exactly from a checkpoint with a saved state.
    states = {role: state for role in starts if (state := _resume_state(starts[role], single))}
    for role, state in states.items():
        role_envs[role], venvs[role] = restore_training_state(state)
    _write_provenance(directory, config, training_seeds, starts, states)
    for role in roles:
        tensorboard_dir = str(directory / "tensorboard")
        if role in starts:
            logger.info("resuming %s from %s", role, starts[role])
            models[role] = _load_model(
                algorithms[role], starts[role], venvs[role], role in states, settings.device
            )
            models[role].tensorboard_log = tensorboard_dir
        else:
            models[role] = _new_model(algorithms[role], venvs[role], config, tensorboard_dir)
    # Loading or building a model seeds the global generators, so they are restored last.
    for role, state in states.items():
        if state["timesteps"] != int(models[role].num_timesteps):
            raise ValueError(
                f"the training state of {starts[role]} is at {state['timesteps']} agent-steps "
                f"but the model at {models[role].num_timesteps}; delete the checkpoint to "
                "resume from an earlier one"
            )
        restore_random_state(state)
    if resume:
        dropped = trim_progress(
            directory / "progress.csv",
            {role: int(models[role].num_timesteps) for role in roles},
        )
        if dropped:
            logger.info("dropped %d rows of progress.csv past the resume point", dropped)

    checkpoints = {
        role: AtomicCheckpointCallback(
            directory / "checkpoints" / ("" if single else role),
            settings.checkpoint_every,
            settings.keep_checkpoints,
            save_state=single,
        )
        for role in roles
    }
    progress = directory / "progress.csv"
    callbacks = {
        role: [checkpoints[role], MarketMetricsCallback(role_envs[role], progress)]
        for role in roles
    }
    done = sum(int(models[role].num_timesteps) for role in roles)
    remaining = settings.total_timesteps - done
    rollouts = {role: venvs[role].num_envs * settings.n_steps for role in roles}
    if remaining <= 0:
        logger.warning(
            "%s already has %d agent-steps of the %d requested; nothing left to train",
            directory,
            done,
            settings.total_timesteps,
        )
    elif remaining < min(rollouts.values()):
        logger.warning(
            "%d agent-steps requested, but one rollout is %d (slots x n_steps %d); SB3 trains "
            "whole rollouts, so more agent-steps will be trained",
            remaining,
            min(rollouts.values()),
            settings.n_steps,
        )
    started = time.perf_counter()
    fresh = {role: role not in starts for role in roles}
    try:
        while remaining > 0:
            for role in roles:
                # One role alone trains its whole budget; several roles take turns.
                turn = remaining if single else settings.alternate_rollouts * rollouts[role]
                before = int(models[role].num_timesteps)
                models[role].learn(
                    total_timesteps=min(turn, remaining),
                    callback=callbacks[role],
                    reset_num_timesteps=fresh[role],
                    tb_log_name=role if not single else settings.algorithm.lower(),
                    progress_bar=single and progress_bar and _has_progress_bar(),
                )
                fresh[role] = False
                remaining -= int(models[role].num_timesteps) - before
                if not single:
                    save_model_atomic(models[role], directory / f"model_{role}.zip")
                if remaining <= 0:
                    break
    except KeyboardInterrupt:
        for role in roles:
            checkpoints[role].save_now(models[role])
        logger.warning("training interrupted; resume with --resume %s", directory)
        raise
    elapsed = time.perf_counter() - started
    for role in roles:
        save_model_atomic(models[role], _model_path(directory, role, single))
    model_path = _model_path(directory, roles[0], single)
    timesteps = sum(int(models[role].num_timesteps) for role in roles)
    update_provenance(directory, {"train_seconds": elapsed, "timesteps": timesteps})

    from ledgerzoo.training.plots import plot_learning_curve

    plot_learning_curve(directory / "progress.csv", directory / "learning_curve.png")
    evaluation = None
    if evaluate_after:
        evaluation = evaluate_run(directory)
    return TrainResult(directory, model_path, timesteps, evaluation)


def evaluate_run(
    run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> EvaluationResult:
    """Evaluate the final model of a run on the config's held-out seeds.

    Writes metrics.json, metrics.csv and rates.png to ``out_dir`` (default ``RUN_DIR/eval``).

    Raises:
        FileNotFoundError: If the run has no config.yaml or no model.zip.
    """
    from ledgerzoo.agents.base import RolePolicies
    from ledgerzoo.agents.sb3 import SB3Policy

    directory = Path(run_dir)
    config = load_config(run_config_path(directory))
    market = registry.market_class(config.env.name)(num_instances=1, **config.env.kwargs)
    roles = [role.name for role in market.roles]
    single = len(roles) == 1
    policies = {}
    for role in roles:
        model_path = _model_path(directory, role, single)
        if not model_path.is_file():
            raise FileNotFoundError(
                f"no {model_path.name} in {str(directory)!r}; finish or resume the run with "
                f"'ledgerzoo train --resume {directory}'"
            )
        policies[role] = SB3Policy.load(
            str(model_path),
            role,
            role_algorithm(config.train.algorithm, market, role),
            deterministic=config.eval.deterministic,
        )
    policy: Any = policies[roles[0]] if single else RolePolicies(policies)
    result = evaluate_on_config(config, policy, f"{config.train.algorithm} ({directory.name})")
    write_results(result, Path(out_dir) if out_dir is not None else directory / "eval")
    return result


def role_algorithm(algorithm: str, market: Any, role: str) -> str:
    """Return the algorithm that trains ``role``: the config's, except that MaskablePPO
    (Discrete actions only) trains the Box roles of the same market with PPO.

    Raises:
        ValueError: If a role with action masks would be trained without MaskablePPO.
    """
    masked = role in getattr(market, "masked_roles", ())
    if algorithm == "MaskablePPO":
        return algorithm if masked else "PPO"
    if masked:
        raise ValueError(
            f"role {role!r} of {market.name} has action masks; set train.algorithm to "
            f"MaskablePPO (got {algorithm})"
        )
    return algorithm


def _model_path(directory: Path, role: str, single: bool) -> Path:
    """Return model.zip for a one-role run, model_<role>.zip for each role of a role-based run."""
    return directory / ("model.zip" if single else f"model_{role}.zip")


def _frozen_policy(models: dict[str, Any], role: str) -> Any:
    """Wrap a role's current model as a frozen policy on batched observations (mean actions,
    or the most likely allowed choice of a masked Discrete role)."""

    def act(observations: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        batch, count = observations.shape[:2]
        flat = observations.reshape(batch * count, *observations.shape[2:])
        if masks is None:
            actions, _ = models[role].predict(flat, deterministic=True)
            if isinstance(models[role].action_space, gymnasium.spaces.Discrete):
                return np.asarray(actions).reshape(batch, count)
            return np.asarray(actions).reshape(batch, count, -1)
        flat_masks = masks.reshape(batch * count, masks.shape[-1])
        actions, _ = models[role].predict(flat, deterministic=True, action_masks=flat_masks)
        return np.asarray(actions).reshape(batch, count)

    return act


def _resume_models(directory: Path, roles: list[str]) -> dict[str, Path]:
    """Find the model each role resumes from: the run's final model or newest checkpoint."""
    if len(roles) == 1:
        point = resume_point(directory)
        return {} if point is None else {roles[0]: point}
    starts = {}
    for role in roles:
        path = directory / f"model_{role}.zip"
        newest = latest_checkpoint(directory / "checkpoints" / role, nested=False)
        # The newer file wins: an interrupt mid-turn saves a checkpoint after the last
        # model_<role>.zip.
        candidates = [c for c in (path, newest) if c is not None and c.is_file()]
        if candidates:
            starts[role] = max(candidates, key=lambda candidate: candidate.stat().st_mtime_ns)
    return starts


def _load_model(algorithm: Any, path: Path, venv: Any, exact: bool, device: str) -> Any:
    """Load a role's model to resume training from.

    With ``exact`` the model keeps its last observations, which belong to ``venv``, restored
    from the same checkpoint. It is loaded without an env and attached afterwards, because
    loading with an env seeds that env again (SB3 calls ``env.seed(model.seed)``). Otherwise
    SB3 resets ``venv``, seeded again from train.seed, before training.
    """
    if exact:
        model = algorithm.load(str(path), device=device)
        model.set_env(venv, force_reset=False)
        return model
    return algorithm.load(str(path), env=venv, device=device)


def _resume_state(start: Path, single: bool) -> dict[str, Any] | None:
    """Return the saved training state of a checkpoint a one-role run resumes from, if any."""
    from ledgerzoo.training.callbacks import load_training_state, training_state_path

    if not single or not CHECKPOINT_PATTERN.search(start.name):
        return None
    path = training_state_path(start)
    if not path.is_file():
        return None
    state = load_training_state(path)
    if state is None:
        logger.warning("%s has another format version; resuming without it", path)
    return state


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files that a killed run left in its directory."""
    for path in directory.rglob(".*"):
        if path.is_file() and STALE_TEMPORARY.match(path.name) and "tensorboard" not in path.parts:
            logger.info("removing %s, left by an interrupted write", path)
            path.unlink(missing_ok=True)


def run_config_path(directory: Path) -> Path:
    """Return the config.yaml of a run directory, or explain that it is not one."""
    path = directory / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(directory)!r} is not a run directory: it has no config.yaml; pass a "
            "directory written by 'ledgerzoo train'"
        )
    return path


def resume_point(run_dir: str | os.PathLike[str]) -> Path | None:
    """Return the model a resumed run starts from: the final model.zip when it is at least as
    far as the newest checkpoint, else that checkpoint, else None."""
    directory = Path(run_dir)
    checkpoint = latest_checkpoint(directory)
    final = directory / "model.zip"
    final_steps = read_json(directory / "provenance.json").get("timesteps")
    if final.is_file() and isinstance(final_steps, int):
        checkpoint_steps = -1
        if checkpoint is not None:
            match = CHECKPOINT_PATTERN.search(checkpoint.name)
            checkpoint_steps = int(match.group(1)) if match else -1
        if final_steps >= checkpoint_steps:
            return final
    return checkpoint


def latest_checkpoint(run_dir: str | os.PathLike[str], nested: bool = True) -> Path | None:
    """Return the newest checkpoint of a run (in RUN_DIR/checkpoints, or in the folder itself
    when ``nested`` is False), or None."""
    folder = Path(run_dir) / "checkpoints" if nested else Path(run_dir)
    found = [
        (int(match.group(1)), path)
        for path in folder.glob("model_*.zip")
        if (match := CHECKPOINT_PATTERN.search(path.name))
    ]
    return max(found)[1] if found else None


# --------------------------------------------------------------------------------------------


def _new_model(algorithm: Any, venv: Any, config: ExperimentConfig, tensorboard_dir: str) -> Any:
    settings = config.train
    policy_kwargs: dict[str, Any] = {"net_arch": list(settings.net_arch)}
    learning_rate: Any = settings.learning_rate
    if settings.learning_rate_schedule == "linear":
        # SB3 calls the schedule with the remaining progress, from 1 at the start to 0 at the end.
        learning_rate = linear_schedule(settings.learning_rate)
    kwargs: dict[str, Any] = {
        "learning_rate": learning_rate,
        "gamma": settings.gamma,
        "gae_lambda": settings.gae_lambda,
        "ent_coef": settings.ent_coef,
        "vf_coef": settings.vf_coef,
        "max_grad_norm": settings.max_grad_norm,
        "n_steps": settings.n_steps,
    }
    if settings.algorithm in ("PPO", "RecurrentPPO", "MaskablePPO"):
        kwargs.update(
            batch_size=settings.batch_size,
            n_epochs=settings.n_epochs,
            clip_range=settings.clip_range,
        )
    if isinstance(venv.action_space, gymnasium.spaces.Box):
        # The initial exploration noise of a Gaussian policy; Discrete actions have none.
        policy_kwargs["log_std_init"] = settings.log_std_init
    policy = "MlpLstmPolicy" if settings.algorithm == "RecurrentPPO" else "MlpPolicy"
    return algorithm(
        policy,
        venv,
        policy_kwargs=policy_kwargs,
        tensorboard_log=tensorboard_dir,
        seed=settings.seed,
        device=settings.device,
        verbose=0,
        **kwargs,
    )


def linear_schedule(initial: float) -> Any:
    """Return a learning rate that decays linearly from ``initial`` to 0 over training."""

    def schedule(progress_remaining: float) -> float:
        return initial * progress_remaining

    return schedule


def _has_progress_bar() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("rich", "tqdm"))


def _write_provenance(
    directory: Path,
    config: ExperimentConfig,
    training_seeds: Any,
    starts: dict[str, Path],
    states: dict[str, Any],
) -> None:
    """Write provenance.json, keeping the provenance of earlier sessions under "previous"."""
    evaluation = evaluation_seeds(config.eval.seed, config.eval.episodes)
    overlap = set(evaluation) & set(int(s) for s in training_seeds)
    if overlap:
        raise ValueError(f"held-out evaluation seeds overlap the training seeds: {sorted(overlap)}")
    provenance = run_header(PROVENANCE_PACKAGES)
    provenance.update(
        seeds={
            "train_seed": config.train.seed,
            "training_instance_seeds": [int(s) for s in training_seeds],
            "eval_seed": config.eval.seed,
            "eval_episode_seeds": evaluation,
        }
    )
    if starts:
        provenance["resumed_from"] = {
            role: {
                "model": str(path.relative_to(directory)),
                "exact": role in states,
            }
            for role, path in starts.items()
        }
    save_provenance(directory, provenance)
