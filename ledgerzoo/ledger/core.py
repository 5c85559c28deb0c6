"""The batched ledger: accounts, transactions and confirmation, for B instances at once.

Every transfer of value in a market is a transaction. Submitting one debits the payer's
spendable balance at once, so nothing can be spent twice, and queues it. It is credited to
the payee only when it confirms. When that happens depends on the mode:

- ``instant``: every transaction confirms at the end of the round it was submitted in, the
  static game of the papers.
- ``chain``: at the end of every ``block_interval``-th round a block takes the oldest
  unblocked transactions, at most ``block_capacity`` of them, and a transaction confirms once
  ``confirmations`` further blocks follow its block (0: in its own block).
- ``tangle``: each transaction approves two earlier ones chosen by a weighted random walk and
  confirms by cumulative weight or by a coordinator milestone. Each instance keeps its own
  DAG (:mod:`ledgerzoo.ledger.tangle`), walked transaction by transaction.

Balances are (B, A) arrays over the agents' accounts followed by the system accounts
``escrow``, ``clearing`` and ``mint``. Only MINT transactions, paid by the mint account,
create value; the mint account may go negative, by exactly the value minted. So the sum over
accounts of the balances plus the amounts in flight never changes. Pending transactions sit
in a fixed-size queue per instance; a submission that finds the queue full is rejected, never
dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ledgerzoo.ledger.records import Kind, Status, TransactionRecord

MODES = ("instant", "chain", "tangle")
SYSTEM_ACCOUNTS = ("escrow", "clearing", "mint")
# Balances within this many coins of an amount count as covering it (float rounding).
FUNDS_TOLERANCE = 1e-9
# Largest value of an integer setting. The queue has (instances x queue_capacity) slots, so
# larger values exhaust memory before they mean anything.
MAX_SETTING = 10_000_000


@dataclass(frozen=True)
class LedgerConfig:
    """Settings of a ledger.

    Attributes:
        mode: ``instant``, ``chain`` or ``tangle``.
        block_interval: Chain mode: rounds between blocks (>= 1).
        block_capacity: Chain mode: transactions a block holds at most (>= 1).
        confirmations: Chain mode: blocks that must follow a transaction's block (>= 0).
        queue_capacity: Pending transactions each instance can hold (>= 1).
        tangle: Tangle mode: settings of the DAG (see :class:`ledgerzoo.ledger.tangle.TangleConfig`).
        audit: Keep a hash-linked audit log per instance (for single envs and debugging).
    """

    mode: str = "instant"
    block_interval: int = 1
    block_capacity: int = 1000
    confirmations: int = 1
    queue_capacity: int = 4096
    tangle: Mapping[str, Any] = field(default_factory=dict)
    audit: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"invalid ledger mode {self.mode!r}; expected one of {list(MODES)}")
        for name, minimum in (
            ("block_interval", 1),
            ("block_capacity", 1),
            ("confirmations", 0),
            ("queue_capacity", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"invalid ledger {name} {value!r}: expected an integer")
            if not minimum <= value <= MAX_SETTING:
                raise ValueError(
                    f"invalid ledger {name} {value!r}: expected an integer in "
                    f"[{minimum}, {MAX_SETTING}]"
                )
            object.__setattr__(self, name, int(value))
        if not isinstance(self.audit, (bool, np.bool_)):
            raise ValueError(f"invalid ledger audit {self.audit!r}: expected true or false")
        if not isinstance(self.tangle, Mapping):
            raise ValueError(
                f"invalid ledger tangle {self.tangle!r}: expected a mapping of tangle settings"
            )
        from ledgerzoo.ledger.tangle import TangleConfig

        allowed = sorted(f.name for f in dataclasses.fields(TangleConfig))
        unknown = sorted(set(self.tangle) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown tangle setting {unknown[0]!r}; allowed settings are {allowed}"
            )
        TangleConfig(**dict(self.tangle))  # raises for an invalid value, naming it

    @classmethod
    def parse(cls, value: LedgerConfig | Mapping[str, Any] | str | None) -> LedgerConfig:
        """Build a config from a mode name, a mapping of settings, or None (instant).

        Raises:
            ValueError: For an unknown setting, naming it and the allowed ones.
        """
        if value is None:
            return cls()
        if isinstance(value, LedgerConfig):
            return value
        if isinstance(value, str):
            return cls(mode=value)
        if not isinstance(value, Mapping):
            raise ValueError(
                f"invalid ledger {value!r}: expected a mode name or a mapping of settings"
            )
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(
                f"unknown ledger setting {unknown[0]!r}; allowed settings are {sorted(allowed)}"
            )
        return cls(**value)


@dataclass(frozen=True)
class Submission:
    """The outcome of :meth:`Ledger.submit`.

    Attributes:
        tx_ids: Identifier of each transaction, (B, K); -1 where it was rejected.
        status: :class:`Status` of each transaction, (B, K): PENDING or REJECTED.
    """

    tx_ids: np.ndarray
    status: np.ndarray

    @property
    def accepted(self) -> np.ndarray:
        """Whether each transaction was accepted, (B, K)."""
        return self.status == Status.PENDING


@dataclass(frozen=True)
class Settlement:
    """Transactions confirmed at the end of a round.

    The confirmed transactions are stored once, as entries in flat slot order. The (B, Q)
    properties ``payer``, ``payee``, ``amount``, ``kind`` and ``tx_id`` spread them over the
    queue's shape each time they are read, because markets read only ``received`` and
    ``paid``, and copying the whole queue every round was a large part of end_round's cost.

    Attributes:
        confirmed: Whether each queue slot confirmed this round, (B, Q).
        entries: Flat indices b * Q + slot of the confirmed slots, ascending, (C,).
        entry_payer, entry_payee, entry_kind, entry_tx_id: Those transactions' fields, (C,).
        entry_amount: Those transactions' amounts (coins), (C,).
        received: Coins credited to each account this round, (B, A).
        paid: Coins of each account's transactions that confirmed this round, (B, A). They
            were debited at submission, and confirmation credits them to the payees.
    """

    confirmed: np.ndarray
    entries: np.ndarray
    entry_payer: np.ndarray
    entry_payee: np.ndarray
    entry_amount: np.ndarray
    entry_kind: np.ndarray
    entry_tx_id: np.ndarray
    received: np.ndarray
    paid: np.ndarray

    @property
    def payer(self) -> np.ndarray:
        """Payer account of each queue slot, (B, Q); 0 where the slot did not confirm."""
        return self._spread(self.entry_payer, 0)

    @property
    def payee(self) -> np.ndarray:
        """Payee account of each queue slot, (B, Q); 0 where the slot did not confirm."""
        return self._spread(self.entry_payee, 0)

    @property
    def amount(self) -> np.ndarray:
        """Amount of each queue slot (coins), (B, Q); 0 where the slot did not confirm."""
        return self._spread(self.entry_amount, 0.0)

    @property
    def kind(self) -> np.ndarray:
        """:class:`Kind` of each queue slot, (B, Q); 0 where the slot did not confirm."""
        return self._spread(self.entry_kind, 0)

    @property
    def tx_id(self) -> np.ndarray:
        """Transaction id of each queue slot, (B, Q); -1 where the slot did not confirm."""
        return self._spread(self.entry_tx_id, -1)

    def _spread(self, values: np.ndarray, fill: Any) -> np.ndarray:
        spread = np.full(self.confirmed.shape, fill, dtype=values.dtype)
        spread.reshape(-1)[self.entries] = values
        return spread


class Ledger:
    """B independent ledgers over the same accounts, settled in array operations.

    Args:
        accounts: Names of the agents' accounts; the system accounts are appended.
        num_instances: B (>= 1).
        config: A :class:`LedgerConfig`, a mapping of its settings, a mode name, or None.
        initial_balances: Starting balances of the agents' accounts (coins): a number, (A,) or
            (B, A) over the agents' accounts (system accounts start at 0).
        seeds: One seed per instance for the tangle's random walks (tangle mode).

    Raises:
        ValueError: For duplicate or reserved account names, a negative or non-finite initial
            balance, or an invalid config.
    """

    def __init__(
        self,
        accounts: Sequence[str],
        num_instances: int = 1,
        config: LedgerConfig | Mapping[str, Any] | str | None = None,
        initial_balances: Any = 0.0,
        seeds: Sequence[int | None] | None = None,
    ) -> None:
        names = list(accounts)
        if len(set(names)) != len(names):
            raise ValueError(f"account names must be unique, got {names}")
        reserved = sorted(set(names) & set(SYSTEM_ACCOUNTS))
        if reserved:
            raise ValueError(f"account names {reserved} are reserved for system accounts")
        if num_instances < 1:
            raise ValueError(f"num_instances must be at least 1, got {num_instances}")
        self.config = LedgerConfig.parse(config)
        self.account_names = names + list(SYSTEM_ACCOUNTS)
        self.num_instances = int(num_instances)
        self._rows = np.arange(self.num_instances)
        self._index = {name: index for index, name in enumerate(self.account_names)}
        # Flat index of each instance's first account and first queue slot, (B, 1).
        self._account_base = self._rows[:, None] * len(self.account_names)
        self._slot_base = self._rows[:, None] * self.config.queue_capacity
        self.escrow = self._index["escrow"]
        self.clearing = self._index["clearing"]
        self.mint = self._index["mint"]
        self._seeds = list(seeds) if seeds is not None else [None] * self.num_instances
        if len(self._seeds) != self.num_instances:
            raise ValueError(
                f"expected one seed per instance ({num_instances}), got {len(self._seeds)}"
            )
        self.reset(initial_balances)

    # ----------------------------------------------------------------------------------------

    @property
    def num_accounts(self) -> int:
        """Number of accounts A, system accounts included."""
        return len(self.account_names)

    def account(self, name: str) -> int:
        """Return the index of an account.

        Raises:
            KeyError: For an unknown name; the message lists the accounts.
        """
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"unknown account {name!r}; the accounts are {self.account_names}"
            ) from None

    def reset(self, initial_balances: Any = 0.0, seeds: Sequence[int | None] | None = None) -> None:
        """Empty the ledger and set the agents' starting balances."""
        batch, agents = self.num_instances, len(self.account_names) - len(SYSTEM_ACCOUNTS)
        start = np.asarray(initial_balances, dtype=np.float64)
        try:
            start = np.broadcast_to(start, (batch, agents))
        except ValueError:
            raise ValueError(
                f"initial_balances must be a number, ({agents},) or ({batch}, {agents}); got "
                f"shape {start.shape}"
            ) from None
        if not np.all(np.isfinite(start)) or np.any(start < 0.0):
            raise ValueError(f"initial balances must be finite and >= 0, got {start}")
        if seeds is not None:
            self._seeds = list(seeds)
        self.balances = np.zeros((batch, self.num_accounts))
        self.balances[:, :agents] = start
        self.initial_total = self.balances.sum(axis=1)
        self.minted = np.zeros(batch)
        self.last_received = np.zeros((batch, self.num_accounts))
        self.total_received = np.zeros((batch, self.num_accounts))
        self.round = 0
        self.height = np.zeros(batch, dtype=np.int64)
        self.next_id = np.zeros(batch, dtype=np.int64)
        capacity = self.config.queue_capacity
        shape = (batch, capacity)
        self.queue_active = np.zeros(shape, dtype=bool)
        self.queue_payer = np.zeros(shape, dtype=np.int64)
        self.queue_payee = np.zeros(shape, dtype=np.int64)
        self.queue_amount = np.zeros(shape)
        self.queue_kind = np.zeros(shape, dtype=np.int64)
        self.queue_round = np.zeros(shape, dtype=np.int64)
        self.queue_id = np.full(shape, -1, dtype=np.int64)
        self.queue_block = np.full(shape, -1, dtype=np.int64)
        self.queue_attached = np.zeros(shape, dtype=bool)
        self._write = np.zeros(batch, dtype=np.int64)
        self.tangles: list[Any] = []
        if self.config.mode == "tangle":
            from ledgerzoo.ledger.tangle import Tangle, TangleConfig

            tangle_config = TangleConfig(**dict(self.config.tangle))
            self.tangles = [
                Tangle(tangle_config, np.random.default_rng(seed)) for seed in self._seeds
            ]
        self.audit_logs: list[Any] = []
        if self.config.audit:
            from ledgerzoo.ledger.audit import AuditLog

            self.audit_logs = [
                AuditLog(self.account_names, self.balances[b].tolist()) for b in range(batch)
            ]

    # ----------------------------------------------------------------------------------------

    def submit(
        self,
        payer: Any,
        payee: Any,
        amount: Any,
        kind: Any = Kind.PAYMENT,
        where: Any = True,
    ) -> Submission:
        """Submit K transactions per instance; each is accepted (debited, queued) or rejected.

        Transactions of one instance are taken in order k = 0..K-1, so a later one is
        checked against the balance the earlier ones left. A transaction is rejected, and
        changes nothing, when its amount is negative or not finite, an account index is out of
        range, the payer's spendable balance does not cover it, or the instance's queue is
        full. The mint account covers any amount, and only it may pay MINT transactions.

        Args:
            payer: Paying account indices, broadcastable to (B, K).
            payee: Receiving account indices, broadcastable to (B, K).
            amount: Coins, broadcastable to (B, K).
            kind: :class:`Kind` values, broadcastable to (B, K).
            where: Which entries to submit, broadcastable to (B, K); the others are
                SKIPPED: not checked, not queued, and given no id.

        Returns:
            Ids and statuses, (B, K).
        """
        amount_array = np.atleast_1d(np.asarray(amount, dtype=np.float64))
        if amount_array.ndim == 1:
            amount_array = np.broadcast_to(
                amount_array, (self.num_instances, amount_array.shape[0])
            )
        shape = amount_array.shape
        if len(shape) != 2 or shape[0] != self.num_instances:
            raise ValueError(
                f"amounts must broadcast to (instances={self.num_instances}, K), got shape {shape}"
            )
        count = self.num_accounts
        payer_array = np.asarray(payer, dtype=np.int64)
        payee_array = np.asarray(payee, dtype=np.int64)
        kind_array = np.asarray(kind, dtype=np.int64)
        # The checks of accounts and kinds run on the arrays as given, often scalars, and are
        # broadcast after.
        mint_payer = payer_array == self.mint
        accounts_valid = (payer_array >= 0) & (payer_array < count)
        accounts_valid &= (payee_array >= 0) & (payee_array < count)
        accounts_valid &= (kind_array == int(Kind.MINT)) == mint_payer
        # Broadcasting here also rejects account and kind arrays of the wrong shape.
        payers = _broadcast(payer_array, shape)
        payees = _broadcast(payee_array, shape)
        kinds = _broadcast(kind_array, shape)
        wanted = _broadcast(np.asarray(where, dtype=bool), shape)
        valid = wanted & accounts_valid & np.isfinite(amount_array) & (amount_array >= 0.0)
        status = np.ascontiguousarray(
            np.where(wanted, np.int64(Status.REJECTED), np.int64(Status.SKIPPED))
        )
        tx_ids = np.full(shape, -1, dtype=np.int64)
        if valid.any():
            from_mint = _broadcast(mint_payer, shape)
            batch = (payers, payees, amount_array, kinds, valid, from_mint)
            submitted = self._submit_together(*batch, tx_ids, status) or (
                self._submit_by_occurrence(*batch, tx_ids, status)
            )
            if not submitted:
                self._submit_in_order(*batch, tx_ids, status)
        return Submission(tx_ids=tx_ids, status=status)

    def _submit_together(
        self,
        payers: np.ndarray,
        payees: np.ndarray,
        amounts: np.ndarray,
        kinds: np.ndarray,
        valid: np.ndarray,
        from_mint: np.ndarray,
        tx_ids: np.ndarray,
        status: np.ndarray,
    ) -> bool:
        """Accept K transactions per instance in one pass, where order cannot change the result.

        That is the case when no account, the mint included, pays twice in one instance (so
        every balance changes by one subtraction, as in order) and the K queue slots from the
        write position are free. Returns False, and changes nothing, when it is not; then
        :meth:`_submit_in_order` applies.
        """
        batch, width = payers.shape
        capacity = self.config.queue_capacity
        if width > capacity:
            return False
        accounts = self.num_accounts
        safe_payers = np.where(valid, payers, 0)
        flat_payers = self._account_base + safe_payers
        if width > 1:
            paying = flat_payers[valid]
            if np.bincount(paying, minlength=batch * accounts).max(initial=0) > 1:
                return False
        # Flat queue index of the slot that an instance's k-th accepted entry would take.
        if width == 1:
            queue_slots = self._slot_base + self._write[:, None] % capacity
        else:
            queue_slots = self._slot_base + (self._write[:, None] + np.arange(width)) % capacity
        if _flat(self.queue_active)[queue_slots].any():
            return False

        balances = _flat(self.balances)
        covered = balances[flat_payers] + FUNDS_TOLERANCE >= amounts
        accepted = valid & (covered | from_mint)
        # The accepted entries in order, instance by instance. Each one's rank among its
        # instance's accepted entries gives its queue slot and id.
        entries = np.flatnonzero(accepted)
        # When every entry is accepted, entries is arange(B * K), and so is taken below. Gathering
        # a flattened (B, K) array at them returns the array itself, so gather() skips the copy.
        every_entry = entries.size == accepted.size

        def gather(array: np.ndarray) -> np.ndarray:
            flat = array.reshape(-1)
            return flat if every_entry else flat[entries]

        if width == 1:
            b = entries
            accepted_count = accepted[:, 0].astype(np.int64)
            ids = self.next_id.copy() if every_entry else self.next_id[b]
        else:
            b = entries // width
            accepted_count = np.bincount(b, minlength=batch)
            first = np.cumsum(accepted_count) - accepted_count
            rank = np.arange(entries.size) - first[b]
            # An instance's accepted entries take its slots from the write position in order,
            # so with every entry accepted, taken equals entries.
            taken = b * width + rank
            ids = self.next_id[b] + rank
        value = gather(amounts)
        # No account pays twice, so each balance loses at most one amount. Adding it to 0.0
        # first gives the bits of summing it per account (np.bincount starts from 0.0).
        balances[gather(flat_payers)] -= np.add(0.0, value)
        minting = gather(from_mint)
        if minting.any():
            self.minted[b[minting]] += np.add(0.0, value[minting])
        self._enqueue(
            gather(queue_slots) if width == 1 or every_entry else queue_slots.reshape(-1)[taken],
            gather(payers),
            gather(payees),
            value,
            gather(kinds),
            ids,
        )
        if every_entry:
            _flat(tx_ids)[:] = ids
        else:
            _flat(tx_ids)[entries] = ids
        _flat(status)[entries] = int(Status.PENDING)
        self.next_id += accepted_count
        self._write += accepted_count
        return True

    def _submit_by_occurrence(
        self,
        payers: np.ndarray,
        payees: np.ndarray,
        amounts: np.ndarray,
        kinds: np.ndarray,
        valid: np.ndarray,
        from_mint: np.ndarray,
        tx_ids: np.ndarray,
        status: np.ndarray,
    ) -> bool:
        """Accept transactions as :meth:`_submit_in_order` does, with one pass per repeat of a
        payer instead of one per k.

        Credits wait for confirmation, so whether a transaction is covered depends only on its
        payer's earlier transactions in the call. When the K queue slots from the write position
        are free, every accepted transaction finds its slot. Then pass j checks the j-th
        transaction of every payer at once. No account pays twice within a pass, and each
        balance (and ``minted``) still changes by its amounts in k order. Returns False, and
        changes nothing, when a slot is taken.
        """
        batch, width = payers.shape
        capacity = self.config.queue_capacity
        if width > capacity:
            return False
        queue_slots = self._slot_base + (self._write[:, None] + np.arange(width)) % capacity
        if _flat(self.queue_active)[queue_slots].any():
            return False

        entries = np.flatnonzero(valid)
        flat_payers = (self._account_base + np.where(valid, payers, 0)).reshape(-1)[entries]
        # Each entry's occurrence among its payer's entries, counted in k order. Flat payer
        # indices differ between instances, so a stable sort groups each payer's entries and
        # keeps them in k order.
        order = np.argsort(flat_payers, kind="stable")
        grouped = flat_payers[order]
        starts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
        sizes = np.diff(np.append(starts, grouped.size))
        occurrence = np.empty(entries.size, dtype=np.int64)
        occurrence[order] = np.arange(entries.size) - np.repeat(starts, sizes)

        balances = _flat(self.balances)
        amount = amounts.reshape(-1)[entries]
        minting = from_mint.reshape(-1)[entries]
        taken = np.zeros(entries.size, dtype=bool)
        for j in range(int(occurrence.max()) + 1):
            current = np.flatnonzero(occurrence == j)
            covered = balances[flat_payers[current]] + FUNDS_TOLERANCE >= amount[current]
            chosen = current[covered | minting[current]]
            balances[flat_payers[chosen]] -= amount[chosen]
            # Minting entries are those the mint account pays. It is one payer, so each instance
            # mints at most once per pass, and no index repeats in this addition.
            mint_chosen = chosen[minting[chosen]]
            if mint_chosen.size:
                self.minted[entries[mint_chosen] // width] += amount[mint_chosen]
            taken[chosen] = True

        # An instance's accepted transactions take its ids and slots in k order.
        accepted = entries[taken]
        b = accepted // width
        accepted_count = np.bincount(b, minlength=batch)
        first = np.cumsum(accepted_count) - accepted_count
        rank = np.arange(accepted.size) - first[b]
        ids = self.next_id[b] + rank
        self._enqueue(
            queue_slots.reshape(-1)[b * width + rank],
            payers.reshape(-1)[accepted],
            payees.reshape(-1)[accepted],
            amounts.reshape(-1)[accepted],
            kinds.reshape(-1)[accepted],
            ids,
        )
        _flat(tx_ids)[accepted] = ids
        _flat(status)[accepted] = int(Status.PENDING)
        self.next_id += accepted_count
        self._write += accepted_count
        return True

    def _submit_in_order(
        self,
        payers: np.ndarray,
        payees: np.ndarray,
        amounts: np.ndarray,
        kinds: np.ndarray,
        valid: np.ndarray,
        from_mint: np.ndarray,
        tx_ids: np.ndarray,
        status: np.ndarray,
    ) -> None:
        """Accept transactions k = 0..K-1 one after the other, each against the balance and the
        queue that the earlier ones left.

        Acceptance is sequential by nature: whether transaction k is covered depends on which
        earlier ones were accepted. So the loop runs over k, and each pass handles every
        instance at once.
        """
        rows = self._rows
        capacity = self.config.queue_capacity
        balances = _flat(self.balances)
        active = _flat(self.queue_active)
        payer_index = rows[:, None] * self.num_accounts + np.where(valid, payers, 0)
        accepted = np.zeros(payers.shape, dtype=bool)
        queue_index = np.zeros(payers.shape, dtype=np.int64)
        for k in range(payers.shape[1]):
            if not valid[:, k].any():
                continue
            value, source = amounts[:, k], payer_index[:, k]
            covered = balances[source] + FUNDS_TOLERANCE >= value
            slot = rows * capacity + self._write % capacity
            free = ~active[slot]
            taken = valid[:, k] & (covered | from_mint[:, k]) & free
            if not taken.any():
                continue
            balances[source[taken]] -= value[taken]
            minting = taken & from_mint[:, k]
            if minting.any():
                self.minted[minting] += value[minting]
            # Later transactions of this call see the slot as taken. The rest of the queue
            # entry is written once, after the loop.
            active[slot[taken]] = True
            accepted[:, k] = taken
            queue_index[:, k] = slot
            tx_ids[taken, k] = self.next_id[taken]
            self.next_id += taken
            self._write += taken
        entries = np.flatnonzero(accepted)
        if entries.size:
            self._enqueue(
                queue_index.reshape(-1)[entries],
                payers.reshape(-1)[entries],
                payees.reshape(-1)[entries],
                amounts.reshape(-1)[entries],
                kinds.reshape(-1)[entries],
                tx_ids.reshape(-1)[entries],
            )
            _flat(status)[entries] = int(Status.PENDING)

    def _enqueue(
        self,
        index: np.ndarray,
        payers: np.ndarray,
        payees: np.ndarray,
        amounts: np.ndarray,
        kinds: np.ndarray,
        ids: np.ndarray,
    ) -> None:
        """Write accepted transactions into the queue at flat indices b * capacity + slot.

        Flat indices into the (B, capacity) arrays cost a fraction of (b, slot) index pairs.
        """
        _flat(self.queue_active)[index] = True
        _flat(self.queue_payer)[index] = payers
        _flat(self.queue_payee)[index] = payees
        _flat(self.queue_amount)[index] = amounts
        _flat(self.queue_kind)[index] = kinds
        _flat(self.queue_round)[index] = self.round
        _flat(self.queue_id)[index] = ids
        # Only chain mode assigns blocks and only tangle mode attaches transactions. In the
        # other modes these entries keep their reset values, -1 and False.
        if self.config.mode == "chain":
            _flat(self.queue_block)[index] = -1
        elif self.config.mode == "tangle":
            _flat(self.queue_attached)[index] = False

    def end_round(self) -> Settlement:
        """Confirm what the mode confirms at the end of this round, credit it, and advance."""
        mode = self.config.mode
        if mode == "instant":
            confirmed = self.queue_active.copy()
        elif mode == "chain":
            confirmed = self._chain_confirmations()
        else:
            confirmed = self._tangle_confirmations()

        entries = np.flatnonzero(confirmed)
        payer = _flat(self.queue_payer)[entries]
        payee = _flat(self.queue_payee)[entries]
        amount = _flat(self.queue_amount)[entries]
        instance = entries // self.config.queue_capacity
        received = self._sum_per_account(instance, payee, amount)
        paid = self._sum_per_account(instance, payer, amount)
        self.balances += received
        self.last_received = received
        self.total_received += received
        settlement = Settlement(
            confirmed=confirmed,
            entries=entries,
            entry_payer=payer,
            entry_payee=payee,
            entry_amount=amount,
            entry_kind=_flat(self.queue_kind)[entries],
            entry_tx_id=_flat(self.queue_id)[entries],
            received=received,
            paid=paid,
        )
        if self.audit_logs:
            self._log(settlement)
        self.queue_active &= ~confirmed
        self.round += 1
        return settlement

    # ----------------------------------------------------------------------------------------
    # Views.

    def public_view(self, loans: Any = None) -> dict[str, np.ndarray]:
        """Return what every agent may observe of the ledger, per instance.

        Confirmed transfers and pending transactions are public, as on a real chain; the
        balances are the accounts' private state and are left out. Markets add their posted
        prices and demands to this view.

        Args:
            loans: A :class:`~ledgerzoo.ledger.contracts.LoanBook` whose defaults to include.

        Returns:
            ``round`` and ``height`` (B,); ``received_last_round``, ``received_total``,
            ``pending_outgoing``, ``pending_incoming`` (B, A), coins; and, with ``loans``,
            ``defaults`` (B, A), the number of defaults of each account as borrower.
        """
        view = {
            "round": np.full(self.num_instances, self.round),
            "height": self.height.copy(),
            "received_last_round": self.last_received.copy(),
            "received_total": self.total_received.copy(),
            "pending_outgoing": self.pending_outgoing(),
            "pending_incoming": self.pending_incoming(),
        }
        if loans is not None:
            view["defaults"] = loans.defaults.copy()
        return view

    def in_flight(self) -> np.ndarray:
        """Coins debited but not yet credited, per instance, (B,)."""
        return np.where(self.queue_active, self.queue_amount, 0.0).sum(axis=1)

    def pending_outgoing(self) -> np.ndarray:
        """Coins each account has submitted that are not yet confirmed, (B, A)."""
        return self._pending_by(self.queue_payer)

    def pending_incoming(self) -> np.ndarray:
        """Coins on their way to each account, not yet confirmed, (B, A)."""
        return self._pending_by(self.queue_payee)

    def pending_count(self) -> np.ndarray:
        """Transactions waiting per instance, (B,)."""
        return self.queue_active.sum(axis=1)

    def conservation_error(self) -> np.ndarray:
        """|sum of balances + in flight - starting total|, per instance; 0 up to rounding.

        The mint account's balance is minus the value minted, so minting keeps the sum.
        """
        return np.abs(self.balances.sum(axis=1) + self.in_flight() - self.initial_total)

    def records(self, instance: int, slots: np.ndarray) -> list[TransactionRecord]:
        """Build the records of given queue slots of one instance, in id order."""
        order = np.argsort(self.queue_id[instance, slots], kind="stable")
        return [
            TransactionRecord(
                tx_id=int(self.queue_id[instance, s]),
                payer=int(self.queue_payer[instance, s]),
                payee=int(self.queue_payee[instance, s]),
                amount=float(self.queue_amount[instance, s]),
                kind=Kind(int(self.queue_kind[instance, s])),
                round_submitted=int(self.queue_round[instance, s]),
            )
            for s in np.asarray(slots)[order]
        ]

    # ----------------------------------------------------------------------------------------

    def _pending_by(self, accounts: np.ndarray) -> np.ndarray:
        return self.sum_where(accounts, self.queue_amount, self.queue_active)

    def sum_by_account(self, accounts: np.ndarray, amounts: np.ndarray) -> np.ndarray:
        """Sum (B, K) amounts into the (B, A) accounts that ``accounts`` names for each entry."""
        amounts = np.asarray(amounts, dtype=np.float64)
        flat = accounts + self.num_accounts * self._rows[:, None]
        totals = np.bincount(
            flat.ravel(), weights=amounts.ravel(), minlength=self.num_instances * self.num_accounts
        )
        return totals.reshape(self.num_instances, self.num_accounts)

    def sum_where(self, accounts: np.ndarray, amounts: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Sum the (B, K) amounts where ``mask`` is true into the (B, A) accounts they name.

        Returns the bits of ``sum_by_account(accounts, np.where(mask, amounts, 0.0))`` but reads
        only the masked entries. Leaving out the zeros changes no sum. Each account's total
        starts at 0.0 and adds the entries in the same order. A total that starts at 0.0 is
        never -0.0, so adding 0.0 to it leaves it as it is.
        """
        mask = _broadcast(np.asarray(mask), np.shape(amounts))
        return self._sum_entries(accounts, amounts, np.flatnonzero(mask))

    def _sum_entries(self, accounts: Any, amounts: Any, entries: np.ndarray) -> np.ndarray:
        """Sum the (B, K) amounts at flat indices ``entries`` into the (B, A) accounts."""
        if entries.size == 0:
            return self._sum_per_account(entries, entries, np.zeros(0))
        amounts = np.asarray(amounts, dtype=np.float64)
        width = amounts.shape[1]
        named = _broadcast(np.asarray(accounts), amounts.shape).reshape(-1)[entries]
        return self._sum_per_account(entries // width, named, amounts.reshape(-1)[entries])

    def _sum_per_account(
        self, instance: np.ndarray, accounts: np.ndarray, amounts: np.ndarray
    ) -> np.ndarray:
        """Sum amounts into (B, A) totals by (instance, account), adding them in the given order.

        Args:
            instance, accounts: Instance and account index of each amount, (C,).
            amounts: Coins, (C,), float64.
        """
        shape = (self.num_instances, self.num_accounts)
        if amounts.size == 0:
            # np.bincount returns integers when it has no weights to add.
            return np.zeros(shape)
        flat = instance * self.num_accounts + accounts
        return np.bincount(flat, weights=amounts, minlength=shape[0] * shape[1]).reshape(shape)

    def _chain_confirmations(self) -> np.ndarray:
        config = self.config
        if (self.round + 1) % config.block_interval == 0:
            # A block takes the oldest unblocked transactions, at most block_capacity of them.
            waiting = self.queue_active & (self.queue_block < 0)
            order_key = np.where(waiting, self.queue_id, np.iinfo(np.int64).max)
            rank = np.argsort(np.argsort(order_key, axis=1, kind="stable"), axis=1)
            chosen = waiting & (rank < config.block_capacity)
            self.queue_block = np.where(chosen, self.height[:, None], self.queue_block)
            self.height += 1
        blocked = self.queue_active & (self.queue_block >= 0)
        depth = self.height[:, None] - 1 - self.queue_block
        return blocked & (depth >= config.confirmations)

    def _tangle_confirmations(self) -> np.ndarray:
        confirmed = np.zeros_like(self.queue_active)
        fresh = self.queue_active & ~self.queue_attached
        for b, tangle in enumerate(self.tangles):
            slots = np.flatnonzero(fresh[b])
            ids = self.queue_id[b, slots]
            tangle.attach([int(i) for i in np.sort(ids)], self.round)
            self.queue_attached[b, slots] = True
            done = set(tangle.end_round(self.round))
            if done:
                active = np.flatnonzero(self.queue_active[b])
                hits = [s for s in active if int(self.queue_id[b, s]) in done]
                confirmed[b, hits] = True
        return confirmed

    def _log(self, settlement: Settlement) -> None:
        for b, log in enumerate(self.audit_logs):
            slots = np.flatnonzero(settlement.confirmed[b])
            log.append_block(self.round, self.records(b, slots))


def _flat(array: np.ndarray) -> np.ndarray:
    """Return a 1-D view of a C-contiguous array, to write through flat indices.

    Raises:
        ValueError: If the array is not C-contiguous, because the writes would go to a copy.
    """
    if not array.flags.c_contiguous:
        raise ValueError(
            "ledger state arrays must be C-contiguous to be written through flat views"
        )
    return array.reshape(-1)


def _broadcast(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast an array to ``shape``, skipping np.broadcast_to (microseconds) when it fits."""
    return array if array.shape == shape else np.broadcast_to(array, shape)
