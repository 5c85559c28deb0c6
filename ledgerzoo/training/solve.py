"""The analytic equilibrium of a config's scenario, as plain data."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ledgerzoo import registry
from ledgerzoo.training.config import ExperimentConfig


def solve(
    config: ExperimentConfig, method: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Solve the stage game of a config's scenario.

    Parameters given as explicit lists or numbers are used as they are; parameters given as
    ranges are drawn once, with ``seed`` (default: the config's eval.seed), as an episode of the
    env would draw them.

    Args:
        config: A validated experiment config.
        method: The solver method of the market; None uses the market's default
            (``best_response`` or ``gradient`` for the one-to-one lending market, ``reference``
            or ``psi`` for the one-to-many one, ``best_response`` for offloading).
        seed: Seed of the drawn parameters.

    Returns:
        A JSON-ready dict: the env, the method, whether parameters were drawn (and the seed),
        the game's parameters under ``game`` and the equilibrium (rates, prices, loans,
        lender_utilities, borrower_utilities, borrower_utility, optimal_lender, iterations,
        converged, ...). A parameter without a bound (an infinite max_loan) is None, because
        JSON has no infinity.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"invalid seed {seed!r} (--seed): expected an integer >= 0")
    market = registry.market_class(config.env.name)(num_instances=1, **config.env.kwargs)
    used_seed = config.eval.seed if seed is None else seed
    market.seed([used_seed])
    market.reset()
    # A market whose game is more than flat parameters (offloading draws a topology and tasks
    # every episode) provides describe_game; the lending markets' games are dataclasses.
    describe = getattr(market, "describe_game", None)
    drawn = describe is not None or any(_is_random(value) for value in vars(market).values())
    result = market.solve() if method is None else market.solve(method)
    if describe is not None:
        game = describe()
    else:
        game = {
            name: _finite_or_none(np.asarray(value)[0].tolist() if np.ndim(value) else value)
            for name, value in dataclasses.asdict(market.game).items()
        }
    output: dict[str, Any] = {"env": config.env.name, "drawn_parameters": drawn}
    if drawn:
        output["seed"] = used_seed
    output["game"] = game
    solution = result if isinstance(result, dict) else result.to_dict(0)
    output.update({key: value for key, value in solution.items() if key not in output})
    return output


def _is_random(value: Any) -> bool:
    """Whether a market attribute is a scenario parameter (or a dict of them) drawn per episode."""
    if isinstance(value, dict):
        return any(_is_random(item) for item in value.values())
    return bool(getattr(value, "is_random", False))


def _finite_or_none(value: Any) -> Any:
    """Replace infinite numbers (unbounded parameters) in a number or a list by None."""
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
