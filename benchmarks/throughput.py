"""Measure the step throughput of every market, in live agent-steps per second.

Usage:
    python benchmarks/throughput.py [--markets NAME ...] [--batch-sizes 1,16,256,4096]
        [--seconds S] [--quick] [--json] [--clock cpu|wall]
        [--baseline auto|supersuit|loop] [--reference] [--profile DIR]

For each market and batch size B it times, in one process:

- array: ``BatchedMarket.step(actions)`` of ``registry.market_class(name)(num_instances=B)``,
  arrays in and arrays out, with ``reset()`` when the episode ends;
- vecenv: the stable-baselines3 step of ``VecMonitor(RoleVecEnv(market, role))``, as
  ``ledgerzoo train`` builds it, with its info lists and its auto-reset;
- baseline: the market's PettingZoo env through SuperSuit's ``pettingzoo_env_to_vec_env_v1``
  and ``concat_vec_envs_v1`` (B copies, one process), or, where SuperSuit cannot wrap it, B
  PettingZoo envs stepped in a Python loop;
- kernel: a bare numpy expression of the step's economics (see ``_kernels.py``), checked
  against the market's rewards and balances on the first steps.

Only agents of the roles that act in a step count (``acting_roles()``). Actions are legal
random actions recorded beforehand (``_markets.make_plan``), so no layer draws actions while
it is timed. Each layer takes up to two warm-up steps (one when a step outlasts the budget),
then times single steps until ``--seconds`` of wall time pass, and at least two. A layer's
time per episode is (S - 1) x the median ordinary step plus the median step that ends an
episode (its auto-reset included), S being the steps per episode.

The array, VecEnv and kernel layers go on past the budget until they have timed a whole
episode, so that their medians cover every round. The baseline stops at the budget. When it
has not reached the end of an episode by then, its reset is timed on its own and added to a
median step ("reset timed separately" in the output). At large B its median then comes from
the first rounds of an episode only.

Every step is timed by two clocks: this process's CPU time (the default for tables, ratios
and targets, because other processes on a shared machine inflate wall time) and wall time.
Both are in the JSON output. CPU time adds up every thread of the process, so it would
exceed wall time in a multithreaded BLAS call. The markets' elementwise numpy code runs on
one thread.

Tests never assert on these numbers: they depend on the machine and on its load.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _kernels
import _markets

import ledgerzoo
from ledgerzoo.envs.core.market import BatchedMarket
from ledgerzoo.envs.core.seeding import instance_seeds

DEFAULT_BATCH_SIZES = (1, 16, 256, 4096)
QUICK_BATCH_SIZES = (1, 16)
DEFAULT_SECONDS = 2.0
QUICK_SECONDS = 0.1
SEED = 0
WARMUP_STEPS = 2
# Fewest timed ordinary steps per layer, whatever the time budget.
MIN_TIMED_STEPS = 2
# Steps the kernel is checked against the market, from a seeded reset.
CHECK_STEPS = 3
# Upper bound on the memory that the recorded actions of one batch size may take.
MAX_PLAN_BYTES = 256 * 2**20
TARGET_BATCH = 4096


# --------------------------------------------------------------------------------------------
# Layers: each replays the plan from a seeded reset, one step per call.


class Layer:
    """One way of stepping B instances of a market, replaying an :class:`ActionPlan`."""

    name = ""
    description = ""

    def restart(self) -> None:
        """Reset every instance with the plan's seeds (untimed)."""
        raise NotImplementedError

    def prepare(self, index: int) -> None:
        """Convert the plan's actions of step ``index`` to this layer's input (untimed)."""

    def step(self, index: int) -> None:
        """Play step ``index`` of the plan, with the auto-reset that ends an episode."""
        raise NotImplementedError

    def reset(self) -> None:
        """Reset every instance as the auto-reset at the end of an episode does."""
        raise NotImplementedError


class ArrayLayer(Layer):
    name = "array"
    description = "BatchedMarket.step, arrays in and out, reset() at the horizon"

    def __init__(self, market: BatchedMarket, plan: _markets.ActionPlan) -> None:
        self.market = market
        self.plan = plan

    def restart(self) -> None:
        self.market.seed(instance_seeds(self.plan.seed, self.market.num_instances))
        self.market.reset()

    def step(self, index: int) -> None:
        self.market.step(self.plan.steps[index])
        if self.market.round >= self.market.max_cycles:
            self.market.reset()

    def reset(self) -> None:
        self.market.reset()


class VecEnvLayer(Layer):
    name = "vecenv"
    description = "VecMonitor(RoleVecEnv).step, as ledgerzoo train builds it"

    def __init__(self, setting: _markets.MarketSetting, batch: int, plan: _markets.ActionPlan):
        from stable_baselines3.common.vec_env import VecMonitor

        from ledgerzoo.envs.core.vector import RoleVecEnv

        market = _markets.build_market(setting, batch)
        if len(market.roles) != 1:
            raise ValueError(
                f"{setting.name} has roles {[r.name for r in market.roles]}; the benchmark "
                "builds the VecEnv of a market with one role (analytic followers)"
            )
        self.role = market.roles[0]
        self.env = VecMonitor(RoleVecEnv(market, self.role.name, {}))
        self.plan = plan
        self.actions = np.empty(0)

    def restart(self) -> None:
        self.env.seed(self.plan.seed)
        self.env.reset()

    def prepare(self, index: int) -> None:
        actions = self.plan.steps[index][self.role.name]
        self.actions = actions.reshape(self.env.num_envs, *self.role.action_space.shape)

    def step(self, index: int) -> None:
        self.env.step(self.actions)

    def reset(self) -> None:
        self.env.reset()


class SuperSuitLayer(Layer):
    name = "supersuit"
    description = (
        "PettingZoo env through supersuit pettingzoo_env_to_vec_env_v1 + "
        "concat_vec_envs_v1(num_cpus=0, base_class='stable_baselines3')"
    )

    def __init__(self, setting: _markets.MarketSetting, batch: int, plan: _markets.ActionPlan):
        import supersuit

        env = ledgerzoo.make(setting.name, **setting.kwargs)
        roles = {agent.rsplit("_", 1)[0] for agent in env.possible_agents}
        if len(roles) != 1:
            raise ValueError(
                f"pettingzoo_env_to_vec_env_v1 needs agents of one role, got roles {sorted(roles)}"
            )
        self.role = roles.pop()
        vector = supersuit.pettingzoo_env_to_vec_env_v1(env)
        self.env = supersuit.concat_vec_envs_v1(
            vector, batch, num_cpus=0, base_class="stable_baselines3"
        )
        self.plan = plan
        self.batch = batch
        self.action_shape = env.action_space(env.possible_agents[0]).shape
        self.actions = np.empty(0)

    def _sub_envs(self) -> list[Any]:
        return list(self.env.venv.vec_envs)

    def restart(self) -> None:
        # SuperSuit's own reset(seed) seeds copy i with seed + i. The vector face gives
        # instance b the seed instance_seeds(seed, B)[b], so the copies are reset one by one.
        seeds = instance_seeds(self.plan.seed, self.batch)
        for sub_env, seed in zip(self._sub_envs(), seeds, strict=True):
            sub_env.reset(seed=seed)

    def prepare(self, index: int) -> None:
        actions = self.plan.steps[index][self.role]
        self.actions = actions.reshape(self.env.num_envs, *self.action_shape)

    def step(self, index: int) -> None:
        self.env.step(self.actions)

    def reset(self) -> None:
        for sub_env in self._sub_envs():
            sub_env.reset()


class LoopLayer(Layer):
    name = "loop"
    description = "B PettingZoo ParallelEnvs (ledgerzoo.make) stepped in a Python loop"

    def __init__(self, setting: _markets.MarketSetting, batch: int, plan: _markets.ActionPlan):
        self.envs = [ledgerzoo.make(setting.name, **setting.kwargs) for _ in range(batch)]
        self.plan = plan
        self.batch = batch
        self.actions: list[dict[str, Any]] = []

    def restart(self) -> None:
        seeds = instance_seeds(self.plan.seed, self.batch)
        for env, seed in zip(self.envs, seeds, strict=True):
            env.reset(seed=seed)

    def prepare(self, index: int) -> None:
        step = self.plan.steps[index]
        self.actions = [
            {
                agent: step[agent.rsplit("_", 1)[0]][b, int(agent.rsplit("_", 1)[1])]
                for agent in env.possible_agents
            }
            for b, env in enumerate(self.envs)
        ]

    def step(self, index: int) -> None:
        for env, actions in zip(self.envs, self.actions, strict=True):
            env.step(actions)
            if not env.agents:
                env.reset()

    def reset(self) -> None:
        for env in self.envs:
            env.reset()


class KernelLayer(Layer):
    name = "kernel"
    description = "bare numpy kernel of the step's economics (no reset)"

    def __init__(self, kernel: _kernels.Kernel, market: BatchedMarket, plan: _markets.ActionPlan):
        self.kernel = kernel
        self.market = market
        self.plan = plan
        self.role = market.acting_roles()[0]
        # The kernel never resets, so it cycles through the plan's first episode.
        self.length = min(plan.steps_per_episode, len(plan.steps))

    def restart(self) -> None:
        self.market.seed(instance_seeds(self.plan.seed, self.market.num_instances))
        self.market.reset()
        self.kernel.load(self.market)

    def step(self, index: int) -> None:
        self.kernel.step(self.plan.steps[index % self.length][self.role])

    def reset(self) -> None:
        """Do nothing, because the kernel has no reset: its episodes are only its steps."""


# --------------------------------------------------------------------------------------------
# Timing.


@dataclass
class Timing:
    """Timing of one layer at one batch size, by one clock.

    Attributes:
        layer: Layer name.
        description: What was timed.
        clock: ``cpu`` (this process's CPU time) or ``wall`` (elapsed time).
        step_seconds: Median time of a step that does not end an episode.
        horizon_seconds: Median time of a step that ends an episode, auto-reset included.
        reset_timed_separately: Whether ``horizon_seconds`` is a median step plus a reset
            timed on its own, because no step that ends an episode was timed.
        episode_seconds: (S - 1) x step_seconds + horizon_seconds.
        agent_steps_per_second: Live agent-steps of an episode / episode_seconds.
        steps_timed: Steps timed (ordinary and episode-ending).
        build_seconds: Wall time to construct the layer (not part of the throughput).
    """

    layer: str
    description: str
    clock: str
    step_seconds: float
    horizon_seconds: float
    reset_timed_separately: bool
    episode_seconds: float
    agent_steps_per_second: float
    steps_timed: int
    build_seconds: float = 0.0


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
# Clock of the progress lines on stderr.
CLOCK_SHOWN = "cpu"


def measure(
    layer: Layer,
    plan: _markets.ActionPlan,
    seconds: float,
    build_seconds: float = 0.0,
    cycles: bool = False,
    full_episode: bool = False,
) -> dict[str, Timing]:
    """Time ``layer`` on the plan by both clocks (see the module docstring for the estimate).

    Args:
        seconds: Wall-clock budget of the timed steps.
        cycles: Whether the layer may step past the plan's end (the kernel cycles through it).
        full_episode: Whether to go on past the budget until a whole episode is timed: the
            step that ends one, or S steps of a layer that cycles.

    Returns:
        The timing by each clock of :data:`CLOCKS`.
    """
    layer.restart()
    available = len(plan.steps)
    warmup = 0
    started = time.perf_counter()
    # A step slower than the whole budget has warmed up in one go (large B baselines).
    while warmup < min(WARMUP_STEPS, max(available - MIN_TIMED_STEPS, 0)):
        layer.prepare(warmup)
        layer.step(warmup)
        warmup += 1
        if time.perf_counter() - started >= seconds:
            break
    ordinary: dict[str, list[float]] = {clock: [] for clock in CLOCKS}
    horizon: dict[str, list[float]] = {clock: [] for clock in CLOCKS}
    index = warmup
    last_horizon = max((i for i, ends in enumerate(plan.horizon) if ends), default=-1)

    def enough() -> bool:
        if len(ordinary["wall"]) < MIN_TIMED_STEPS:
            return False
        if full_episode and cycles and len(ordinary["wall"]) < plan.steps_per_episode:
            return False
        if full_episode and not cycles and not horizon["wall"] and index <= last_horizon:
            return False
        return time.perf_counter() - started >= seconds

    started = time.perf_counter()
    while cycles or index < available:
        if enough():
            break
        layer.prepare(index)
        wall, cpu = time.perf_counter(), time.process_time()
        layer.step(index)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        ends_episode = not cycles and plan.horizon[index]
        target = horizon if ends_episode else ordinary
        target["wall"].append(wall)
        target["cpu"].append(cpu)
        index += 1
    if not ordinary["wall"]:
        raise RuntimeError(
            f"the plan has {available} steps, too few to time the {layer.name} layer"
        )
    reset: dict[str, float] = {}
    if not cycles and not horizon["wall"]:
        wall, cpu = time.perf_counter(), time.process_time()
        layer.reset()
        reset = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
    episode_steps = plan.steps_per_episode
    live_per_episode = statistics.mean(plan.live) * episode_steps
    timings = {}
    for clock in CLOCKS:
        step_seconds = statistics.median(ordinary[clock])
        if cycles:
            horizon_seconds = step_seconds
        elif horizon[clock]:
            horizon_seconds = statistics.median(horizon[clock])
        else:
            horizon_seconds = step_seconds + reset[clock]
        episode_seconds = (episode_steps - 1) * step_seconds + horizon_seconds
        timings[clock] = Timing(
            layer=layer.name,
            description=layer.description,
            clock=clock,
            step_seconds=step_seconds,
            horizon_seconds=horizon_seconds,
            reset_timed_separately=bool(reset),
            episode_seconds=episode_seconds,
            # A CPU clock can read 0 for a very short episode; the rate is then infinite.
            agent_steps_per_second=live_per_episode / episode_seconds
            if episode_seconds > 0
            else float("inf"),
            steps_timed=len(ordinary[clock]) + len(horizon[clock]),
            build_seconds=build_seconds,
        )
    return timings


def build_timed(factory: Callable[[], Layer]) -> tuple[Layer, float]:
    """Build a layer and return it with its construction time."""
    before = time.perf_counter()
    layer = factory()
    return layer, time.perf_counter() - before


def check_kernel(
    kernel: _kernels.Kernel, market: BatchedMarket, plan: _markets.ActionPlan
) -> _kernels.KernelCheck:
    """Step the kernel and the market on the plan's first steps and compare rewards and
    balances. The market is left mid-episode; callers restart it."""
    market.seed(instance_seeds(plan.seed, market.num_instances))
    market.reset()
    kernel.load(market)
    role = market.acting_roles()[0]
    steps = min(CHECK_STEPS, plan.steps_per_episode, len(plan.steps))
    worst_reward = worst_balance = 0.0
    for index in range(steps):
        actions = plan.steps[index]
        kernel_rewards = np.array(kernel.step(actions[role]), copy=True)
        result = market.step(actions)
        reward_error, balance_error, ok = _kernels.compare_step(
            kernel_rewards,
            kernel.balances,
            result.rewards[role],
            _kernels.market_balances(market),
        )
        worst_reward = max(worst_reward, reward_error)
        worst_balance = max(worst_balance, balance_error)
        if not ok:
            return _kernels.KernelCheck(
                False,
                index + 1,
                worst_reward,
                worst_balance,
                f"step {index}: kernel and market differ (largest reward difference "
                f"{reward_error:.3g}, largest balance difference {balance_error:.3g} coins)",
            )
    return _kernels.KernelCheck(True, steps, worst_reward, worst_balance)


# --------------------------------------------------------------------------------------------
# One market.


@dataclass
class BatchResult:
    """Timings of every layer of one market at one batch size, by both clocks."""

    batch_size: int
    timings: dict[str, dict[str, Timing]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    plan_steps: int = 0
    plan_seconds: float = 0.0

    def rate(self, layer: str, clock: str) -> float | None:
        """Return a layer's live agent-steps per second by a clock, or None if not timed."""
        timing = self.timings.get(layer, {}).get(clock)
        return None if timing is None else timing.agent_steps_per_second

    def ratios(self, clock: str) -> dict[str, float | None]:
        """Return the throughput ratios between layers by a clock (None where one is missing)."""

        def ratio(top: str, bottom: str) -> float | None:
            a, b = self.rate(top, clock), self.rate(bottom, clock)
            return None if a is None or b is None or b == 0 else a / b

        return {
            "array/baseline": ratio("array", "baseline"),
            "vecenv/baseline": ratio("vecenv", "baseline"),
            "array/kernel": ratio("array", "kernel"),
            "vecenv/kernel": ratio("vecenv", "kernel"),
            "vecenv/array": ratio("vecenv", "array"),
        }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan_limit(market: BatchedMarket) -> int:
    """Return the most steps whose recorded actions fit in MAX_PLAN_BYTES."""
    per_step = 0
    for role in market.roles:
        if role.is_discrete:
            per_step += market.num_instances * role.count * np.dtype(np.int64).itemsize
        else:
            size = int(np.prod(role.action_space.shape))
            per_step += market.num_instances * role.count * size * np.dtype(np.float32).itemsize
    return max(MAX_PLAN_BYTES // max(per_step, 1), 2 * MIN_TIMED_STEPS + WARMUP_STEPS)


def choose_baseline(
    setting: _markets.MarketSetting, batch: int, plan: _markets.ActionPlan, choice: str
) -> tuple[Layer, float, str]:
    """Build the PettingZoo baseline: SuperSuit where it can wrap the env, else the loop.

    Returns:
        The layer, its construction time and why the loop was used (empty for SuperSuit).
    """
    reason = ""
    if choice in ("auto", "supersuit"):
        try:
            layer, seconds = build_timed(lambda: SuperSuitLayer(setting, batch, plan))
            return layer, seconds, ""
        except ModuleNotFoundError as error:
            if choice == "supersuit":
                raise ModuleNotFoundError(
                    f"{error}; install it with pip install -e '.[dev]' or pass --baseline loop"
                ) from error
            reason = "SuperSuit is not installed (pip install -e '.[dev]')"
        except (AssertionError, ValueError, TypeError, AttributeError) as error:
            if choice == "supersuit":
                raise
            reason = f"SuperSuit cannot wrap the env: {type(error).__name__}: {error}"
    layer, seconds = build_timed(lambda: LoopLayer(setting, batch, plan))
    return layer, seconds, reason or "--baseline loop"


def run_batch(
    setting: _markets.MarketSetting,
    batch: int,
    seconds: float,
    baseline: str,
    profile_dir: Path | None,
    report: dict[str, Any],
) -> BatchResult:
    """Time every layer of one market at one batch size."""
    result = BatchResult(batch_size=batch)
    market = _markets.build_market(setting, batch)
    # The plan covers a whole episode and the step after its auto-reset, so the array, VecEnv
    # and kernel layers and the profile can time a whole episode.
    episode_steps = market.max_cycles * (2 if market.two_phase else 1)
    min_steps = max(WARMUP_STEPS + 2 * MIN_TIMED_STEPS, episode_steps + 1)
    plan = _markets.make_plan(
        market, SEED, budget_seconds=seconds, min_steps=min_steps, max_steps=plan_limit(market)
    )
    result.plan_steps = len(plan.steps)
    result.plan_seconds = plan.generation_seconds
    report.setdefault("steps_per_episode", plan.steps_per_episode)
    report.setdefault("live_agents_per_instance", int(plan.live[0] // batch))

    array = ArrayLayer(market, plan)
    result.timings["array"] = measure(array, plan, seconds, full_episode=True)
    log(f"  B={batch:<5} array    {result.rate('array', CLOCK_SHOWN):>14,.0f} agent-steps/s")

    kernel_type = _kernels.KERNELS.get(setting.name)
    if kernel_type is not None:
        kernel = kernel_type()
        try:
            check = check_kernel(kernel, market, plan)
            report.setdefault("kernel_checks", []).append({"batch_size": batch, **vars(check)})
            if not check.matches:
                log(f"  WARNING: {setting.name} kernel check failed: {check.message}")
            result.timings["kernel"] = measure(
                KernelLayer(kernel, market, plan), plan, seconds, cycles=True, full_episode=True
            )
            log(
                f"  B={batch:<5} kernel   {result.rate('kernel', CLOCK_SHOWN):>14,.0f} agent-steps/s"
            )
        except (ValueError, AttributeError, KeyError) as error:
            result.errors["kernel"] = f"{type(error).__name__}: {error}"
            log(f"  kernel failed: {result.errors['kernel']}")

    if profile_dir is not None:
        write_profile(setting, array, plan, profile_dir)

    try:
        vecenv, build = build_timed(lambda: VecEnvLayer(setting, batch, plan))
        result.timings["vecenv"] = measure(vecenv, plan, seconds, build, full_episode=True)
        log(f"  B={batch:<5} vecenv   {result.rate('vecenv', CLOCK_SHOWN):>14,.0f} agent-steps/s")
        del vecenv
    except ValueError as error:
        result.errors["vecenv"] = str(error)
        log(f"  vecenv skipped: {error}")

    layer, build, reason = choose_baseline(setting, batch, plan, baseline)
    report["baseline"] = layer.name
    report["baseline_reason"] = reason
    timing = measure(layer, plan, seconds, build)
    result.timings["baseline"] = timing
    log(
        f"  B={batch:<5} {layer.name:<8} {result.rate('baseline', CLOCK_SHOWN):>14,.0f} agent-steps/s "
        f"(built in {build:.1f} s)"
    )
    del layer
    return result


def write_profile(
    setting: _markets.MarketSetting, layer: ArrayLayer, plan: _markets.ActionPlan, folder: Path
) -> Path:
    """Profile the array layer over the plan with cProfile; write the top 25 by cumulative
    time to ``folder/profile_<market>.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    layer.restart()
    profiler = cProfile.Profile()
    before = time.perf_counter()
    profiler.enable()
    for index in range(len(plan.steps)):
        layer.step(index)
    profiler.disable()
    elapsed = time.perf_counter() - before
    live = sum(plan.live)

    text = io.StringIO()
    batch = layer.market.num_instances
    print(
        f"cProfile of BatchedMarket.step of {setting.name} (auto-reset at the horizon "
        f"included), B = {batch}, {len(plan.steps)} steps of {plan.steps_per_episode} per "
        "episode",
        file=text,
    )
    print(f"market kwargs: {setting.kwargs}", file=text)
    print(
        f"{live / elapsed:,.0f} live agent-steps/s under the profiler, "
        f"{elapsed / len(plan.steps) * 1e3:.2f} ms per step; {machine_summary()}",
        file=text,
    )
    print(f"command: {' '.join(sys.argv)}", file=text)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)

    path = folder / f"profile_{setting.name}.txt"
    path.write_text(text.getvalue())
    log(f"  wrote {path}")
    return path


# --------------------------------------------------------------------------------------------
# Targets.


def targets(name: str, setting: _markets.MarketSetting, report: dict[str, Any]) -> list[dict]:
    """Evaluate the throughput targets of a market at B = 4096 (the lending markets at N = 10),
    by the report's clock."""
    at_target = [row for row in report["results"] if row["batch_size"] == TARGET_BATCH]
    if not at_target:
        return []
    ratios = at_target[0]["ratios"][report["clock"]]
    baseline = report.get("baseline", "baseline")
    if name in _markets.LENDING_MARKETS:
        if setting.kwargs.get("n_lenders") != _markets.LENDERS:
            return []
        checks = [
            (f"array step vs {baseline}", "array/baseline", 100.0),
            ("array step vs bare kernel", "array/kernel", 0.25),
            (f"SB3 VecEnv step vs {baseline}", "vecenv/baseline", 30.0),
        ]
    elif name in ("offloading_v0", "data_market_v0"):
        checks = [(f"array step vs {baseline}", "array/baseline", 30.0)]
    else:
        return []
    results = []
    for label, key, required in checks:
        value = ratios.get(key)
        results.append(
            {
                "target": label,
                "ratio": key,
                "required": required,
                "measured": value,
                "met": None if value is None else bool(value >= required),
            }
        )
    return results


# --------------------------------------------------------------------------------------------
# Report.


def machine_summary() -> str:
    """Describe the machine in one line: CPU, cores, memory, Python, numpy, load."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def layer_dict(timings: dict[str, Timing]) -> dict[str, Any]:
    """Describe one layer's timings by both clocks."""
    first = next(iter(timings.values()))
    out: dict[str, Any] = {
        "description": first.description,
        "build_seconds": first.build_seconds,
        "steps_timed": first.steps_timed,
        "reset_timed_separately": first.reset_timed_separately,
    }
    for clock, timing in timings.items():
        out[clock] = {
            "agent_steps_per_second": timing.agent_steps_per_second,
            "step_seconds": timing.step_seconds,
            "horizon_step_seconds": timing.horizon_seconds,
            "episode_seconds": timing.episode_seconds,
        }
    return out


def format_rate(value: float | None) -> str:
    return f"{value:12,.0f}" if value is not None else f"{'-':>12}"


def format_ratio(value: float | None) -> str:
    return f"{value:9.2f}" if value is not None else f"{'-':>9}"


def print_text(report: dict[str, Any]) -> None:
    clock = report["clock"]
    print(f"machine: {machine_summary()}")
    print(
        f"clock: {clock}; time budget per layer: {report['seconds']} s; "
        f"reference infos: {report['reference']}"
    )
    for market in report["markets"]:
        print()
        agents = ", ".join(f"{role} x{count}" for role, count in market["agents"].items())
        source = market["config"] or "constructor defaults"
        print(f"{market['name']}: {source}, {agents}")
        baseline = market["baseline"]
        if market["baseline_reason"]:
            baseline += f" ({market['baseline_reason']})"
        print(
            f"  {market['live_agents_per_instance']} live agents per instance, "
            f"{market['steps_per_episode']} steps per episode, baseline: {baseline}"
        )
        print(
            f"  {'B':>5} {'array':>12} {'vecenv':>12} {'baseline':>12} {'kernel':>12}"
            f" {'arr/base':>9} {'vec/base':>9} {'arr/kern':>9}"
        )
        for row in market["results"]:
            layers = row["layers"]
            rates = [
                format_rate(
                    layers[name][clock]["agent_steps_per_second"] if name in layers else None
                )
                for name in ("array", "vecenv", "baseline", "kernel")
            ]
            ratios = row["ratios"][clock]
            line = f"  {row['batch_size']:>5} " + " ".join(rates) + " "
            line += " ".join(
                format_ratio(ratios[key])
                for key in ("array/baseline", "vecenv/baseline", "array/kernel")
            )
            separately = [name for name, layer in layers.items() if layer["reset_timed_separately"]]
            if separately:
                line += f"  (reset timed separately: {', '.join(separately)})"
            print(line)
            for layer, error in row["errors"].items():
                print(f"        {layer} not timed: {error}")
        for check in market.get("kernel_checks", []):
            if not check["matches"]:
                print(f"  kernel check FAILED at B={check['batch_size']}: {check['message']}")
        for target in market["targets"]:
            measured = target["measured"]
            value = "not measured" if measured is None else f"{measured:.2f}"
            verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
            print(
                f"  target at B={TARGET_BATCH}: {target['target']} >= {target['required']:g}x: "
                f"{value} -> {verdict}"
            )
    print("\nunits: live agent-steps per second; ratios compare those rates")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--markets", nargs="+", default=None, help="registry names (default: every market)"
    )
    parser.add_argument(
        "--batch-sizes",
        default=None,
        help="comma-separated batch sizes B (default 1,16,256,4096; --quick: 1,16)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"wall-clock budget of each layer at each B, in seconds (default {DEFAULT_SECONDS}, "
        f"--quick {QUICK_SECONDS})",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: B in 1,16, short budget")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="clock of the tables, ratios and targets: cpu (this process's CPU time, robust "
        "on a shared machine) or wall; JSON holds both",
    )
    parser.add_argument(
        "--baseline",
        choices=("auto", "supersuit", "loop"),
        default="auto",
        help="PettingZoo baseline: SuperSuit where it can wrap the env (auto), or always one",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="build every market with reference=True, as ledgerzoo train does when "
        "train.reference_metrics is true (its default)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="write a cProfile of the array step at the largest B to DIR/profile_<market>.txt",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    sizes = args.batch_sizes
    if sizes is None:
        args.batch_sizes = list(QUICK_BATCH_SIZES if args.quick else DEFAULT_BATCH_SIZES)
    else:
        try:
            args.batch_sizes = [int(value) for value in sizes.split(",") if value.strip()]
        except ValueError:
            parser.error(f"invalid --batch-sizes {sizes!r}: expected integers such as 1,16,256")
        if not args.batch_sizes or min(args.batch_sizes) < 1:
            parser.error(f"invalid --batch-sizes {sizes!r}: every B must be at least 1")
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else DEFAULT_SECONDS
    if args.seconds <= 0:
        parser.error(f"invalid --seconds {args.seconds}: expected a time budget above 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by parsed arguments and return the report."""
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/throughput.py", *args.argv]),
        "machine": machine(),
        "clock": args.clock,
        "seconds": args.seconds,
        "reference": args.reference,
        "batch_sizes": args.batch_sizes,
        "markets": [],
    }
    largest = max(args.batch_sizes)
    for name in _markets.market_names(args.markets):
        setting = _markets.market_setting(name, reference=args.reference)
        probe = _markets.build_market(setting, 1)
        kernel = _kernels.KERNELS.get(name)
        market_report: dict[str, Any] = {
            "name": name,
            "config": setting.config,
            "kwargs": setting.kwargs,
            "train_reference_metrics": setting.train_reference,
            "agents": {role.name: role.count for role in probe.roles},
            "kernel": None if kernel is None else (kernel.__doc__ or "").strip(),
            "clock": args.clock,
            "results": [],
        }
        log(f"{name}:")
        for batch in args.batch_sizes:
            profile_dir = args.profile if batch == largest else None
            result = run_batch(
                setting, batch, args.seconds, args.baseline, profile_dir, market_report
            )
            market_report["results"].append(
                {
                    "batch_size": batch,
                    "layers": {
                        layer: layer_dict(timings) for layer, timings in result.timings.items()
                    },
                    "ratios": {clock: result.ratios(clock) for clock in CLOCKS},
                    "errors": result.errors,
                    "plan_steps": result.plan_steps,
                    "plan_seconds": result.plan_seconds,
                }
            )
        market_report["targets"] = targets(name, setting, market_report)
        report["markets"].append(market_report)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_text(report)


if __name__ == "__main__":
    main()
