"""The ``ledgerzoo`` command: a thin layer over :mod:`ledgerzoo.training` and the registry.

Commands: ``train``, ``evaluate``, ``solve``, ``sweep``, ``list``. Each calls one documented
function (:func:`ledgerzoo.training.train.train`, :func:`~ledgerzoo.training.train.evaluate_run`,
:func:`~ledgerzoo.training.evaluate.evaluate_config`, :func:`ledgerzoo.training.solve.solve`,
:func:`ledgerzoo.training.sweep.sweep`, :func:`ledgerzoo.list_envs`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ledgerzoo import __version__, registry
from ledgerzoo.training.config import ConfigError, ExperimentConfig, load_config

logger = logging.getLogger("ledgerzoo")

# Per-lender columns of the solve table, when the market's result has them.
SOLVE_COLUMNS = ("rates", "loans", "investments", "lender_utilities")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success, 2 on bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except (
        ConfigError,
        ValueError,
        KeyError,
        FileNotFoundError,
        FileExistsError,
        ImportError,
    ) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"ledgerzoo {args.command}: error: {message}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerzoo",
        description="Multi-agent markets of blockchain-supported IoT economies, with their "
        "analytic equilibria.",
    )
    parser.add_argument("--version", action="version", version=f"ledgerzoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train on a config, then evaluate the result")
    train.add_argument(
        "config", nargs="?", help="YAML experiment config (not needed with --resume)"
    )
    train.add_argument(
        "--run-dir", help="run directory (default: runs/<env>__<config>__seed<s>__<time>)"
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its final model or newest checkpoint",
    )
    train.add_argument(
        "--total-timesteps", type=int, help="override train.total_timesteps (agent-steps)"
    )
    train.add_argument("--seed", type=int, help="override train.seed")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    train.add_argument(
        "--backend",
        choices=("sb3", "rllib"),
        default=None,
        help="training library: sb3 (stable-baselines3, the default) or rllib (Ray RLlib, needs "
        "ledgerzoo[rllib]); a resumed run keeps the backend it was trained with",
    )
    train.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="with --backend rllib: address of an existing Ray cluster, for example "
        "HEAD:6379 (default: start a local Ray instance)",
    )
    train.add_argument(
        "--num-env-runners",
        type=int,
        metavar="K",
        help="with --backend rllib: Ray actors that sample the envs (default 0: sample in "
        "this process)",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", help="measure a trained run or a policy against the equilibrium"
    )
    evaluate.add_argument("target", help="a run directory, or a YAML config used with --policy")
    evaluate.add_argument(
        "--policy",
        default=None,
        help="with a config: equilibrium, best_response, random, fixed, or package.module:attribute",
    )
    evaluate.add_argument("--episodes", type=int, help="override eval.episodes (held-out seeds)")
    evaluate.add_argument(
        "--out", help="output directory (default: RUN_DIR/eval, or runs/eval-<policy>-<time>)"
    )
    evaluate.set_defaults(handler=_evaluate)

    solve = commands.add_parser(
        "solve", help="print the analytic equilibrium of a config's scenario"
    )
    solve.add_argument("config", help="YAML experiment config")
    solve.add_argument("--json", action="store_true", help="print JSON instead of a table")
    solve.add_argument(
        "--method",
        default=None,
        help="solver method of the market: best_response (default) or gradient for "
        "lending_one_to_one_v0; reference (default) or psi for lending_one_to_many_v0; "
        "best_response for offloading_v0",
    )
    solve.add_argument(
        "--seed", type=int, help="seed of parameters drawn from ranges (default: eval.seed)"
    )
    solve.set_defaults(handler=_solve)

    sweep = commands.add_parser(
        "sweep",
        help="equilibrium (and with --train, trained policies) across a grid of config values, "
        "with a CSV and plots",
    )
    sweep.add_argument("config", help="YAML experiment config, with or without a sweep section")
    sweep.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="sweep a dotted config key over values, for example env.kwargs.n_lenders=2,5,10; "
        "give one or two. When every key is in the config's sweep.grid, only their values "
        "change; otherwise the --set keys form the whole grid",
    )
    sweep.add_argument(
        "--train",
        action="store_true",
        help="also train each grid point with the config's train section and evaluate it",
    )
    sweep.add_argument(
        "--total-timesteps",
        type=int,
        help="with --train: agent-steps per grid point (overrides train.total_timesteps)",
    )
    sweep.add_argument(
        "--method", default=None, help="solver method of the market, as for 'ledgerzoo solve'"
    )
    sweep.add_argument("--out", help="output directory (default: runs/sweep-<name>-<UTC time>)")
    sweep.set_defaults(handler=_sweep)

    listing = commands.add_parser("list", help="list the registered environments")
    listing.set_defaults(handler=_list)
    return parser


def _train(args: argparse.Namespace) -> int:
    from ledgerzoo.training.config import validate
    from ledgerzoo.training.train import run_config_path, train

    if args.resume:
        if args.config:
            raise ValueError("give either a config or --resume RUN_DIR, not both")
        config = load_config(run_config_path(Path(args.resume)))
        run_dir = args.resume
    elif args.config:
        config = load_config(args.config)
        run_dir = args.run_dir
    else:
        raise ValueError(
            "missing config: run 'ledgerzoo train CONFIG' or 'ledgerzoo train --resume RUN_DIR'"
        )
    if args.total_timesteps is not None:
        config.train.total_timesteps = args.total_timesteps
    if args.seed is not None:
        config.train.seed = args.seed
    validate(config)
    if _train_backend(args) == "rllib":
        return _train_rllib(args, config, run_dir)
    result = train(
        config,
        run_dir,
        config_path=args.config,
        resume=bool(args.resume),
        progress_bar=not args.no_progress,
        evaluate_after=not args.no_eval,
    )
    print(f"run directory: {result.run_dir}")
    models = sorted(result.run_dir.glob("model*.zip"))
    print(f"models: {', '.join(str(path) for path in models)} ({result.timesteps} agent-steps)")
    if result.evaluation is not None:
        print(result.evaluation.table())
        print(f"metrics: {result.run_dir / 'eval' / 'metrics.json'}")
    return 0


def _train_backend(args: argparse.Namespace) -> str:
    """Return the backend of ``ledgerzoo train``: --backend, else the resumed run's, else sb3.

    Raises:
        ValueError: If --backend differs from a resumed run's backend, or an RLlib option is
            given to the SB3 backend.
    """
    from ledgerzoo.training.rllib import is_rllib_run

    trained_with = None
    if args.resume and (Path(args.resume) / "provenance.json").is_file():
        trained_with = "rllib" if is_rllib_run(args.resume) else "sb3"
    backend = args.backend or trained_with or "sb3"
    if trained_with is not None and backend != trained_with:
        raise ValueError(
            f"--backend {backend} cannot resume {args.resume!r}, which was trained with "
            f"--backend {trained_with}"
        )
    if backend != "rllib":
        given = [
            option
            for option, value in (
                ("--address", args.address),
                ("--num-env-runners", args.num_env_runners),
            )
            if value is not None
        ]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise ValueError(f"{' and '.join(given)} {verb} only with --backend rllib")
    return backend


def _train_rllib(args: argparse.Namespace, config: ExperimentConfig, run_dir: str | None) -> int:
    from ledgerzoo.training.rllib import train_rllib

    num_env_runners = 0 if args.num_env_runners is None else args.num_env_runners
    if num_env_runners < 0:
        raise ValueError(f"invalid --num-env-runners {num_env_runners}: expected 0 or more")
    result = train_rllib(
        config,
        run_dir,
        config_path=args.config,
        resume=bool(args.resume),
        address=args.address,
        num_env_runners=num_env_runners,
        progress=not args.no_progress,
        evaluate_after=not args.no_eval,
    )
    print(f"run directory: {result.run_dir}")
    print(
        f"checkpoint: {result.checkpoint} ({result.timesteps} agent-steps, "
        f"{result.env_steps} env steps)"
    )
    if result.evaluation is not None:
        print(result.evaluation.table())
        print(f"metrics: {result.run_dir / 'eval' / 'metrics.json'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ledgerzoo.training.evaluate import evaluate_config
    from ledgerzoo.training.rllib import evaluate_rllib_run, is_rllib_run
    from ledgerzoo.training.train import evaluate_run

    target = Path(args.target)
    if target.is_dir():
        if args.policy is not None:
            raise ValueError(
                "--policy applies to a config; a run directory is evaluated with its own model"
            )
        if args.episodes is not None:
            raise ValueError(
                "--episodes applies to a config; a run uses the episodes of its config"
            )
        if is_rllib_run(target):
            result = evaluate_rllib_run(target, args.out)
        else:
            result = evaluate_run(target, args.out)
        out = Path(args.out) if args.out else target / "eval"
    else:
        config = load_config(target)
        if args.episodes is not None:
            if args.episodes < 1:
                raise ValueError(f"invalid --episodes {args.episodes}: expected at least 1")
            config.eval.episodes = args.episodes
        policy = args.policy or "equilibrium"
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        safe = policy.replace(":", "-").replace("/", "-")
        out = Path(args.out) if args.out else Path("runs") / f"eval-{safe}-{stamp}"
        result = evaluate_config(config, policy, out)
    print(result.table())
    print(f"metrics: {out / 'metrics.json'}")
    return 0


def _solve(args: argparse.Namespace) -> int:
    from ledgerzoo.training.solve import solve

    config = load_config(args.config)
    result = solve(config, method=args.method, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return 0
    if "profile" in result:
        _print_profile(result)
        return 0
    if "allocation" in result:
        _print_auction(result)
        return 0
    print(
        f"{result['env']}: equilibrium by {result['method']} in {result['iterations']} iterations"
        f" (converged: {result['converged']})"
    )
    if result.get("drawn_parameters"):
        print(f"parameters drawn from the config's ranges with seed {result['seed']}")
    columns = [key for key in SOLVE_COLUMNS if key in result]
    print(f"{'lender':<10}" + "".join(f"{key:>18}" for key in columns))
    for index in range(len(result["rates"])):
        values = "".join(f"{result[key][index]:>18.6g}" for key in columns)
        marker = "  optimal" if index == result.get("optimal_lender") else ""
        print(f"{'lender_' + str(index):<10}{values}{marker}")
    if "feasible" in result:
        print(f"raise {'succeeded' if result['feasible'] else 'failed'}")
    print(f"borrower utility {result['borrower_utility']:.5f}, welfare {result['welfare']:.5f}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from ledgerzoo.training.sweep import default_sweep_dir, resolve_grid, sweep

    config = load_config(args.config)
    grid = resolve_grid(config, args.assignments)
    name = (config.sweep.name if config.sweep is not None else None) or Path(args.config).stem
    out = Path(args.out) if args.out else default_sweep_dir(name)
    result = sweep(
        config,
        grid,
        method=args.method,
        train=args.train,
        total_timesteps=args.total_timesteps,
        out_dir=out,
        name=name,
    )
    print(result.table())
    print(f"sweep directory: {out}")
    figures = ", ".join(path.name for path in sorted(out.glob("*.png")))
    print(f"files: sweep.csv, sweep.json, {figures}")
    return 0


def _print_profile(result: dict[str, Any]) -> None:
    """Print an offloading equilibrium: each device's action and cost, then the totals."""
    print(
        f"{result['env']}: Nash equilibrium by asynchronous best response in {result['moves']} "
        f"moves (converged: {result['converged']})"
    )
    if result.get("drawn_parameters"):
        print(f"topology and tasks drawn with seed {result['seed']}")
    if "pricing" in result:
        prices = ", ".join(f"{price * 1e9:.4g}" for price in result["pricing"]["prices"])
        print(f"edge prices (coins per gigacycle): {prices}")
    n_edges = result["game"]["n_edges"]
    print(f"{'device':<10}{'action':>16}{'cost':>12}")
    for index, (action, cost) in enumerate(zip(result["profile"], result["costs"], strict=True)):
        print(f"{'device_' + str(index):<10}{_action_name(action, n_edges):>16}{cost:>12.5f}")
    optimum = result["social_optimum"]
    kind = "exact" if optimum["exact"] else "local-search bound"
    print(f"total cost {result['total_cost']:.5f}, optimum ({kind}) {optimum['total_cost']:.5f}")
    if "price_of_anarchy" in result:
        print(f"price of anarchy {result['price_of_anarchy']:.5f}")
    baselines = ", ".join(f"{name} {cost:.5f}" for name, cost in result["baselines"].items())
    print(f"baselines: {baselines}")


def _print_auction(result: dict[str, Any]) -> None:
    """Print the data market's truthful auction: each buyer's data and payment, then welfare."""
    print(
        f"{result['env']}: truthful auction fixed point in {result['iterations']} iterations "
        f"(converged: {result['converged']})"
    )
    if result.get("drawn_parameters"):
        print(f"parameters drawn with seed {result['seed']}")
    print(f"{'buyer':<10}{'received':>12}{'paid':>12}")
    for index, (row, paid) in enumerate(zip(result["allocation"], result["payments"], strict=True)):
        print(f"{'buyer_' + str(index):<10}{sum(row):>12.5f}{sum(paid):>12.5f}")
    print(f"welfare {result['welfare']:.5f}, optimum welfare {result['optimum_welfare']:.5f}")


def _action_name(action: int, n_edges: int) -> str:
    if action == 0:
        return "local"
    if action <= n_edges:
        return f"edge {action - 1}"
    return f"cloud via {action - 1 - n_edges}"


def _list(args: argparse.Namespace) -> int:
    names = registry.list_envs()
    width = max(len(name) for name in names)
    for name in names:
        print(f"{name:<{width}}  {registry.spec(name).summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
