"""Computation offloading among IIoT devices, edge servers and the cloud, version 0."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec

from ledgerzoo.envs.offloading.market import OffloadingEnv, OffloadingMarket

raw_env = OffloadingEnv
market_class = OffloadingMarket


def parallel_env(**kwargs: Any) -> OffloadingEnv:
    """Build the ParallelEnv; keyword arguments are those of :class:`OffloadingEnv`."""
    return OffloadingEnv(**kwargs)


def env(**kwargs: Any) -> AECEnv:
    """Build the AEC form of the env through PettingZoo's ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(**kwargs))


__all__ = ["env", "market_class", "parallel_env", "raw_env"]
