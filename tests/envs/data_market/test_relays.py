"""Relays paid by Sprite credits: incentives, collusion and conservation of value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ledgerzoo.envs.data_market import relays
from ledgerzoo.envs.data_market.scenario import small_market
from ledgerzoo.ledger.contracts import charge_credits, pay_credits
from ledgerzoo.ledger.core import Ledger
from ledgerzoo.ledger.records import Kind

CREDITS = {
    "relay_credit": 1.0,
    "last_reporter_credit": 0.4,
    "forward_cost": 0.2,
    "receipt_cost": 0.05,
}
ALPHA, BETA = CREDITS["relay_credit"], CREDITS["last_reporter_credit"]
FORWARD, RECEIPT = CREDITS["forward_cost"], CREDITS["receipt_cost"]


def every_position(longest: int) -> tuple[np.ndarray, np.ndarray]:
    """Path lengths and positions covering every position of paths of 1 to ``longest`` relays."""
    pairs = [(length, k) for length in range(1, longest + 1) for k in range(length)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def test_deviation_payoffs_match_closed_forms() -> None:
    lengths, positions = every_position(4)

    payoffs = relays.deviation_payoffs(lengths, positions, **CREDITS)

    assert np.allclose(payoffs.forward_and_report, ALPHA - FORWARD - RECEIPT)
    assert np.allclose(payoffs.forward_silently, -FORWARD)
    assert np.allclose(payoffs.drop_and_report, BETA - RECEIPT)
    assert np.allclose(payoffs.drop_silently, 0.0)


def test_dropping_earns_less_than_forwarding() -> None:
    lengths, positions = every_position(4)

    payoffs = relays.deviation_payoffs(lengths, positions, **CREDITS)

    assert np.all(payoffs.forward_and_report > payoffs.drop_and_report)
    assert np.all(payoffs.forward_and_report > payoffs.drop_silently)


def test_withholding_earns_less_than_reporting() -> None:
    lengths, positions = every_position(4)

    payoffs = relays.deviation_payoffs(lengths, positions, **CREDITS)

    assert np.all(payoffs.forward_and_report > payoffs.forward_silently)
    assert np.all(payoffs.drop_and_report > payoffs.drop_silently)


@pytest.mark.parametrize(
    ("alpha", "beta", "forward_cost", "receipt_cost"),
    list(itertools.product([0.5, 1.0, 2.0], [0.0, 0.2, 0.45], [0.0, 0.3, 0.6], [0.0, 0.1, 0.3])),
)
def test_equilibrium_condition_is_sufficient(
    alpha: float, beta: float, forward_cost: float, receipt_cost: float
) -> None:
    credits = {
        "relay_credit": alpha,
        "last_reporter_credit": beta,
        "forward_cost": forward_cost,
        "receipt_cost": receipt_cost,
    }
    lengths, positions = every_position(3)

    payoffs = relays.deviation_payoffs(lengths, positions, **credits)
    holds = relays.forward_and_report_is_equilibrium(alpha, beta, forward_cost, receipt_cost)

    best = payoffs.forward_and_report
    others = np.stack(
        [payoffs.forward_silently, payoffs.drop_and_report, payoffs.drop_silently], axis=0
    )
    if holds:
        assert np.all(best > others), f"{credits}: a deviation earns {others.max()} >= {best}"
    if alpha - beta < forward_cost:
        # Dropping and reporting then beats forwarding: the condition is needed there.
        assert np.all(payoffs.drop_and_report > best), credits


def test_relay_after_drop_receives_nothing() -> None:
    forward = np.array([[[True, False, True]]])
    report = np.ones((1, 1, 3), dtype=bool)

    outcome = relays.relay_path_outcome(forward, report, np.array([[3]]), **CREDITS)

    assert outcome.received[0, 0].tolist() == [True, True, False]
    assert outcome.reported[0, 0].tolist() == [True, True, False]
    assert not outcome.delivered[0, 0]
    # The dropping relay is the last reporter and gets beta, and the one before it gets alpha.
    assert outcome.credits[0, 0].tolist() == [ALPHA, BETA, 0.0]
    assert outcome.costs[0, 0].tolist() == [FORWARD + RECEIPT, RECEIPT, 0.0]


def test_direct_path_charges_nothing() -> None:
    empty = np.zeros((1, 2, 0), dtype=bool)

    outcome = relays.relay_path_outcome(empty, empty, np.array([[0, 0]]), **CREDITS)

    assert outcome.delivered.all()
    assert np.all(outcome.sender_charges == 0.0)
    assert np.all(outcome.clearing_kept == 0.0)


def test_sender_collusion_gains_nothing() -> None:
    for length in range(1, 5):
        honest_forward = np.ones((1, 1, length), dtype=bool)
        honest = relays.relay_path_outcome(
            honest_forward, honest_forward, np.array([[length]]), **CREDITS
        )
        for position in range(length):
            withheld_report = honest_forward.copy()
            withheld_report[0, 0, position] = False
            colluding = relays.relay_path_outcome(
                honest_forward, withheld_report, np.array([[length]]), **CREDITS
            )
            # The sender's charge ignores the reports, so the pair's total only loses the
            # relay's credit (net of the receipt cost it saves).
            assert colluding.sender_charges[0, 0] == honest.sender_charges[0, 0]
            pair_honest = -honest.sender_charges[0, 0] + honest.utilities[0, 0, position]
            pair_colluding = -colluding.sender_charges[0, 0] + colluding.utilities[0, 0, position]
            assert pair_colluding < pair_honest, (
                f"path of {length}, relay {position}: colluding {pair_colluding}, "
                f"honest {pair_honest}"
            )


def settle_on_ledger(outcome: relays.RelayOutcome, batch: int) -> Ledger:
    """Charge the sender of a 3-relay path with charge_credits and pay the outcome's credits.

    The payouts are submitted from the clearing account, because ``pay_credits`` cannot count
    the buyer's receipt (see the relays module).
    """
    ledger = Ledger(["sender", "r0", "r1", "r2"], batch, "instant", initial_balances=[10, 0, 0, 0])
    charged = charge_credits(ledger, 0, 3, ALPHA)
    ledger.end_round()
    assert charged.all()
    submission = ledger.submit(
        ledger.clearing, np.array([[1, 2, 3]]), outcome.credits[:, 0], Kind.CREDIT_PAYOUT
    )
    ledger.end_round()
    assert submission.accepted.all()
    return ledger


def test_collusion_on_ledger_gains_nothing() -> None:
    def outcome_of(report: list[bool]) -> relays.RelayOutcome:
        forward = np.ones((1, 1, 3), dtype=bool)
        return relays.relay_path_outcome(forward, np.array([[report]]), np.array([[3]]), **CREDITS)

    honest = settle_on_ledger(outcome_of([True, True, True]), 1)
    for position in range(3):
        report = [True, True, True]
        report[position] = False
        colluding = settle_on_ledger(outcome_of(report), 1)
        relay = 1 + position
        honest_pair = honest.balances[0, 0] + honest.balances[0, relay]
        colluding_pair = colluding.balances[0, 0] + colluding.balances[0, relay]
        assert colluding_pair < honest_pair, f"relay {position}: {colluding_pair} >= {honest_pair}"
        assert colluding.balances[0, 0] == honest.balances[0, 0], "withholding lowered the charge"
        assert colluding.conservation_error()[0] < 1e-12


def test_credits_conserve_value() -> None:
    rng = np.random.default_rng(31)
    forward = rng.random((64, 10, 4)) < 0.8
    report = rng.random((64, 10, 4)) < 0.7
    length = rng.integers(0, 5, (64, 10))

    outcome = relays.relay_path_outcome(forward, report, length, **CREDITS)

    assert np.allclose(
        outcome.sender_charges, outcome.credits.sum(axis=2) + outcome.clearing_kept, rtol=1e-15
    )
    assert np.all(outcome.clearing_kept >= -1e-15), outcome.clearing_kept.min()
    assert np.all(outcome.credits[~outcome.reported] == 0.0), "a silent relay was paid"
    on_path = np.arange(4) < length[..., None]
    assert np.all(~outcome.received[~on_path]), "padding received a message"


def test_credits_conserve_value_on_ledger() -> None:
    rng = np.random.default_rng(32)
    forward = rng.random((8, 1, 3)) < 0.7
    report = rng.random((8, 1, 3)) < 0.7
    outcome = relays.relay_path_outcome(forward, report, np.full((8, 1), 3), **CREDITS)

    ledger = settle_on_ledger(outcome, 8)

    assert np.all(ledger.conservation_error() < 1e-12), ledger.conservation_error()
    assert np.allclose(ledger.balances[:, 1:4], outcome.credits[:, 0])
    assert np.allclose(ledger.balances[:, ledger.clearing], outcome.clearing_kept[:, 0])
    assert np.allclose(ledger.balances[:, 0], 10.0 - outcome.sender_charges[:, 0])


def test_ledger_rule_matches_when_undelivered() -> None:
    # When the message is not delivered, the last reporter is a relay, and the ledger's own
    # pay_credits agrees with the outcome's credits.
    rng = np.random.default_rng(35)
    forward = rng.random((16, 1, 3)) < 0.6
    forward[:, 0, 2] = False
    report = rng.random((16, 1, 3)) < 0.8
    outcome = relays.relay_path_outcome(forward, report, np.full((16, 1), 3), **CREDITS)
    ledger = Ledger(["sender", "r0", "r1", "r2"], 16, "instant", initial_balances=[10, 0, 0, 0])
    charged = charge_credits(ledger, 0, 3, ALPHA)
    ledger.end_round()

    paid = pay_credits(
        ledger, np.tile([[1, 2, 3]], (16, 1)), outcome.reported[:, 0], ALPHA, BETA, charged
    )

    assert not outcome.delivered.any()
    assert np.allclose(paid, outcome.credits[:, 0])


def test_market_messages_pay_every_relay() -> None:
    market = small_market().sample(np.random.default_rng(33), 4)
    trades = np.random.default_rng(34).random(market.hops.shape) < 0.7
    everyone = np.ones((4, market.n_relays), dtype=bool)

    outcome = relays.market_relay_outcome(market, everyone, everyone, trades)
    utilities = relays.relay_utilities(
        outcome, market.relay_paths.reshape(4, -1, market.relay_paths.shape[-1]), market.n_relays
    )

    assert outcome.delivered.all()
    carried = np.zeros((4, market.n_relays))
    for b, i, j in zip(*np.nonzero(trades), strict=True):
        for relay in market.relay_paths[b, i, j, : market.hops[b, i, j]]:
            carried[b, relay] += 1
    assert np.allclose(utilities, carried * (ALPHA - FORWARD - RECEIPT))
    charges = outcome.sender_charges.reshape(trades.shape)
    assert np.allclose(charges, ALPHA * np.where(trades, market.hops, 0))


def test_choices_follow_relay_index() -> None:
    choices = np.array([[True, False, True]])
    paths = np.array([[[2, 1, -1], [0, -1, -1]]])

    spread = relays.choices_on_paths(choices, paths)

    assert spread.tolist() == [[[True, False, False], [True, False, False]]]


@pytest.mark.parametrize(
    ("length", "message"),
    [(np.array([[4]]), "path_length must lie"), (np.array([3]), "path_length must have shape")],
)
def test_invalid_path_raises(length: np.ndarray, message: str) -> None:
    choice = np.ones((1, 1, 3), dtype=bool)

    with pytest.raises(ValueError, match=message):
        relays.relay_path_outcome(choice, choice, length, **CREDITS)


def test_credits_need_alpha_above_beta() -> None:
    choice = np.ones((1, 1, 2), dtype=bool)
    credits = CREDITS | {"last_reporter_credit": ALPHA}

    with pytest.raises(ValueError, match="alpha > beta"):
        relays.relay_path_outcome(choice, choice, np.array([[2]]), **credits)
