"""The data market env: the auction's iterations, relays and their credits, and the ledger."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ledgerzoo
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.data_market import auction, model
from ledgerzoo.envs.data_market.market import (
    DROP_SILENTLY,
    FORWARD_AND_REPORT,
    FORWARD_SILENTLY,
    DataMarketMarket,
)

BATCH = 3


def relay_actions(market: DataMarketMarket, choice: int) -> dict[str, np.ndarray]:
    return {"relay": np.full((market.num_instances, market.n_relays), choice, dtype=np.int64)}


def test_truthful_rounds_follow_the_auction() -> None:
    # Without perishability the data keeps its value, so the env's rounds are the truthful
    # auction's iterations (relays forward everything).
    market = DataMarketMarket(num_instances=BATCH, scenario={"perishability": 0.0}, max_cycles=8)
    market.seed(list(range(BATCH)))
    market.reset()
    result = auction.run_truthful_auction(market.market, keep_allocations=True)
    assert result.delivered_trace is not None
    for round_index in range(8):
        planned = market.allocation.delivered.copy()
        market.step(relay_actions(market, FORWARD_AND_REPORT))
        iteration = min(round_index, result.delivered_trace.shape[0] - 1)
        for b in range(BATCH):
            if round_index < result.iterations[b]:
                np.testing.assert_allclose(
                    planned[b], result.delivered_trace[iteration][b], rtol=1e-6, atol=1e-9
                )


def test_rewards_follow_the_model() -> None:
    market = DataMarketMarket(num_instances=BATCH, bidding="learned", relays=False, max_cycles=3)
    market.seed(list(range(BATCH)))
    market.reset()
    rng = np.random.default_rng(0)
    actions = {
        role.name: rng.random((BATCH, role.count, *role.action_space.shape)).astype(np.float32)
        for role in market.roles
    }
    bids = market.bids_from_actions(actions["buyer"])
    asks = market.asks_from_actions(actions["seller"])
    data = market.market
    solution = auction.market_auctioneer(data, bids, asks)
    step = market.step(actions)
    utility = model.buyer_utilities(solution.delivered, data.willingness, data.value_factors)
    payments = np.where(solution.delivered > 0.0, bids, 0.0)
    np.testing.assert_allclose(
        step.rewards["buyer"], utility - payments.sum(axis=2), rtol=1e-9, atol=1e-12
    )
    cost = model.seller_costs(solution.sent, data.quadratic_cost, data.linear_cost)
    np.testing.assert_allclose(
        step.rewards["seller"], payments.sum(axis=1) - cost, rtol=1e-9, atol=1e-12
    )
    # Budget balance: what buyers pay, sellers receive.
    assert step.rewards["buyer"].sum() + step.rewards["seller"].sum() == pytest.approx(
        float(utility.sum() - cost.sum())
    )


def test_dropping_relays_lose_credits() -> None:
    kwargs: dict[str, Any] = {"num_instances": BATCH, "max_cycles": 2}
    forward = DataMarketMarket(**kwargs)
    drop = DataMarketMarket(**kwargs)
    for market in (forward, drop):
        market.seed(list(range(BATCH)))
        market.reset()
    forwarded = forward.step(relay_actions(forward, FORWARD_AND_REPORT))
    dropped = drop.step(relay_actions(drop, DROP_SILENTLY))
    busy = forwarded.infos["relay"][keys.MESSAGES] > 0
    assert busy.any(), "no relay carried a message"
    assert np.all(forwarded.rewards["relay"][busy] > dropped.rewards["relay"][busy])
    # Dropped data never arrives, so the buyers' welfare falls.
    assert np.all(
        dropped.infos["relay"][keys.WELFARE][:, 0] <= forwarded.infos["relay"][keys.WELFARE][:, 0]
    )


def test_relay_best_response_is_forward_and_report() -> None:
    market = DataMarketMarket(num_instances=BATCH, reference=True, max_cycles=2)
    market.seed(list(range(BATCH)))
    market.reset()
    infos = market.step(relay_actions(market, FORWARD_AND_REPORT)).infos["relay"]
    # Sprite's condition holds for the default credits, so no relay gains by deviating.
    np.testing.assert_allclose(infos[keys.BEST_RESPONSE_UTILITY], infos[keys.UTILITY])
    assert infos[f"{keys.REFERENCE}/{keys.FORWARDED}"].all()

    market.reset()
    infos = market.step(relay_actions(market, FORWARD_SILENTLY)).infos["relay"]
    busy = infos[keys.MESSAGES] > 0
    assert np.all(infos[keys.BEST_RESPONSE_UTILITY][busy] > infos[keys.UTILITY][busy])


@pytest.mark.parametrize("mode", ["instant", "chain"])
def test_ledger_conserves_value(mode: str) -> None:
    market = DataMarketMarket(num_instances=BATCH, bidding="learned", ledger=mode, max_cycles=6)
    market.seed(list(range(BATCH)))
    market.reset()
    rng = np.random.default_rng(1)
    while market.round < market.max_cycles:
        actions = {
            role.name: (
                rng.integers(0, 4, (BATCH, role.count))
                if role.is_discrete
                else rng.random((BATCH, role.count, *role.action_space.shape)).astype(np.float32)
            )
            for role in market.roles
        }
        market.step(actions)
        assert np.all(market.ledger.conservation_error() < 1e-9)
        assert np.all(market.ledger.balances[:, : market.ledger.escrow] >= -1e-9)


def test_observations_hide_private_values() -> None:
    market = DataMarketMarket(num_instances=1, bidding="learned")
    market.seed([0])
    observations = market.reset()
    buyer = observations["buyer"][0]
    # Buyer i's observation contains its own willingness only.
    for i in range(market.n_buyers):
        own = market.market.willingness[0, i]
        assert buyer[i, 3] == pytest.approx(own, rel=1e-6)
        others = np.delete(market.market.willingness[0], i)
        assert not np.any(np.isclose(buyer[i, :8], others[:, None], rtol=1e-9).any(axis=0)[4:])


def test_solve_reports_the_fixed_point() -> None:
    market = DataMarketMarket(num_instances=1)
    market.seed([0])
    market.reset()
    result = market.solve()
    assert result["converged"]
    assert result["welfare"] == pytest.approx(result["optimum_welfare"], rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"bidding": "honest"}, "bidding 'honest'"),
        ({"scenario": "tiny"}, "tiny"),
        ({"scenario": {"n_buyers": 0}}, "n_buyers"),
        ({"scenario": {"unknown_field": 1}}, "unknown_field"),
        ({"relays": False}, "nothing is left to learn"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ledgerzoo.make("data_market_v0", **kwargs)


def test_scenario_mapping_from_yaml() -> None:
    market = DataMarketMarket(
        scenario={"n_buyers": 3, "n_sellers": 4, "willingness": {"low": 2.0, "high": 6.0}}
    )
    assert market.n_buyers == 3
    assert market.n_sellers == 4
    market.seed([0])
    market.reset()
    assert np.all((market.market.willingness >= 2.0) & (market.market.willingness <= 6.0))


def test_evaluator_reports_auction_metrics() -> None:
    from ledgerzoo.training.evaluate import evaluate_policy, resolve_policy

    forwarding = evaluate_policy(
        "data_market_v0",
        {"max_cycles": 4},
        resolve_policy("equilibrium"),
        seeds=[1, 2],
        skip_rounds=1,
    )
    assert forwarding.metrics["forwarding_rate"].mean == 1.0
    assert forwarding.metrics["nash_conv"].mean == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < forwarding.metrics["welfare_efficiency"].mean <= 1.0 + 1e-6
    assert "payment_shift" in forwarding.metrics

    silent = evaluate_policy(
        "data_market_v0", {"max_cycles": 4}, resolve_policy("fixed"), seeds=[1, 2], skip_rounds=1
    )
    # A fixed policy at value 0.5 picks choice 1 of 0..3 (the lower of the two nearest):
    # relays drop and report, and can gain by forwarding.
    assert silent.metrics["nash_conv"].mean > 0.0


@pytest.mark.parametrize(
    "scenario",
    [
        {"n_buyers": 1, "n_sellers": 1},
        {"n_buyers": 2, "n_sellers": 2, "n_relays": 2},
        {"hops": 0},
    ],
)
def test_small_scenarios_reset_on_every_seed(scenario: dict[str, Any]) -> None:
    # A drawn episode may have shorter paths than the scenario allows, or none at all.
    env = ledgerzoo.make("data_market_v0", scenario=scenario, max_cycles=2, reference=True)
    for seed in range(15):
        observations, _ = env.reset(seed=seed)
        while env.agents:
            actions = {agent: FORWARD_AND_REPORT for agent in env.agents}
            observations = env.step(actions)[0]
            for agent, observation in observations.items():
                assert env.observation_space(agent).contains(observation), (seed, agent)
