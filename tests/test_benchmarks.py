"""Smoke tests of the benchmark scripts: each runs on tiny sizes and reports what it should.

The timings themselves are never asserted (the numbers live in docs/benchmarks.md); these
tests only keep the scripts working as the markets change.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import ledgerzoo

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def scripts() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import memory
        import solver_scaling
        import throughput

        yield throughput, solver_scaling, memory
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_throughput_covers_every_market(scripts: Any) -> None:
    throughput = scripts[0]

    report = throughput.run(throughput.parse_args(["--batch-sizes", "1,4", "--seconds", "0.01"]))

    assert [market["name"] for market in report["markets"]] == ledgerzoo.list_envs()
    for market in report["markets"]:
        assert [result["batch_size"] for result in market["results"]] == [1, 4], market["name"]
        for result in market["results"]:
            for layer in ("array", "vecenv", "kernel"):
                rate = result["layers"][layer]["cpu"]["agent_steps_per_second"]
                assert rate > 0.0, f"{market['name']} B={result['batch_size']} {layer}"
        checks = market["kernel_checks"]
        assert checks, f"{market['name']}: the kernel was never compared with the market"
        assert all(check["matches"] for check in checks), checks


def test_solver_scaling_one_to_one(scripts: Any) -> None:
    solver_scaling = scripts[1]

    report = solver_scaling.run_one_to_one(True, 1)

    methods = {row["method"] for row in report["rows"]}
    assert {"best_response", "gradient"} <= methods, methods
    assert all(row["converged"] for row in report["rows"]), report["rows"]
    assert report["scipy"], "no scipy comparison"
    for comparison in report["scipy"]:
        for method, difference in comparison["max_relative_rate_difference"].items():
            assert difference < 1e-6, f"N={comparison['n']} {method}: {difference}"


def test_memory_one_market(scripts: Any) -> None:
    memory = scripts[2]

    status = memory.main(
        ["--markets", "lending_one_to_one_v0", "--batch-size", "8", "--steps", "2", "--json"]
    )

    assert status in (0, None)
