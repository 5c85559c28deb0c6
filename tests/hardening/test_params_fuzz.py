"""Arbitrary inputs to the scenario-value parser that every lending market uses.

``parse_param`` either returns a specification whose ranges are finite, ordered, inside the
bounds and safe to sample, or raises ValueError naming the parameter. ``positive_number``
returns a finite number above 0 or raises ValueError naming the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerzoo.envs.core.params import parse_param, positive_number
from tests.hardening.fuzzing import FUZZ_SETTINGS

NAME = "fuzzed_value"

#: Scalars of every kind a YAML file or a Python caller can pass.
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.sampled_from([10**400, -(10**400), 2**1023, np.float32(3.0e38), np.int64(7), np.uint8(3)]),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.sampled_from([np.bool_(True), np.float64(math.nan), complex(1, 1)]),
)

values = st.one_of(
    scalars,
    st.dictionaries(st.sampled_from(["low", "high", "mid"]), scalars, max_size=3),
    st.lists(scalars, max_size=4),
    st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3).map(np.array),
    st.lists(st.lists(st.floats(0, 1), min_size=2, max_size=2), min_size=3, max_size=3),
    st.tuples(st.floats(), st.floats()).map(lambda pair: {"low": pair[0], "high": pair[1]}),
)

bounds = st.one_of(st.none(), st.floats(-1e300, 1e300))


@settings(FUZZ_SETTINGS, max_examples=300)
@given(
    value=values,
    count=st.integers(1, 3),
    minimum=bounds,
    maximum=bounds,
    strict_minimum=st.booleans(),
    strict_maximum=st.booleans(),
    uniforms=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=3, max_size=3),
)
def test_parse_param_returns_safe_spec_or_names_parameter(
    value: Any,
    count: int,
    minimum: float | None,
    maximum: float | None,
    strict_minimum: bool,
    strict_maximum: bool,
    uniforms: list[float],
) -> None:
    try:
        spec = parse_param(
            NAME,
            value,
            count,
            minimum=minimum,
            strictly_above_minimum=strict_minimum,
            maximum=maximum,
            strictly_below_maximum=strict_maximum,
        )
    except ValueError as error:
        assert repr(NAME) in str(error), f"{value!r}: the error does not name the value: {error}"
        return

    where = f"parse_param({value!r}, minimum={minimum}, maximum={maximum})"
    assert spec.low.shape == (count,), f"{where}: low {spec.low}"
    assert spec.high.shape == (count,), f"{where}: high {spec.high}"
    assert np.isfinite(spec.low).all(), f"{where}: low {spec.low}"
    assert np.isfinite(spec.high).all(), f"{where}: high {spec.high}"
    assert (spec.low <= spec.high).all(), f"{where}: low {spec.low} above high {spec.high}"
    if minimum is not None:
        assert (spec.low >= minimum).all(), f"{where}: low {spec.low} below {minimum}"
        if strict_minimum:
            assert (spec.low > minimum).all(), f"{where}: low {spec.low} not above {minimum}"
    if maximum is not None:
        assert (spec.high <= maximum).all(), f"{where}: high {spec.high} above {maximum}"
        if strict_maximum:
            assert (spec.high < maximum).all(), f"{where}: high {spec.high} not below {maximum}"
    drawn = spec.sample(np.array([uniforms[:count]]))
    assert np.isfinite(drawn).all(), f"{where}: sampled {drawn}"
    assert (drawn >= spec.low).all(), f"{where}: sampled {drawn} below {spec.low}"
    assert (drawn <= spec.high).all(), f"{where}: sampled {drawn} above {spec.high}"


@settings(FUZZ_SETTINGS, max_examples=100)
@given(value=scalars)
def test_positive_number_returns_finite_or_names_argument(value: Any) -> None:
    try:
        number = positive_number(NAME, value)
    except ValueError as error:
        assert NAME in str(error), f"{value!r}: the error does not name the argument: {error}"
        return

    assert isinstance(number, float), f"{value!r} gave {number!r}"
    assert math.isfinite(number), f"{value!r} gave {number}"
    assert number > 0.0, f"{value!r} gave {number}"


@pytest.mark.parametrize("value", [10**400, -(10**400), [1.0, 10**400]])
def test_integer_beyond_float_range_named(value: Any) -> None:
    with pytest.raises(ValueError, match=NAME):
        parse_param(NAME, value, 2 if isinstance(value, list) else 1)


def test_bytes_not_read_as_list() -> None:
    with pytest.raises(ValueError, match=NAME):
        parse_param(NAME, b"\x01\x02", 2)


def test_range_too_wide_to_sample() -> None:
    with pytest.raises(ValueError, match="too far apart"):
        parse_param(NAME, {"low": -1e308, "high": 1e308}, 1)
