"""The settlement substrate that every market's payments are to settle on.

- :class:`Ledger` (``core``): batched accounts, transactions and confirmation in the
  ``instant``, ``chain`` and ``tangle`` modes.
- ``contracts``: :class:`LoanBook`, :class:`Escrow`, and Sprite's relay credits.
- ``audit``: the optional hash-linked audit log of one instance, with ``verify`` and ``replay``.
- ``tangle``: the DAG of one instance in tangle mode.
"""

from __future__ import annotations

from ledgerzoo.ledger.audit import AuditError, AuditLog, Block
from ledgerzoo.ledger.contracts import (
    Escrow,
    LoanBook,
    charge_credits,
    credit_payouts,
    pay_credits,
)
from ledgerzoo.ledger.core import (
    MODES,
    SYSTEM_ACCOUNTS,
    Ledger,
    LedgerConfig,
    Settlement,
    Submission,
)
from ledgerzoo.ledger.records import Kind, Status, TransactionRecord

__all__ = [
    "MODES",
    "SYSTEM_ACCOUNTS",
    "AuditError",
    "AuditLog",
    "Block",
    "Escrow",
    "Kind",
    "Ledger",
    "LedgerConfig",
    "LoanBook",
    "Settlement",
    "Status",
    "Submission",
    "TransactionRecord",
    "charge_credits",
    "credit_payouts",
    "pay_credits",
]
