"""Scenario parameters that are fixed, drawn per episode from a range, or listed per agent.

A scenario value is written in one of three forms, in Python or in a YAML config:

- a number: every agent (and every episode) gets that value;
- ``{"low": a, "high": b}``: each agent's value is drawn uniformly from [a, b] per episode;
- a list of N numbers: agent i gets the i-th number, every episode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Largest number of agents of one role a lending market accepts. The markets allocate (B, N, ...)
#: arrays per role, so the cap rejects a mistyped count such as 10**9 before any allocation.
#: Markets that build (N, N) arrays set lower caps of their own.
# NOTE: no test builds a market near the cap, so its time and memory there are unmeasured.
MAX_AGENTS = 1_000_000
#: Largest number of rounds per episode (max_cycles), the cap of the ledger settings too.
MAX_ROUNDS = 10_000_000


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
        ValueError: If the value has the wrong form, the wrong length, is not finite (a
            Python int beyond the float range counts as infinite), lies outside the allowed
            bounds, or is a range too wide to sample in float64. The message names the
            parameter and the value.
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
        if not np.isfinite(high - low):
            # Sampling computes low + u (high - low), which must not overflow.
            raise ValueError(
                f"invalid range for {name!r}: low={low} and high={high} are too far apart to "
                "sample in float64; narrow the range"
            )
        low_array = np.full(n_agents, low)
        high_array = np.full(n_agents, high)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
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
    number = to_float(value)
    if not np.isfinite(number):
        raise ValueError(f"invalid value for {name!r}: expected a finite number, got {number}")
    return number


def to_float(value: Any) -> float:
    """Convert a number to float; a Python int beyond the float range becomes +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


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
    number = to_float(value)
    if not np.isfinite(number) or number <= 0.0:
        raise ValueError(f"invalid {name} {value!r}: expected a finite number above 0")
    return number


def integer_count(name: str, value: Any, *, minimum: int, maximum: int, unit: str) -> int:
    """Check that a count argument is an int in [minimum, maximum] and return it.

    Args:
        name: Argument name, for error messages.
        value: The value the caller gave.
        minimum: Smallest allowed count.
        maximum: Largest allowed count.
        unit: What is counted, for error messages (``"rounds per episode"``).

    Raises:
        TypeError: If the value is not an int (a bool is not an int here).
        ValueError: If it lies outside [minimum, maximum]. Both messages name the argument.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int ({unit}), got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(
            f"invalid {name} {describe_value(value)}: expected an int in [{minimum}, {maximum}] "
            f"({unit})"
        )
    return int(value)


def describe_value(value: Any) -> str:
    """Format a value for an error message, giving only the digit count of a huge int."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
        if abs(number) < 10**30:
            return str(number)
        return f"(an int of {len(str(abs(number)))} digits)"
    return repr(value)


def check_maximum_above_default(
    name: str, maximum: float, range_name: str, range_value: Any, default: Mapping[str, float]
) -> None:
    """Reject a maximum that the default range of another, unset parameter does not stay below.

    Args:
        name: Name of the maximum, for example ``max_rate``.
        maximum: Its value.
        range_name: Name of the parameter whose values must lie strictly below the maximum.
        range_value: The value the caller gave for it; ``None`` means the default applies.
        default: The default range, ``{"low": a, "high": b}``.

    Raises:
        ValueError: If the default applies and its upper end is not below the maximum. The
            message names both parameters and what to change.
    """
    if range_value is None and maximum <= default["high"]:
        raise ValueError(
            f"invalid {name} {maximum}: {range_name} defaults to the range "
            f"[{default['low']}, {default['high']}], whose values must lie below {name}; "
            f"pass a {name} above {default['high']}, or a {range_name} below {maximum}"
        )
