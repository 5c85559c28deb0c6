"""Imports of optional dependencies, with an error that names the pip command."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRA_OF = {
    "stable_baselines3": "train",
    "sb3_contrib": "train",
    "torch": "train",
    "tensorboard": "train",
    "tqdm": "train",
    "rich": "train",
    "ray": "rllib",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency or explain how to install it.

    Args:
        module: Import name, for example ``stable_baselines3``.
        purpose: What needs it, for the message (for example "training").

    Raises:
        ImportError: If the module is missing; the message names the pip command.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRA_OF.get(module.split(".")[0], "train")
        raise ImportError(
            f"{purpose} needs the optional dependency {module!r}, which is not installed. "
            f"Install it with: pip install 'ledgerzoo[{extra}]' (on a CPU-only machine, "
            "install a CPU build of torch first; see the README)"
        ) from error
