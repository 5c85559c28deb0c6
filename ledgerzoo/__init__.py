"""ledgerzoo: PettingZoo environments for blockchain-supported IoT economies.

Each market ships the analytic equilibrium of its stage game, so that learned policies can be
measured against it. Start with :func:`list_envs` and :func:`make`.
"""

from __future__ import annotations

from ledgerzoo.registry import (
    EnvSpec,
    list_envs,
    make,
    make_aec,
    make_single_agent,
    register,
    spec,
)

__version__ = "0.1.0"

__all__ = [
    "EnvSpec",
    "__version__",
    "list_envs",
    "make",
    "make_aec",
    "make_single_agent",
    "register",
    "spec",
]
