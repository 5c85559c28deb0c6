"""Lending market with one borrower and N competing lenders (lenders lead), version 0."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec

from ledgerzoo.envs.lending.one_to_one import LendingOneToOneEnv, OneToOneMarket

raw_env = LendingOneToOneEnv
market_class = OneToOneMarket


def parallel_env(**kwargs: Any) -> LendingOneToOneEnv:
    """Build the ParallelEnv; keyword arguments are those of :class:`LendingOneToOneEnv`."""
    return LendingOneToOneEnv(**kwargs)


def env(**kwargs: Any) -> AECEnv:
    """Build the AEC form of the env through PettingZoo's ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(**kwargs))


__all__ = ["env", "market_class", "parallel_env", "raw_env"]
