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

    def open(
        self,
        lender: Any,
        borrower: Any,
        principal: Any,
        rate: Any,
        term: int,
        payee: Any = None,
    ) -> np.ndarray:
        """Open up to K loans per instance, one for each entry whose ``principal`` is above 0.

        Each principal moves lender -> borrower as a LOAN_PRINCIPAL transaction, in order
        k = 0..K-1. A loan is not opened when the ledger rejects its principal (for example,
        the lender's balance is short) or when every slot of the book contains an active loan.
        Slots of repaid and defaulted loans are reused.

        Args:
            lender, borrower: Account indices, broadcastable to (B, K); (B,) means K = 1.
            principal: Coins, broadcastable to (B, K); 0 opens nothing.
            rate: Interest rate per term, broadcastable to (B, K).
            term: Rounds until maturity (>= 1).
            payee: Account the principal is paid to, broadcastable like ``lender``; by
                default the borrower. A loan that pays the borrower's bill directly (credit)
                names the bill's payee, and the borrower still owes the repayment.

        Returns:
            Each loan's slot, or -1 where none was opened; (B, K), or (B,) for (B,) inputs.
        """
        if term < 1:
            raise ValueError(f"loan term must be at least 1 round, got {term}")
        batch = self.ledger.num_instances
        one_column = all(
            np.ndim(value) <= 1 for value in (lender, borrower, principal, rate, payee)
        )
        lender_array = _as_columns(lender, np.int64, batch)
        borrower_array = _as_columns(borrower, np.int64, batch)
        principal_array = _as_columns(principal, np.float64, batch)
        rate_array = _as_columns(rate, np.float64, batch)
        shape = np.broadcast_shapes(
            lender_array.shape, borrower_array.shape, principal_array.shape, rate_array.shape
        )
        lender_array, borrower_array, principal_array, rate_array = (
            value if value.shape == shape else np.broadcast_to(value, shape)
            for value in (lender_array, borrower_array, principal_array, rate_array)
        )
        payee_array = (
            borrower_array
            if payee is None
            else np.broadcast_to(_as_columns(payee, np.int64, batch), shape)
        )

        # The j-th requested loan of an instance takes its j-th free slot.
        batch, capacity = self.status.shape
        free = self.status != LOAN_ACTIVE
        requested = principal_array > 0.0
        request_rank = _row_cumsum(requested) - 1
        free_count = _row_cumsum(free)[:, -1]
        requested &= request_rank < free_count[:, None]
        # Free slots as flat indices b * capacity + slot, instance by instance in slot order:
        # instance b's j-th free slot is entry first_free[b] + j.
        free_slots = np.flatnonzero(free)
        first_free = np.cumsum(free_count) - free_count
        pick = np.clip(first_free[:, None] + request_rank, 0, max(free_slots.size - 1, 0))
        slot = free_slots[pick] % capacity if free_slots.size else np.zeros_like(pick)
        submission = self.ledger.submit(
            lender_array, payee_array, principal_array, Kind.LOAN_PRINCIPAL, where=requested
        )
        opened = requested & submission.accepted
        entries = np.flatnonzero(opened)
        index = (entries // opened.shape[1]) * capacity + slot.reshape(-1)[entries]
        _flat(self.status)[index] = LOAN_ACTIVE
        _flat(self.lender)[index] = lender_array.reshape(-1)[entries]
        _flat(self.borrower)[index] = borrower_array.reshape(-1)[entries]
        _flat(self.principal)[index] = principal_array.reshape(-1)[entries]
        _flat(self.rate)[index] = rate_array.reshape(-1)[entries]
        _flat(self.maturity)[index] = self.ledger.round + term
        slots = np.where(opened, slot, -1)
        return slots[:, 0] if one_column else slots

    def settle_due(self) -> LoanEvents:
        """Repay or default every active loan that matures in the ledger's current round."""
        due = (self.status == LOAN_ACTIVE) & (self.maturity <= self.ledger.round)
        repayment = self.principal * (1.0 + self.rate)
        repaid = np.zeros_like(due)
        defaulted = np.zeros_like(due)
        # Only the slots with a due loan in some instance are submitted, in slot order, so that
        # a borrower's repayments are checked one after the other against its balance.
        columns = np.flatnonzero(due.any(axis=0))
        if columns.size:
            # When every slot is due in some instance (usual with few slots), a full slice
            # selects the columns without copying them.
            columns_or_all = slice(None) if columns.size == due.shape[1] else columns
            rows = due[:, columns_or_all]
            submission = self.ledger.submit(
                self.borrower[:, columns_or_all],
                self.lender[:, columns_or_all],
                repayment[:, columns_or_all],
                Kind.REPAYMENT,
                where=rows,
            )
            repaid[:, columns_or_all] = rows & submission.accepted
            # NOTE: a repayment that the ledger rejects because the instance's queue is full
            # also counts as a default. Markets size the queue so that it does not fill.
            defaulted[:, columns_or_all] = rows & ~submission.accepted
        if defaulted.any():
            unpaid = np.where(defaulted, repayment, 0.0)
            self.defaults += self.ledger.sum_by_account(self.borrower, defaulted).astype(np.int64)
            self.defaulted_amount += self.ledger.sum_by_account(self.borrower, unpaid)
            self.lost_amount += self.ledger.sum_by_account(self.lender, unpaid)
        self.status = np.where(repaid, LOAN_REPAID, self.status)
        self.status = np.where(defaulted, LOAN_DEFAULTED, self.status)
        return LoanEvents(
            repaid=repaid, defaulted=defaulted, repayment=np.where(repaid, repayment, 0.0)
        )

    def outstanding(self) -> np.ndarray:
        """Principal of active loans owed by each account, (B, A)."""
        return self.ledger.sum_where(self.borrower, self.principal, self.status == LOAN_ACTIVE)

    def outstanding_lent(self) -> np.ndarray:
        """Principal of active loans lent by each account, (B, A)."""
        return self.ledger.sum_where(self.lender, self.principal, self.status == LOAN_ACTIVE)


def _as_columns(value: Any, dtype: Any, batch: int) -> np.ndarray:
    """Turn a number or a (B,) array into one column (B, 1); leave (B, K) arrays as they are."""
    array = np.asarray(value, dtype=dtype)
    if array.ndim <= 1:
        array = np.broadcast_to(array, (batch,))[:, None]
    return array


def _row_cumsum(mask: np.ndarray) -> np.ndarray:
    """Running count of true entries along each row of a (B, K) mask, int64.

    Counted on the transposed mask, one whole-column addition per k: numpy's row-wise cumsum
    costs a call per row, which dominates at large B.
    """
    if mask.shape[1] == 1:
        return mask.astype(np.int64)
    columns = np.ascontiguousarray(mask.T)
    return np.cumsum(columns, axis=0, dtype=np.int64).T


def _flat(array: np.ndarray) -> np.ndarray:
    """Return a 1-D view of a C-contiguous array, to write through flat indices.

    Raises:
        ValueError: If the array is not C-contiguous, because the writes would go to a copy.
    """
    if not array.flags.c_contiguous:
        raise ValueError("loan book arrays must be C-contiguous to be written through flat views")
    return array.reshape(-1)


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
            self.amount[rows, safe][:, None],
            Kind.ESCROW_RELEASE if release else Kind.ESCROW_REFUND,
            where=valid[:, None],
        )
        paid = valid & submission.accepted[:, 0]
        done = ESCROW_RELEASED if release else ESCROW_REFUNDED
        self.status[rows[paid], safe[paid]] = done
        return paid


def credit_payouts(reported: Any, alpha: float, beta: float, delivered: Any = None) -> np.ndarray:
    """Compute Sprite's credit for each relay of a path from who reported a receipt.

    The service finds the last node of the path that reported the message. Every relay that
    reported before it is paid alpha; the last reporter is paid beta when it is a relay; a
    relay that did not report is paid nothing. The receiver reports every message it
    receives, so when the message was delivered the receiver is the last reporter and every
    reporting relay is paid alpha.

    Args:
        reported: Whether each relay reported, in path order from sender to receiver, (B, K).
        alpha: Credit per relay before the last reporter.
        beta: Credit of the last reporter, with alpha > beta >= 0.
        delivered: Whether the receiver got (and so reported) each message, (B,); None
            means not delivered, so the last reporting relay is the last reporter.

    Returns:
        Credits (coins), (B, K).

    Raises:
        ValueError: If alpha <= beta or beta < 0.
    """
    if not alpha > beta >= 0.0:
        raise ValueError(f"Sprite credits need alpha > beta >= 0, got alpha={alpha}, beta={beta}")
    reported = np.atleast_2d(np.asarray(reported, dtype=bool))
    count = reported.shape[1]
    if count == 0:
        return np.zeros(reported.shape)  # a path without relays pays no credit
    positions = np.arange(count)[None, :]
    # Position of the last relay that reported, -1 where none did. It takes one whole-column
    # pass per path position, because numpy reduces a short last axis one row at a time, which
    # costs far more at large B.
    last = np.full(reported.shape[0], -1, dtype=np.int64)
    for k in range(count):
        last = np.where(reported[:, k], k, last)
    if delivered is not None:
        # The receiver, past the last relay, is the last reporter.
        received = np.broadcast_to(np.asarray(delivered, dtype=bool), (reported.shape[0],))
        last = np.where(received, count, last)
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
    ledger: Ledger,
    relays: Any,
    reported: Any,
    alpha: float,
    beta: float,
    charged: Any,
    delivered: Any = None,
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
        delivered: Whether the receiver got each message, (B,) (see :func:`credit_payouts`).

    Returns:
        Coins paid to each relay, (B, K).
    """
    relays = np.atleast_2d(np.asarray(relays, dtype=np.int64))
    payouts = credit_payouts(np.broadcast_to(reported, relays.shape), alpha, beta, delivered)
    payouts = np.where(np.asarray(charged, dtype=bool)[:, None], payouts, 0.0)
    submission = ledger.submit(
        ledger.clearing, relays, payouts, Kind.CREDIT_PAYOUT, where=payouts > 0.0
    )
    return np.where(submission.accepted, payouts, 0.0)
