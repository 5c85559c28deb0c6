"""Parsing of scenario values: a number, a {low, high} range, or one number per agent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerzoo.envs.core.params import ParamSpec, parse_param

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_number_gives_fixed_value():
    spec = parse_param("willingness", 2.5, 3)
    assert spec.name == "willingness"
    assert spec.low.tolist() == [2.5, 2.5, 2.5]
    assert spec.high.tolist() == [2.5, 2.5, 2.5]
    assert not spec.is_random


@pytest.mark.parametrize("number", [3, np.int64(3), np.float32(3.0), np.array(3.0)])
def test_numeric_types_accepted(number):
    spec = parse_param("x", number, 2)
    assert spec.low.tolist() == [3.0, 3.0]
    assert spec.low.dtype == np.float64


def test_range_draws_per_agent():
    spec = parse_param("min_rate", {"low": 0.02, "high": 0.1}, 4)
    assert spec.low.tolist() == [0.02] * 4
    assert spec.high.tolist() == [0.1] * 4
    assert spec.is_random


def test_range_with_equal_ends_fixed():
    spec = parse_param("x", {"low": 1.5, "high": 1.5}, 2)
    assert not spec.is_random
    assert spec.sample(np.full((3, 2), 0.7)).tolist() == [[1.5, 1.5]] * 3


@pytest.mark.parametrize(
    "value",
    [[1.0, 2.0, 3.0], (1.0, 2.0, 3.0), np.array([1.0, 2.0, 3.0]), [1, 2, 3]],
    ids=["list", "tuple", "numpy array", "ints"],
)
def test_list_gives_value_per_agent(value):
    spec = parse_param("willingness", value, 3)
    assert spec.low.tolist() == [1.0, 2.0, 3.0]
    assert spec.high.tolist() == [1.0, 2.0, 3.0]
    assert not spec.is_random


def test_sample_maps_uniforms_onto_range():
    spec = parse_param("x", {"low": 2.0, "high": 6.0}, 2)
    uniforms = np.array([[0.0, 0.5], [0.25, 0.999]])
    assert np.allclose(spec.sample(uniforms), [[2.0, 4.0], [3.0, 5.996]], rtol=0, atol=1e-12)


@given(low=finite, width=st.floats(min_value=0.0, max_value=1e6), u=st.floats(0.0, 1.0))
def test_sample_stays_inside_range(low, width, u):
    high = low + width
    spec = parse_param("x", {"low": low, "high": high}, 3)
    values = spec.sample(np.full((2, 3), u))
    assert values.shape == (2, 3)
    assert np.all(values >= low - 1e-9 * abs(low)), f"{values} below {low}"
    assert np.all(values <= high + 1e-9 * abs(high)), f"{values} above {high}"


@given(values=st.lists(finite, min_size=1, max_size=8))
def test_list_values_roundtrip(values):
    spec = parse_param("x", values, len(values))
    assert spec.low.tolist() == [float(v) for v in values]
    assert np.array_equal(spec.low, spec.high)


@given(value=st.floats(min_value=1e-300, max_value=1e300))
def test_positive_number_passes_strict_minimum(value):
    spec = parse_param("d", value, 1, minimum=0.0, strictly_above_minimum=True)
    assert spec.low[0] == value


@pytest.mark.parametrize(
    ("value", "kwargs", "pattern"),
    [
        ("abc", {}, r"'x'.*expected a number, \{low: a, high: b\}.*'abc'"),
        (None, {}, "'x'.*None"),
        (True, {}, "'x'.*True"),
        (float("nan"), {}, "'x'.*finite.*nan"),
        (float("inf"), {}, "'x'.*finite.*inf"),
        ([1.0, 2.0], {}, r"'x'.*one number per agent \(3\).*2 numbers.*\[1\.0, 2\.0\]"),
        ([1.0, "b", 3.0], {}, "'x'.*'b'"),
        ([1.0, float("nan"), 3.0], {}, "'x'.*nan"),
        ([[1.0, 2.0, 3.0]], {}, "'x'.*1 numbers"),
        (np.ones((3, 1)), {}, "'x'.*expected a number"),
        ({"low": 1.0}, {}, "'x'.*'low' and 'high'.*'low'"),
        ({"low": 1.0, "high": 2.0, "mode": 1.5}, {}, "'x'.*'mode'"),
        ({"low": 2.0, "high": 1.0}, {}, "'x'.*low=2.0.*high=1.0"),
        ({"low": "a", "high": 1.0}, {}, "'x'.*'a'"),
        ({"low": 0.0, "high": float("inf")}, {}, "'x'.*inf"),
        (0.0, {"minimum": 0.0, "strictly_above_minimum": True}, "'x'.*above 0.0.*0.0"),
        (-1.0, {"minimum": 0.0}, "'x'.*at least 0.0.*-1.0"),
        ([1.0, -1.0, 2.0], {"minimum": 0.0}, r"'x'.*at least 0.0.*\[1.0, -1.0, 2.0\]"),
        ({"low": -1.0, "high": 1.0}, {"minimum": 0.0}, "'x'.*low: -1.0, high: 1.0"),
        (0.5, {"maximum": 0.5, "strictly_below_maximum": True}, "'x'.*below 0.5.*0.5"),
        (0.6, {"maximum": 0.5}, "'x'.*at most 0.5.*0.6"),
        ({"low": 0.1, "high": 0.6}, {"maximum": 0.5}, "'x'.*at most 0.5.*high: 0.6"),
    ],
)
def test_invalid_value_raises(value, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        parse_param("x", value, 3, **kwargs)


def test_bounds_inclusive_by_default():
    spec = parse_param("x", [0.0, 0.5], 2, minimum=0.0, maximum=0.5)
    assert spec.low.tolist() == [0.0, 0.5]


def test_spec_is_frozen():
    spec = parse_param("x", 1.0, 1)
    assert isinstance(spec, ParamSpec)
    with pytest.raises(AttributeError):
        spec.name = "y"  # type: ignore[misc]
