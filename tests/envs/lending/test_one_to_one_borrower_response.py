"""The one-to-one borrower's best response from observations that end with ledger entries."""

from __future__ import annotations

import numpy as np

from ledgerzoo.envs.lending.one_to_one import OneToOneMarket


def test_borrower_response_ignores_ledger_entries() -> None:
    kwargs = {"n_lenders": 3, "followers": "learned", "num_instances": 4}
    plain = OneToOneMarket(**kwargs)
    observed = OneToOneMarket(**kwargs, observe_ledger=True)
    for market in (plain, observed):
        market.seed([0, 1, 2, 3])
        market.reset()
        market.step(
            {"lender": np.full((4, 3, 1), 0.4, np.float32), "borrower": np.zeros((4, 1, 3))}
        )
    plain_obs, observed_obs = plain.observe(), observed.observe()
    assert observed_obs["borrower"].shape[-1] == plain_obs["borrower"].shape[-1] + 4
    expected = plain.best_response_actions({"borrower": plain_obs["borrower"]})["borrower"]
    got = observed.best_response_actions({"borrower": observed_obs["borrower"]})["borrower"]
    assert np.array_equal(got, expected), f"{got} != {expected}"
