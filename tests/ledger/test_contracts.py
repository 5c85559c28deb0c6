"""Tests of the ledger's contracts: loans, escrow, and Sprite's relay credits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerzoo.ledger.contracts import (
    ESCROW_REFUNDED,
    ESCROW_RELEASED,
    LOAN_DEFAULTED,
    LOAN_REPAID,
    Escrow,
    LoanBook,
    charge_credits,
    credit_payouts,
    pay_credits,
)
from ledgerzoo.ledger.core import Ledger

ALPHA, BETA = 1.0, 0.4


def test_loan_repaid_at_maturity() -> None:
    ledger = Ledger(["lender", "borrower"], 1, "instant", initial_balances=[100.0, 5.0])
    loans = LoanBook(ledger)
    slot = loans.open(0, 1, 50.0, 0.1, term=3)
    for _ in range(3):
        assert not loans.settle_due().repaid.any(), "repaid before maturity"
        ledger.end_round()

    events = loans.settle_due()
    ledger.end_round()

    assert events.repaid[0, slot[0]], events
    assert loans.status[0, slot[0]] == LOAN_REPAID, loans.status
    assert ledger.balances[0, 0] == pytest.approx(105.0), ledger.balances
    assert ledger.balances[0, 1] == pytest.approx(0.0), ledger.balances
    assert ledger.conservation_error()[0] < 1e-9


def test_loan_defaults_when_borrower_short() -> None:
    ledger = Ledger(
        ["lender", "borrower", "seller"], 1, "instant", initial_balances=[100.0, 0.0, 0.0]
    )
    loans = LoanBook(ledger)
    slot = loans.open(0, 1, 50.0, 0.1, term=1)
    ledger.end_round()
    ledger.submit([[1]], [[2]], [[20.0]])  # the borrower spends part of the loan
    ledger.end_round()

    events = loans.settle_due()

    assert events.defaulted[0, slot[0]], events
    assert loans.status[0, slot[0]] == LOAN_DEFAULTED, loans.status
    assert loans.defaults[0, 1] == 1, loans.defaults
    assert loans.defaulted_amount[0, 1] == pytest.approx(55.0), loans.defaulted_amount
    assert loans.lost_amount[0, 0] == pytest.approx(55.0), loans.lost_amount
    assert ledger.balances[0, 1] == pytest.approx(30.0), "a default must move nothing"


def test_loan_beyond_budget_not_opened() -> None:
    ledger = Ledger(
        ["lender", "borrower"], 2, "instant", initial_balances=[[10.0, 0.0], [100.0, 0.0]]
    )
    loans = LoanBook(ledger)

    slot = loans.open(0, 1, 50.0, 0.1, term=2)

    assert slot.tolist() == [-1, 0], slot
    assert loans.outstanding()[:, 1].tolist() == [0.0, 50.0], loans.outstanding()


def test_escrow_release_after_lock_confirms() -> None:
    config = {"mode": "chain", "block_interval": 1, "confirmations": 0}
    ledger = Ledger(["buyer", "seller"], 1, config, initial_balances=[10.0, 0.0])
    escrow = Escrow(ledger)
    slot = escrow.lock(0, 1, 6.0)

    early = escrow.release(slot)
    ledger.end_round()
    late = escrow.release(slot)
    ledger.end_round()

    assert not early[0], "released before the lock confirmed"
    assert late[0], "release rejected after the lock confirmed"
    assert escrow.status[0, slot[0]] == ESCROW_RELEASED
    assert ledger.balances[0, :2].tolist() == [4.0, 6.0], ledger.balances


def test_escrow_refund_returns_payer() -> None:
    ledger = Ledger(["buyer", "seller"], 1, "instant", initial_balances=[10.0, 0.0])
    escrow = Escrow(ledger)
    slot = escrow.lock(0, 1, 6.0)
    ledger.end_round()

    refunded = escrow.refund(slot)
    ledger.end_round()
    again = escrow.release(slot)

    assert refunded[0]
    assert escrow.status[0, slot[0]] == ESCROW_REFUNDED
    assert not again[0], "a refunded escrow was paid out again"
    assert ledger.balances[0, :2].tolist() == [10.0, 0.0], ledger.balances


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ([True, True, True], [ALPHA, ALPHA, BETA]),
        ([True, False, True], [ALPHA, 0.0, BETA]),
        ([True, True, False], [ALPHA, BETA, 0.0]),
        ([False, False, False], [0.0, 0.0, 0.0]),
        ([False, False, True], [0.0, 0.0, BETA]),
    ],
)
def test_credit_payouts_rule(reported: list[bool], expected: list[float]) -> None:
    payouts = credit_payouts([reported], ALPHA, BETA)

    assert payouts[0].tolist() == expected, payouts


@settings(max_examples=60, deadline=None)
@given(
    paths=st.integers(1, 6).flatmap(
        lambda count: st.lists(
            st.tuples(st.lists(st.booleans(), min_size=count, max_size=count), st.booleans()),
            min_size=1,
            max_size=5,
        )
    )
)
def test_credit_payouts_match_path_rule(paths: list) -> None:
    reported = np.array([flags for flags, _ in paths])
    delivered = np.array([received for _, received in paths])

    for receiver in (None, delivered):
        payouts = credit_payouts(reported, ALPHA, BETA, delivered=receiver)

        for b, (flags, received) in enumerate(paths):
            reporters = [k for k, flag in enumerate(flags) if flag]
            last = len(flags) if receiver is not None and received else max(reporters, default=-1)
            expected = []
            for k, flag in enumerate(flags):
                if flag and k == last:
                    expected.append(BETA)
                elif flag and k < last:
                    expected.append(ALPHA)
                else:
                    expected.append(0.0)
            assert payouts[b].tolist() == expected, (flags, received, receiver is None)


def test_credit_payouts_need_alpha_above_beta() -> None:
    with pytest.raises(ValueError, match="alpha > beta"):
        credit_payouts([[True]], 0.5, 0.5)


def clear_message(reported: list[bool]) -> tuple[Ledger, np.ndarray]:
    """Charge a sender for a 3-relay path, confirm, pay the relays, confirm; return both."""
    ledger = Ledger(["sender", "r0", "r1", "r2"], 1, "instant", initial_balances=[10.0, 0, 0, 0])
    charged = charge_credits(ledger, 0, 3, ALPHA)
    ledger.end_round()
    paid = pay_credits(ledger, [[1, 2, 3]], [reported], ALPHA, BETA, charged)
    ledger.end_round()
    return ledger, paid


def test_withheld_receipt_keeps_sender_charge() -> None:
    honest, _ = clear_message([True, True, True])
    withheld, _ = clear_message([True, False, True])

    assert honest.balances[0, 0] == withheld.balances[0, 0] == 10.0 - 3 * ALPHA
    assert withheld.balances[0, 2] < honest.balances[0, 2], "a silent relay earned as much"
    for ledger in (honest, withheld):
        assert ledger.conservation_error()[0] < 1e-9


def test_collusion_gains_nothing() -> None:
    honest, _ = clear_message([True, True, True])
    colluding, _ = clear_message([True, True, False])

    # The sender and the last relay together: suppressing its receipt lowers their total.
    honest_pair = honest.balances[0, 0] + honest.balances[0, 3]
    colluding_pair = colluding.balances[0, 0] + colluding.balances[0, 3]
    assert colluding_pair <= honest_pair, f"{colluding_pair} > {honest_pair}"
    kept = colluding.balances[0, colluding.clearing]
    assert kept == pytest.approx(3 * ALPHA - ALPHA - BETA), kept


def test_public_view_hides_balances() -> None:
    ledger = Ledger(["lender", "borrower"], 1, "instant", initial_balances=[100.0, 10.0])
    loans = LoanBook(ledger)
    loans.open(0, 1, 50.0, 0.1, term=1)
    ledger.end_round()
    ledger.end_round()
    loans.settle_due()

    view = ledger.public_view(loans)

    assert "balances" not in view, sorted(view)
    assert view["received_total"][0, 1] == 50.0, view["received_total"]
    assert view["pending_outgoing"][0, 1] == pytest.approx(55.0), view["pending_outgoing"]
    assert view["defaults"][0].tolist() == [0, 0, 0, 0, 0], view["defaults"]


def test_loan_book_opens_several_loans_per_instance() -> None:
    ledger = Ledger(["a", "b", "borrower"], 2, "instant", initial_balances=[10.0, 10.0, 0.0])
    loans = LoanBook(ledger, capacity=3)
    slots = loans.open([[0, 1]], 2, [[4.0, 0.0], [20.0, 5.0]], [[0.1, 0.2]], term=1)

    # Instance 1's first loan is above lender a's balance, so only its second one opens, in
    # the slot that its place among the requested loans assigns it.
    assert slots.tolist() == [[0, -1], [-1, 1]]
    np.testing.assert_allclose(loans.outstanding()[:, 2], [4.0, 5.0])
    np.testing.assert_allclose(loans.outstanding_lent()[:, :2], [[4.0, 0.0], [0.0, 5.0]])


def test_loan_book_reuses_closed_slots() -> None:
    ledger = Ledger(["lender", "borrower"], 1, "instant", initial_balances=[100.0, 50.0])
    loans = LoanBook(ledger, capacity=1)
    for round_index in range(4):
        events = loans.settle_due()
        slot = loans.open(0, 1, 10.0, 0.1, term=1)
        ledger.end_round()
        assert slot[0] == 0, f"no free slot in round {round_index}"
        if round_index:
            assert events.repaid[0, 0], events

    # A full book opens nothing.
    assert loans.open(0, 1, 10.0, 0.1, term=1)[0] == -1


def test_delivered_message_pays_every_reporter_alpha() -> None:
    reported = [[True, False, True], [True, True, True]]
    payouts = credit_payouts(reported, ALPHA, BETA, delivered=[True, False])
    # Delivered: the receiver is the last reporter, so relays 0 and 2 both earn alpha.
    np.testing.assert_allclose(payouts[0], [ALPHA, 0.0, ALPHA])
    # Dropped after relay 2: relay 2 is the last reporter and earns beta.
    np.testing.assert_allclose(payouts[1], [ALPHA, ALPHA, BETA])


def test_forwarding_beats_dropping_when_delivered() -> None:
    # The last relay earns alpha by forwarding (the receiver then reports) and only beta by
    # dropping the message and reporting it.
    forwarded = credit_payouts([[True, True]], ALPHA, BETA, delivered=[True])[0, 1]
    dropped = credit_payouts([[True, True]], ALPHA, BETA, delivered=[False])[0, 1]
    assert forwarded == ALPHA
    assert dropped == BETA
    assert forwarded > dropped
