"""Observation spaces built from tables of (name, low, high), and casting into them."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium
import numpy as np

#: One observation entry: its name, lower bound and upper bound.
ObservationEntry = tuple[str, float, float]


def box_from_table(*tables: Sequence[ObservationEntry]) -> gymnasium.spaces.Box:
    """Build a float32 Box whose entries are the rows of the tables, in order."""
    rows = [row for table in tables for row in table]
    low = np.array([low for _, low, _ in rows], dtype=np.float32)
    high = np.array([high for _, _, high in rows], dtype=np.float32)
    return gymnasium.spaces.Box(low, high, dtype=np.float32)


def index_of(table: Sequence[ObservationEntry]) -> dict[str, int]:
    """Map each entry name of a table to its index."""
    return {name: index for index, (name, _, _) in enumerate(table)}


def to_space(observation: np.ndarray, space: gymnasium.spaces.Box) -> np.ndarray:
    """Cast to the space's dtype and clip into its bounds (guards float32 rounding at bounds)."""
    return np.clip(observation.astype(np.float32), space.low, space.high)
