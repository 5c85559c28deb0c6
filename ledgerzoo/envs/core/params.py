"""Scenario parameters that are fixed, drawn per episode from a range, or listed per agent.

A scenario value is written in one of three forms, in Python or in a YAML config:

- a number: every agent (and every episode) gets that value;
- ``{"low": a, "high": b}``: each agent's value is drawn uniformly from [a, b] per episode;
- a list of N numbers: agent i gets the i-th number, every episode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ParamSpec:
    """A parsed scenario value for N agents of one role.

    Attributes:
        name: Parameter name as the user wrote it (used in error messages).
        low: Lower end of the range, shape (N,).
        high: Upper end of the range, shape (N,); equal to ``low`` when the value is fixed.
    """

    name: str
    low: np.ndarray
    high: np.ndarray

    @property
    def is_random(self) -> bool:
        """Whether any agent's value is drawn per episode."""
        return bool(np.any(self.high > self.low))

    def sample(self, uniforms: np.ndarray) -> np.ndarray:
        """Map uniform draws in [0, 1) onto the range.

        Args:
            uniforms: Array of shape (B, N) of uniform draws.

        Returns:
            Values of shape (B, N), float64.
        """
        return self.low + uniforms * (self.high - self.low)


def parse_param(
    name: str,
    value: Any,
    n_agents: int,
    *,
    minimum: float | None = None,
    strictly_above_minimum: bool = False,
    maximum: float | None = None,
    strictly_below_maximum: bool = False,
) -> ParamSpec:
    """Parse a scenario value into a :class:`ParamSpec` and check its bounds.

    Args:
        name: Parameter name, for error messages.
        value: A number, a ``{"low": a, "high": b}`` mapping, or a list (or 1-d numpy array) of
            ``n_agents`` numbers.
        n_agents: Number of agents N of the role.
        minimum: Smallest allowed value, if any.
        strictly_above_minimum: Whether the value must be strictly greater than ``minimum``.
        maximum: Largest allowed value, if any.
        strictly_below_maximum: Whether the value must be strictly smaller than ``maximum``.

    Returns:
        The parsed specification.

    Raises:
        ValueError: If the value has the wrong form, the wrong length, is not finite, or lies
            outside the allowed bounds. The message names the parameter and the value.
    """
    forms = "a number, {low: a, high: b} or a list of one number per agent"
    if isinstance(value, np.ndarray):
        # A numpy array is read as the number (0-d) or the list (1-d) it holds.
        value = value.tolist()
    if isinstance(value, Mapping):
        keys = set(value)
        if keys != {"low", "high"}:
            raise ValueError(
                f"invalid value for {name!r}: a range needs exactly the keys 'low' and 'high', "
                f"got {sorted(map(str, keys))}"
            )
        low = _as_float(name, value["low"])
        high = _as_float(name, value["high"])
        if low > high:
            raise ValueError(
                f"invalid range for {name!r}: low={low} is above high={high}; swap them"
            )
        low_array = np.full(n_agents, low)
        high_array = np.full(n_agents, high)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n_agents:
            raise ValueError(
                f"invalid value for {name!r}: a list needs one number per agent "
                f"({n_agents}), got {len(value)} numbers: {list(value)}"
            )
        low_array = np.array([_as_float(name, v) for v in value], dtype=np.float64)
        high_array = low_array.copy()
    else:
        if not _is_number(value):
            raise ValueError(f"invalid value for {name!r}: expected {forms}, got {value!r}")
        number = _as_float(name, value)
        low_array = np.full(n_agents, number)
        high_array = low_array.copy()

    if minimum is not None:
        below = low_array <= minimum if strictly_above_minimum else low_array < minimum
        if np.any(below):
            relation = "above" if strictly_above_minimum else "at least"
            raise ValueError(
                f"invalid value for {name!r}: every value must be {relation} {minimum}, "
                f"got {_describe(value)}"
            )
    if maximum is not None:
        above = high_array >= maximum if strictly_below_maximum else high_array > maximum
        if np.any(above):
            relation = "below" if strictly_below_maximum else "at most"
            raise ValueError(
                f"invalid value for {name!r}: every value must be {relation} {maximum}, "
                f"got {_describe(value)}"
            )
    return ParamSpec(name=name, low=low_array, high=high_array)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _as_float(name: str, value: Any) -> float:
    if not _is_number(value):
        raise ValueError(f"invalid value for {name!r}: expected a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"invalid value for {name!r}: expected a finite number, got {number}")
    return number


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"{{low: {value.get('low')}, high: {value.get('high')}}}"
    return repr(value)


def positive_number(name: str, value: Any) -> float:
    """Check that a scalar argument is a finite number above 0 and return it as a float.

    Raises:
        ValueError: Naming the argument and the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"invalid {name} {value!r}: expected a number above 0")
    number = float(value)
    if not np.isfinite(number) or number <= 0.0:
        raise ValueError(f"invalid {name} {value!r}: expected a finite number above 0")
    return number
