"""Data trading among robots through an iterative double auction with paid relays, version 0."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec

from ledgerzoo.envs.data_market.market import DataMarketEnv, DataMarketMarket

raw_env = DataMarketEnv
market_class = DataMarketMarket


def parallel_env(**kwargs: Any) -> DataMarketEnv:
    """Build the ParallelEnv; keyword arguments are those of :class:`DataMarketEnv`."""
    return DataMarketEnv(**kwargs)


def env(**kwargs: Any) -> AECEnv:
    """Build the AEC form of the env through PettingZoo's ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(**kwargs))


__all__ = ["env", "market_class", "parallel_env", "raw_env"]
