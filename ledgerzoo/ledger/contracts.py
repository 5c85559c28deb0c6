"""Contracts on the batched ledger: loans, escrow, and credit receipts for relays.

Each contract keeps its state in (B, capacity) arrays and moves value only by submitting
ledger transactions, so the ledger's conservation and no-double-spending rules hold for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ledgerzoo.ledger.core import Ledger
from ledgerzoo.ledger.records import Kind

LOAN_ACTIVE, LOAN_REPAID, LOAN_DEFAULTED = 1, 2, 3
ESCROW_LOCKED, ESCROW_RELEASED, ESCROW_REFUNDED = 1, 2, 3


@dataclass(frozen=True)
class LoanEvents:
    """Outcome of the loans that matured this round.

    Attributes:
        repaid: Whether each loan slot was repaid this round, (B, L).
        defaulted: Whether each loan slot defaulted this round, (B, L).
        repayment: Coins submitted as repayment per slot, (B, L).
    """

    repaid: np.ndarray
    defaulted: np.ndarray
    repayment: np.ndarray


class LoanBook:
    """Loans between accounts: principal out at opening, principal plus interest back at maturity.

    At maturity the repayment principal (1 + rate) is submitted from the borrower's spendable
    balance. If that balance does not cover it, the loan defaults: nothing is paid, the default
    is recorded against the borrower and the lender, and ``defaults`` (visible to every agent)
    counts it. Partial repayment is not modelled.

    Args:
        ledger: The ledger the loans settle on.
        capacity: Loans each instance can hold at once (>= 1).
    """

    def __init__(self, ledger: Ledger, capacity: int = 256) -> None:
        if capacity < 1:
            raise ValueError(f"loan capacity must be at least 1, got {capacity}")
        self.ledger = ledger
        shape = (ledger.num_instances, capacity)
        self.status = np.zeros(shape, dtype=np.int64)
        self.lender = np.zeros(shape, dtype=np.int64)
        self.borrower = np.zeros(shape, dtype=np.int64)
        self.principal = np.zeros(shape)
        self.rate = np.zeros(shape)
        self.maturity = np.zeros(shape, dtype=np.int64)
        #: Number of defaults per account as borrower, public to every agent.
        self.defaults = np.zeros((ledger.num_instances, ledger.num_accounts), dtype=np.int64)
        #: Defaults per account as borrower, and the repayments they left unpaid (coins).
        self.defaulted_amount = np.zeros((ledger.num_instances, ledger.num_accounts))
        #: Repayments each account lost as lender to defaults (coins).
        self.lost_amount = np.zeros((ledger.num_instances, ledger.num_accounts))

    def open(self, lender: Any, borrower: Any, principal: Any, rate: Any, term: int) -> np.ndarray:
        """Open one loan per instance where ``principal`` > 0; returns each loan's slot or -1.

        The principal moves lender -> borrower as a LOAN_PRINCIPAL transaction; a loan whose
        principal the ledger rejects (for example, the lender's budget is short) is not opened.

        Args:
            lender, borrower: Account indices, (B,).
            principal: Coins, (B,); 0 opens nothing.
            rate: Interest rate per term, (B,).
            term: Rounds until maturity (>= 1).
        """
        if term < 1:
            raise ValueError(f"loan term must be at least 1 round, got {term}")
        batch = self.ledger.num_instances
        lender = np.broadcast_to(np.asarray(lender, dtype=np.int64), (batch,))
        borrower = np.broadcast_to(np.asarray(borrower, dtype=np.int64), (batch,))
        principal = np.broadcast_to(np.asarray(principal, dtype=np.float64), (batch,))
        rate = np.broadcast_to(np.asarray(rate, dtype=np.float64), (batch,))
        free = self.status == 0
        has_room = free.any(axis=1)
        slot = np.argmax(free, axis=1)
        requested = (principal > 0.0) & has_room
        submission = self.ledger.submit(
            lender[:, None],
            borrower[:, None],
            np.where(requested, principal, 0.0)[:, None],
            Kind.LOAN_PRINCIPAL,
        )
        opened = requested & submission.accepted[:, 0]
        rows = np.flatnonzero(opened)
        s = slot[rows]
        self.status[rows, s] = LOAN_ACTIVE
        self.lender[rows, s] = lender[rows]
        self.borrower[rows, s] = borrower[rows]
        self.principal[rows, s] = principal[rows]
        self.rate[rows, s] = rate[rows]
        self.maturity[rows, s] = self.ledger.round + term
        return np.where(opened, slot, -1)

    def settle_due(self) -> LoanEvents:
        """Repay or default every active loan that matures in the ledger's current round."""
        due = (self.status == LOAN_ACTIVE) & (self.maturity <= self.ledger.round)
        repayment = self.principal * (1.0 + self.rate)
        repaid = np.zeros_like(due)
        defaulted = np.zeros_like(due)
        # One submission per loan slot that has a due loan in some instance, so that a
        # borrower's repayments are checked one after the other against its balance.
        for column in np.flatnonzero(due.any(axis=0)):
            rows = due[:, column]
            amount = np.where(rows, repayment[:, column], 0.0)
            submission = self.ledger.submit(
                self.borrower[:, column : column + 1],
                self.lender[:, column : column + 1],
                amount[:, None],
                Kind.REPAYMENT,
            )
            paid = rows & submission.accepted[:, 0]
            failed = rows & ~paid
            repaid[:, column] = paid
            defaulted[:, column] = failed
        batch_rows = np.repeat(np.arange(due.shape[0])[:, None], due.shape[1], axis=1)
        rows, borrowers, lenders = (
            batch_rows[defaulted],
            self.borrower[defaulted],
            self.lender[defaulted],
        )
        np.add.at(self.defaults, (rows, borrowers), 1)
        np.add.at(self.defaulted_amount, (rows, borrowers), repayment[defaulted])
        np.add.at(self.lost_amount, (rows, lenders), repayment[defaulted])
        self.status = np.where(repaid, LOAN_REPAID, self.status)
        self.status = np.where(defaulted, LOAN_DEFAULTED, self.status)
        return LoanEvents(
            repaid=repaid, defaulted=defaulted, repayment=np.where(repaid, repayment, 0.0)
        )

    def outstanding(self) -> np.ndarray:
        """Principal of active loans owed by each account, (B, A)."""
        totals = np.zeros_like(self.defaulted_amount)
        active = self.status == LOAN_ACTIVE
        rows = np.repeat(np.arange(active.shape[0])[:, None], active.shape[1], axis=1)
        np.add.at(totals, (rows[active], self.borrower[active]), self.principal[active])
        return totals


class Escrow:
    """Value locked in the escrow account until it is released to the payee or refunded.

    ``lock`` submits payer -> escrow; ``release`` and ``refund`` submit escrow -> payee or
    escrow -> payer and need the lock to have confirmed (before that the escrow account does
    not hold the coins, and the ledger rejects the payout).

    Args:
        ledger: The ledger the escrows settle on.
        capacity: Escrows each instance can hold at once (>= 1).
    """

    def __init__(self, ledger: Ledger, capacity: int = 256) -> None:
        if capacity < 1:
            raise ValueError(f"escrow capacity must be at least 1, got {capacity}")
        self.ledger = ledger
        shape = (ledger.num_instances, capacity)
        self.status = np.zeros(shape, dtype=np.int64)
        self.payer = np.zeros(shape, dtype=np.int64)
        self.payee = np.zeros(shape, dtype=np.int64)
        self.amount = np.zeros(shape)

    def lock(self, payer: Any, payee: Any, amount: Any) -> np.ndarray:
        """Lock ``amount`` from payer for payee, one escrow per instance; returns slots or -1."""
        batch = self.ledger.num_instances
        payer = np.broadcast_to(np.asarray(payer, dtype=np.int64), (batch,))
        payee = np.broadcast_to(np.asarray(payee, dtype=np.int64), (batch,))
        amount = np.broadcast_to(np.asarray(amount, dtype=np.float64), (batch,))
        free = self.status == 0
        slot = np.argmax(free, axis=1)
        submission = self.ledger.submit(
            payer[:, None], self.ledger.escrow, amount[:, None], Kind.ESCROW_LOCK
        )
        locked = free.any(axis=1) & submission.accepted[:, 0]
        rows = np.flatnonzero(locked)
        s = slot[rows]
        self.status[rows, s] = ESCROW_LOCKED
        self.payer[rows, s] = payer[rows]
        self.payee[rows, s] = payee[rows]
        self.amount[rows, s] = amount[rows]
        return np.where(locked, slot, -1)

    def release(self, slots: Any) -> np.ndarray:
        """Pay locked escrows to their payees; returns which instances' payouts were accepted."""
        return self._pay_out(slots, release=True)

    def refund(self, slots: Any) -> np.ndarray:
        """Return locked escrows to their payers; returns which payouts were accepted."""
        return self._pay_out(slots, release=False)

    def _pay_out(self, slots: Any, release: bool) -> np.ndarray:
        batch = self.ledger.num_instances
        slot = np.broadcast_to(np.asarray(slots, dtype=np.int64), (batch,))
        rows = np.arange(batch)
        valid = (slot >= 0) & (slot < self.status.shape[1])
        safe = np.where(valid, slot, 0)
        valid &= self.status[rows, safe] == ESCROW_LOCKED
        target = np.where(release, self.payee[rows, safe], self.payer[rows, safe])
        submission = self.ledger.submit(
            self.ledger.escrow,
            target[:, None],
            np.where(valid, self.amount[rows, safe], np.nan)[:, None],
            Kind.ESCROW_RELEASE if release else Kind.ESCROW_REFUND,
        )
        paid = valid & submission.accepted[:, 0]
        done = ESCROW_RELEASED if release else ESCROW_REFUNDED
        self.status[rows[paid], safe[paid]] = done
        return paid


def credit_payouts(reported: Any, alpha: float, beta: float) -> np.ndarray:
    """Compute Sprite's credit for each relay of a path from who reported a receipt.

    The last relay that reported is paid beta; every earlier relay that reported is paid
    alpha; a relay that did not report is paid nothing.

    Args:
        reported: Whether each relay reported, in path order from sender to receiver, (B, K).
        alpha: Credit per relay before the last reporter.
        beta: Credit of the last reporter, with alpha > beta >= 0.

    Returns:
        Credits (coins), (B, K).

    Raises:
        ValueError: If alpha <= beta or beta < 0.
    """
    if not alpha > beta >= 0.0:
        raise ValueError(f"Sprite credits need alpha > beta >= 0, got alpha={alpha}, beta={beta}")
    reported = np.atleast_2d(np.asarray(reported, dtype=bool))
    count = reported.shape[1]
    positions = np.arange(count)[None, :]
    any_report = reported.any(axis=1)
    last = np.where(any_report, count - 1 - np.argmax(reported[:, ::-1], axis=1), -1)
    payouts = np.where(reported & (positions < last[:, None]), alpha, 0.0)
    return np.where(reported & (positions == last[:, None]), beta, payouts)


def charge_credits(ledger: Ledger, sender: Any, relay_count: int, alpha: float) -> np.ndarray:
    """Charge each instance's sender alpha per relay on the path, paid to the clearing service.

    The charge does not depend on what the relays report, so withholding a receipt never
    lowers it. Returns whether each charge was accepted, (B,).
    """
    batch = ledger.num_instances
    submission = ledger.submit(
        np.broadcast_to(np.asarray(sender, dtype=np.int64), (batch,))[:, None],
        ledger.clearing,
        np.full((batch, 1), alpha * relay_count),
        Kind.CREDIT_CHARGE,
    )
    return submission.accepted[:, 0]


def pay_credits(
    ledger: Ledger, relays: Any, reported: Any, alpha: float, beta: float, charged: Any
) -> np.ndarray:
    """Pay each relay its credit from the clearing service, where the sender was charged.

    Call it once the charge has confirmed (the clearing account then has the coins); what is not
    paid out stays with the clearing service.

    Args:
        ledger: The ledger.
        relays: Relay accounts in path order, (B, K).
        reported: Whether each relay reported a receipt, (B, K).
        alpha, beta: Sprite's credits (see :func:`credit_payouts`).
        charged: Whether each instance's sender was charged, (B,).

    Returns:
        Coins paid to each relay, (B, K).
    """
    relays = np.atleast_2d(np.asarray(relays, dtype=np.int64))
    payouts = credit_payouts(np.broadcast_to(reported, relays.shape), alpha, beta)
    payouts = np.where(np.asarray(charged, dtype=bool)[:, None], payouts, 0.0)
    submission = ledger.submit(ledger.clearing, relays, payouts, Kind.CREDIT_PAYOUT)
    return np.where(submission.accepted, payouts, 0.0)
