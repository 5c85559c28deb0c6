"""The stable-baselines3 algorithms that training can use, imported only when needed."""

from __future__ import annotations

from typing import Any

from ledgerzoo._extras import require


def algorithm_class(name: str) -> Any:
    """Return the SB3 (or sb3-contrib) class of an algorithm name.

    Raises:
        ValueError: For an unknown name.
        ImportError: If the training extra is missing; the message names the pip command.
    """
    if name in ("PPO", "A2C"):
        return getattr(require("stable_baselines3", "training"), name)
    if name in ("RecurrentPPO", "MaskablePPO"):
        return getattr(require("sb3_contrib", "training"), name)
    raise ValueError(f"unknown algorithm {name!r}; expected PPO, A2C, RecurrentPPO or MaskablePPO")


def load_model(path: str, algorithm: str = "PPO") -> Any:
    """Load a saved model of the given algorithm on the CPU."""
    return algorithm_class(algorithm).load(path, device="cpu")
