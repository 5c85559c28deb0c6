"""Beta-reputation scores of edge servers."""

from __future__ import annotations

import numpy as np
import pytest

from ledgerzoo.envs.offloading.reputation import beta_reputation


def test_scores_by_hand() -> None:
    assert beta_reputation(0, 0) == 0.5
    assert beta_reputation(8, 0) == pytest.approx(0.9)
    assert beta_reputation(0, 3) == pytest.approx(0.2)
    assert beta_reputation(3, 1) == pytest.approx(4.0 / 6.0)


def test_scores_batched() -> None:
    successes = np.array([[0, 1, 5], [10, 0, 2]])
    failures = np.array([[0, 1, 0], [10, 4, 2]])
    scores = beta_reputation(successes, failures)
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores, (successes + 1) / (successes + failures + 2))
    assert np.all((scores > 0.0) & (scores < 1.0))
    # Broadcasting one failure count over every edge.
    np.testing.assert_allclose(beta_reputation(successes, 1), (successes + 1) / (successes + 3))


def test_more_successes_raise_score() -> None:
    scores = beta_reputation(np.arange(10), 2)
    assert np.all(np.diff(scores) > 0.0)


@pytest.mark.parametrize(
    ("successes", "failures", "pattern"),
    [(-1, 0, "successes.*-1"), (0, -2, "failures.*-2"), (np.nan, 0, "successes.*nan")],
)
def test_invalid_counts_raise(successes: float, failures: float, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        beta_reputation(successes, failures)
