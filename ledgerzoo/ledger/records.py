"""Transaction records and the names shared by every part of the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Kind(IntEnum):
    """Purpose of a transaction (stored as a small integer in the batched arrays)."""

    PAYMENT = 0  # a plain transfer
    DATA_PURCHASE = 1  # the borrower buys data (lending markets)
    LOAN_PRINCIPAL = 2  # lender -> borrower
    REPAYMENT = 3  # borrower -> lender, principal plus interest at maturity
    ESCROW_LOCK = 4  # payer -> escrow account
    ESCROW_RELEASE = 5  # escrow account -> payee
    ESCROW_REFUND = 6  # escrow account -> payer
    CREDIT_CHARGE = 7  # sender -> clearing service (relay credits)
    CREDIT_PAYOUT = 8  # clearing service -> relay
    MINT = 9  # mint -> account: new value (income, block rewards); the only source of value
    MILESTONE = 10  # a coordinator milestone in tangle mode; moves no value


class Status(IntEnum):
    """State of a transaction."""

    PENDING = 0  # debited from the payer, not yet credited to the payee
    CONFIRMED = 1  # credited to the payee
    REJECTED = 2  # never debited: invalid, insufficient funds, or the queue was full
    SKIPPED = 3  # not submitted: masked out by the caller's ``where``


@dataclass(frozen=True)
class TransactionRecord:
    """One transaction of one instance, as the audit log stores it.

    Attributes:
        tx_id: Identifier, unique within the instance and increasing in submission order.
        payer: Index of the paying account.
        payee: Index of the receiving account.
        amount: Coins moved, >= 0.
        kind: What the transaction is for.
        round_submitted: Round in which it was submitted.
    """

    tx_id: int
    payer: int
    payee: int
    amount: float
    kind: Kind
    round_submitted: int
