"""The offloading env: rewards from the model, exact deviations, masks, the ledger, rendering."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ledgerzoo
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.offloading import equilibrium, model
from ledgerzoo.envs.offloading.game import sample_games
from ledgerzoo.envs.offloading.market import OffloadingMarket

BATCH = 4


def legal_random(market: OffloadingMarket, rng: np.random.Generator) -> np.ndarray:
    masks = market.action_masks()["device"]
    draws = rng.random(masks.shape) * masks
    return np.argmax(draws, axis=2)


def step_devices(market: OffloadingMarket, actions: np.ndarray) -> Any:
    batched = {"device": actions}
    for role in market.roles:
        if role.name != "device":
            batched[role.name] = role.zero_actions(market.num_instances)
    return market.step(batched)


def test_first_episode_equals_sampled_game() -> None:
    market = OffloadingMarket(num_instances=3)
    market.seed([5, 6, 7])
    market.reset()
    game = sample_games(market.scenario, [5, 6, 7])
    np.testing.assert_array_equal(market.game.private_costs, game.private_costs)
    np.testing.assert_array_equal(market.game.action_mask, game.action_mask)


def test_rewards_follow_the_model() -> None:
    market = OffloadingMarket(num_instances=BATCH, max_cycles=4)
    market.seed(list(range(BATCH)))
    market.reset()
    rng = np.random.default_rng(0)
    for _ in range(4):
        actions = legal_random(market, rng)
        game = market.game
        expected = model.rewards(game, actions)
        step = step_devices(market, actions)
        np.testing.assert_allclose(step.rewards["device"], expected, rtol=1e-12)
        np.testing.assert_allclose(
            step.infos["device"][keys.COST], model.device_costs(game, actions), rtol=1e-12
        )


def test_best_deviation_is_exact() -> None:
    market = OffloadingMarket(num_instances=2, max_cycles=2, reference=True)
    market.seed([1, 2])
    market.reset()
    actions = legal_random(market, np.random.default_rng(1))
    game = market.game
    infos = step_devices(market, actions).infos["device"]
    # Enumerate every legal deviation of every device.
    for b in range(2):
        for i in range(market.n_devices):
            best = -np.inf
            for action in np.flatnonzero(game.action_mask[b, i]):
                trial = actions.copy()
                trial[b, i] = action
                best = max(best, model.rewards(game, trial)[b, i])
            assert infos[keys.BEST_RESPONSE_UTILITY][b, i] == pytest.approx(best, rel=1e-9)


def test_equilibrium_play_has_no_regret() -> None:
    market = OffloadingMarket(num_instances=3, max_cycles=3, reference=True)
    market.seed([3, 4, 5])
    market.reset()
    for _ in range(3):
        step = market.step(market.equilibrium_actions())
        infos = step.infos["device"]
        regret = infos[keys.BEST_RESPONSE_UTILITY] - infos[keys.UTILITY]
        assert np.all(regret <= 1e-9 * np.abs(infos[keys.UTILITY]).max()), regret
        np.testing.assert_allclose(
            infos[keys.TOTAL_COST], infos[f"{keys.REFERENCE}/{keys.TOTAL_COST}"], rtol=1e-12
        )
        reference_total = infos[f"{keys.REFERENCE}/{keys.TOTAL_COST}"][:, 0]
        assert np.all(infos[f"{keys.REFERENCE}/{keys.OPTIMUM_COST}"][:, 0] <= reference_total)
        assert np.all(reference_total <= infos[f"{keys.REFERENCE}/all_local_cost"][:, 0] + 1e-9)


def test_relay_income_changes_no_best_response() -> None:
    market = OffloadingMarket(num_instances=BATCH, max_cycles=1, scenario={"relay_fee": 1e-6})
    market.seed(list(range(BATCH)))
    market.reset()
    game = market.game
    actions = legal_random(market, np.random.default_rng(2))
    for i in range(market.n_devices):
        income = []
        for action in range(market.n_actions):
            trial = actions.copy()
            trial[:, i] = action
            income.append(model.relay_income(game, trial)[:, i])
        # Device i's relay income is the same whatever device i itself chooses.
        for value in income[1:]:
            np.testing.assert_array_equal(value, income[0])


def test_masks_match_reachability() -> None:
    market = OffloadingMarket(num_instances=BATCH, n_devices=12, scenario={"edge_range": 40.0})
    market.seed(list(range(BATCH)))
    market.reset()
    mask = market.action_masks()["device"]
    reachable = market.game.topology.relay_hops >= 0  # (B, N, K)
    np.testing.assert_array_equal(mask[..., 0], True)
    np.testing.assert_array_equal(mask[..., 1 : 1 + market.n_edges], reachable)
    np.testing.assert_array_equal(mask[..., 1 + market.n_edges :], reachable)
    assert not mask.all(), "the scenario was meant to leave some edge out of reach"


def test_unaffordable_choices_are_masked() -> None:
    market = OffloadingMarket(num_instances=BATCH, device_balance=0.05, max_cycles=3)
    market.seed(list(range(BATCH)))
    market.reset()
    provider, relays = model.action_payments(market.game)
    mask = market.action_masks()["device"]
    bills = provider + relays
    assert np.all(bills[mask] <= 0.05 + 1e-9)
    assert np.all(mask[..., 0])


def test_loans_pay_bills_and_charge_interest() -> None:
    market = OffloadingMarket(
        num_instances=BATCH, device_balance=0.0, loans=True, bank_rate=0.1, max_cycles=3
    )
    market.seed(list(range(BATCH)))
    market.reset()
    game = market.game
    actions = np.where(game.action_mask[..., 1], 1, 0)  # edge 0 where reachable
    step = step_devices(market, actions)
    provider, relays = model.action_payments(game)
    bills = np.take_along_axis(provider + relays, actions[..., None], axis=2)[..., 0]
    np.testing.assert_allclose(step.infos["device"][keys.INTEREST], 0.1 * bills, rtol=1e-12)
    expected = model.rewards(game, actions) - 0.1 * bills
    np.testing.assert_allclose(step.rewards["device"], expected, rtol=1e-12)
    assert np.all(market.ledger.conservation_error() < 1e-9)


@pytest.mark.parametrize("mode", ["instant", "chain", "tangle"])
def test_ledger_conserves_value(mode: str) -> None:
    market = OffloadingMarket(
        num_instances=BATCH,
        ledger=mode,
        device_balance=0.3,
        loans=True,
        reputation=True,
        max_cycles=6,
    )
    market.seed(list(range(BATCH)))
    market.reset()
    rng = np.random.default_rng(3)
    for _ in range(6):
        step_devices(market, legal_random(market, rng))
        assert np.all(market.ledger.conservation_error() < 1e-9)
        assert np.all(market.ledger.balances[:, : market.bank] >= -1e-9)


def test_reputation_counts_failures() -> None:
    market = OffloadingMarket(
        num_instances=BATCH, reputation=True, reliability=[0.0, 0.0], max_cycles=2
    )
    market.seed(list(range(BATCH)))
    market.reset()
    game = market.game
    actions = np.where(game.action_mask[..., 1], 1, 0)
    step = step_devices(market, actions)
    failed = step.infos["device"][keys.TASK_FAILED]
    np.testing.assert_array_equal(failed, actions == 1)
    np.testing.assert_array_equal(market.failures[:, 0], (actions == 1).sum(axis=1))
    scores = market.reputation_scores()[:, 0]
    np.testing.assert_allclose(scores, 1.0 / (market.failures[:, 0] + 2.0))


def test_rgb_frame_is_drawn() -> None:
    env = ledgerzoo.make("offloading_v0", render_mode="rgb_array")
    observations, _ = env.reset(seed=0)
    actions = {
        agent: int(np.flatnonzero(observation["action_mask"])[-1])
        for agent, observation in observations.items()
    }
    env.step(actions)
    frame = env.render()
    assert frame.dtype == np.uint8
    assert frame.ndim == 3
    assert frame.shape[2] == 3
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10, "the frame is nearly blank"


def test_solve_reports_exact_optimum() -> None:
    market = OffloadingMarket(num_instances=1)
    market.seed([0])
    market.reset()
    result = market.solve()
    assert result["converged"]
    assert result["social_optimum"]["exact"]
    assert result["price_of_anarchy"] >= 1.0 - 1e-12
    nash = equilibrium.solve_nash(market.game)
    assert result["total_cost"] == pytest.approx(float(nash.total_cost[0]))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"scenario": {"bogus": 1}}, "unknown scenario field 'bogus'"),
        ({"scenario": {"n_devices": 3}}, "n_devices"),
        ({"scenario": {"side": -1.0}}, "side"),
        ({"leaders": "elected"}, "leaders 'elected'"),
        ({"reliability": [0.9, 0.1]}, "reliability"),
        ({"device_balance": -1.0}, "device_balance"),
        ({"bank_rate": float("nan")}, "bank_rate"),
        ({"price_points": 1}, "price_points"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ledgerzoo.make("offloading_v0", **kwargs)


def test_small_blocks_warn_and_flag_rejections() -> None:
    with pytest.warns(UserWarning, match="block_capacity"):
        market = OffloadingMarket(
            num_instances=2,
            max_cycles=30,
            ledger={"mode": "chain", "block_capacity": 1, "queue_capacity": 8},
        )
    market.seed([0, 1])
    market.reset()
    rng = np.random.default_rng(4)
    flagged = False
    for _ in range(30):
        step = step_devices(market, legal_random(market, rng))
        flagged |= bool(step.infos["device"][keys.PAYMENT_REJECTED].any())
        assert np.all(market.ledger.conservation_error() < 1e-9)
    assert flagged, "a queue of 8 with one transaction per block never rejected a payment"


def test_loan_book_holds_every_relay_fee() -> None:
    scenario = {
        "side": 300.0,
        "radio_range": 60.0,
        "edge_range": 40.0,
        "edge_positions": [[20.0, 20.0]],
    }
    market = OffloadingMarket(
        num_instances=1,
        n_devices=40,
        n_edges=1,
        scenario=scenario,
        device_balance=0.0,
        loans=True,
        max_cycles=2,
    )
    market.seed([0])
    market.reset()
    actions = np.where(market.game.action_mask[..., 1], 1, 0)
    step = step_devices(market, actions)
    assert not step.infos["device"][keys.PAYMENT_REJECTED].any()
    provider, relays = model.action_payments(market.game)
    bills = np.take_along_axis(provider + relays, actions[..., None], axis=2)[..., 0]
    np.testing.assert_allclose(step.infos["device"][keys.INTEREST], market.bank_rate * bills)


def test_best_response_keeps_to_affordable_choices() -> None:
    market = OffloadingMarket(num_instances=2, device_balance=0.0, reference=True, max_cycles=2)
    market.seed([0, 1])
    market.reset()
    step = step_devices(market, np.zeros((2, market.n_devices), dtype=np.int64))
    infos = step.infos["device"]
    # Only local execution is affordable, so no device can deviate.
    np.testing.assert_array_equal(infos[keys.BEST_RESPONSE_ACTION], 0)
    np.testing.assert_allclose(infos[keys.BEST_RESPONSE_UTILITY], infos[keys.UTILITY])


def test_learned_prices_keep_optimum_below_equilibrium() -> None:
    market = OffloadingMarket(num_instances=2, leaders="learned", reference=True, max_cycles=2)
    market.seed([0, 1])
    market.reset()
    market.step(
        {
            "edge": np.zeros((2, market.n_edges, 1), dtype=np.float32),
            "device": np.zeros((2, market.n_devices), dtype=np.int64),
        }
    )
    infos = market.step(
        {
            "edge": np.zeros((2, market.n_edges, 1), dtype=np.float32),
            "device": np.zeros((2, market.n_devices), dtype=np.int64),
        }
    ).infos["device"]
    optimum = infos[f"{keys.REFERENCE}/{keys.OPTIMUM_COST}"]
    equilibrium_total = infos[f"{keys.REFERENCE}/{keys.TOTAL_COST}"]
    assert np.all(optimum <= equilibrium_total + 1e-9)
    assert not infos[f"{keys.REFERENCE}/{keys.OPTIMUM_EXACT}"].any()


def test_failed_task_reward() -> None:
    market = OffloadingMarket(
        num_instances=2,
        reputation=True,
        reliability=[0.0, 0.0],
        scenario={"mining_task_share": 1.0},
        max_cycles=2,
    )
    market.seed([0, 1])
    market.reset()
    game = market.game
    actions = np.where(game.action_mask[..., 1], 1, 0)
    step = step_devices(market, actions)
    failed = actions == 1
    provider, _ = model.action_payments(game)
    price = np.take_along_axis(provider, actions[..., None], axis=2)[..., 0]
    expected = model.rewards(game, actions) - np.where(
        failed, game.mining_income - price + market.failure_penalty, 0.0
    )
    np.testing.assert_allclose(step.rewards["device"], expected, rtol=1e-12)


def test_single_agent_face_rejects_masks() -> None:
    with pytest.raises(ValueError, match="MaskablePPO"):
        ledgerzoo.make_single_agent("offloading_v0", n_devices=1)
