"""Beta reputation of edge servers, from the tasks they completed and failed.

An edge server completes each task with a hidden probability theta_k. With a uniform prior
on theta_k, the posterior after s successes and f failures is Beta(s + 1, f + 1), whose mean
(s + 1) / (s + f + 2) is the score devices see.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def beta_reputation(successes: ArrayLike, failures: ArrayLike) -> np.ndarray:
    """Compute the beta-reputation score (s + 1) / (s + f + 2), in (0, 1).

    A server with no record scores 0.5.

    Args:
        successes: Completed tasks s, any shape, >= 0.
        failures: Failed tasks f, broadcastable to ``successes``, >= 0.

    Returns:
        Scores, the broadcast shape, float64.

    Raises:
        ValueError: If a count is negative or not finite.
    """
    success_counts = np.asarray(successes, dtype=np.float64)
    failure_counts = np.asarray(failures, dtype=np.float64)
    for name, counts in (("successes", success_counts), ("failures", failure_counts)):
        if not np.all(np.isfinite(counts)) or np.any(counts < 0.0):
            raise ValueError(f"{name} must be finite counts of at least 0, got {counts}")
    return (success_counts + 1.0) / (success_counts + failure_counts + 2.0)
