"""Lending market with one borrower and N investing lenders (the borrower leads), version 0."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec

from ledgerzoo.envs.lending.one_to_many import LendingOneToManyEnv, OneToManyMarket

raw_env = LendingOneToManyEnv
market_class = OneToManyMarket


def parallel_env(**kwargs: Any) -> LendingOneToManyEnv:
    """Build the ParallelEnv; keyword arguments are those of :class:`LendingOneToManyEnv`."""
    return LendingOneToManyEnv(**kwargs)


def env(**kwargs: Any) -> AECEnv:
    """Build the AEC form of the env through PettingZoo's ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(**kwargs))


__all__ = ["env", "market_class", "parallel_env", "raw_env"]
