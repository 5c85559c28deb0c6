"""The data market's tangle ledger draws its tip selection from the instances' seeds."""

from __future__ import annotations

import numpy as np

from ledgerzoo.envs.data_market.market import DataMarketMarket


def play_on_tangle(seeds: list[int], rounds: int = 6) -> tuple[np.ndarray, np.ndarray]:
    market = DataMarketMarket(num_instances=len(seeds), ledger="tangle", max_cycles=rounds)
    market.seed(seeds)
    market.reset()
    for _ in range(rounds):
        market.step({role.name: role.zero_actions(market.num_instances) for role in market.roles})
    return market.ledger.balances.copy(), market.ledger.pending_count().copy()


def test_tangle_ledger_reproducible() -> None:
    first_balances, first_pending = play_on_tangle([3, 4])
    second_balances, second_pending = play_on_tangle([3, 4])

    np.testing.assert_array_equal(first_balances, second_balances)
    np.testing.assert_array_equal(first_pending, second_pending)
    assert first_pending.any(), "nothing was pending, so the tip selection was never used"
