"""Hash-linked audit log of the confirmed transactions of one ledger instance.

The log is optional. Single envs and debugging sessions use it to check settlement:
``replay`` recomputes the balances from the logged transactions, for comparison with the
ledger's own arrays. Each block contains the transactions confirmed in one round, in
confirmation order, and is linked to the block before it by hash.

What is hashed:

- The transactions of a block are serialized as a JSON list of objects with the keys
  ``tx_id``, ``payer``, ``payee``, ``amount``, ``kind`` and ``round_submitted``. ``kind``
  is written as its integer value and ``amount`` as a Python float, which ``json`` writes
  with the shortest repr that parses back to the same float. The serialization uses
  ``sort_keys=True``, the separators ``(",", ":")`` and ``allow_nan=False``, so equal
  transactions always give equal bytes. ``transactions_digest`` is the hex SHA-256 of those
  bytes.
- The header is the JSON object of ``index``, ``round``, ``previous_hash`` and that
  transactions digest, serialized the same way. ``Block.hash`` is the hex SHA-256 of the
  header, so it covers the header and every transaction of the block. The first block's
  ``previous_hash`` is ``GENESIS_PREVIOUS_HASH`` (64 zeros).

What ``AuditLog.verify`` guarantees: it recomputes every hash and checks every link, index,
round and transaction field. It raises ``AuditError``, naming the first bad block, when a
transaction was edited, dropped, inserted or reordered, or when a block was edited, dropped,
inserted or reordered. The exceptions are changes at the end of the chain. Dropping the last
blocks, appending forged blocks, or rewriting the chain from some block on with freshly
computed hashes leaves a log that is consistent in itself. Only a trusted copy of the last
block's hash, taken when the log was written (``AuditLog.last_hash``), reveals these changes.
Pass that copy as ``verify(expected_last_hash=...)``.

``AuditLog.replay`` applies every logged transaction to the initial balances: the payer is
debited and the payee credited. A ``MINT`` transaction debits its payer, the mint account,
which may go negative, so the mint account's balance is minus the value it ever minted and
the sum of all balances stays equal to the sum of the initial balances.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ledgerzoo.ledger.records import Kind, TransactionRecord

GENESIS_PREVIOUS_HASH = "0" * 64  # previous_hash of the first block
HASH_HEX_LENGTH = 64  # length of a hex SHA-256 digest
JSON_FORMAT = "ledgerzoo.audit_log"  # value of the "format" key written by AuditLog.to_json
JSON_FORMAT_VERSION = 1  # value of the "version" key, to be bumped when the layout changes

_KIND_VALUES = frozenset(int(kind) for kind in Kind)


class AuditError(ValueError):
    """Failed verification of an audit log that was tampered with or is inconsistent.

    Attributes:
        block_index: Position in the log of the first bad block, or None when the log has no
            blocks.
    """

    def __init__(self, message: str, block_index: int | None) -> None:
        super().__init__(message)
        self.block_index = block_index


@dataclass(frozen=True)
class Block:
    """One block of the audit log.

    Attributes:
        index: Position of the block in the log, starting at 0.
        round: Round in which the block was formed and its transactions were confirmed.
        previous_hash: Hex SHA-256 hash of the block before, or ``GENESIS_PREVIOUS_HASH``
            for the first block.
        transactions: Transactions confirmed in this block, in confirmation order.
        hash: Hex SHA-256 hash of the header, which includes the transactions' digest.
    """

    index: int
    round: int
    previous_hash: str
    transactions: tuple[TransactionRecord, ...]
    hash: str


def transactions_digest(transactions: Sequence[TransactionRecord]) -> str:
    """Hash the canonical JSON serialization of transactions.

    Raises:
        TypeError: A field has a type that has no canonical form.
        ValueError: An amount is NaN or infinite.

    Returns:
        Hex SHA-256 digest, 64 characters.
    """
    serialized = _canonical_json([_transaction_to_dict(tx) for tx in transactions])
    return hashlib.sha256(serialized.encode("ascii")).hexdigest()


def block_hash(
    index: int, round: int, previous_hash: str, transactions: Sequence[TransactionRecord]
) -> str:
    """Hash a block header together with the digest of its transactions.

    Raises:
        TypeError: A field has a type that has no canonical form.
        ValueError: An amount is NaN or infinite.

    Returns:
        Hex SHA-256 digest, 64 characters.
    """
    header = {
        "index": operator.index(index),
        "round": operator.index(round),
        "previous_hash": str(previous_hash),
        "transactions_digest": transactions_digest(transactions),
    }
    return hashlib.sha256(_canonical_json(header).encode("ascii")).hexdigest()


class AuditLog:
    """Append-only, hash-linked log of the blocks of one ledger instance.

    ``blocks`` is a tuple of frozen ``Block`` objects, so callers cannot change the log.
    Tests of ``verify`` simulate tampering by replacing items of the private list ``_blocks``.

    Args:
        account_names: Name of each account, unique. The account index used by transactions
            is the position in this sequence.
        initial_balances: Balance of each account before the first block, in coins, finite
            and >= 0. Same length as ``account_names``.

    Raises:
        ValueError: No accounts, duplicate names, a length mismatch, or a negative or
            non-finite initial balance.
        TypeError: An account name is not a string.
    """

    def __init__(self, account_names: Sequence[str], initial_balances: Sequence[float]) -> None:
        names = tuple(account_names)
        if not names:
            raise ValueError("account_names must contain at least one account, got none")
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"account names must be strings, got {name!r}")
        if len(set(names)) != len(names):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"account_names must be unique, got duplicates {duplicates}")

        balances = np.array(initial_balances, dtype=np.float64)
        if balances.shape != (len(names),):
            raise ValueError(
                f"initial_balances must have one value per account, shape ({len(names)},), "
                f"got shape {balances.shape}"
            )
        if not np.all(np.isfinite(balances)) or np.any(balances < 0):
            raise ValueError(f"initial_balances must be finite and >= 0, got {balances.tolist()}")

        self._account_names = names
        self._initial_balances = balances
        self._blocks: list[Block] = []
        self._logged_tx_ids: set[int] = set()

    @property
    def account_names(self) -> tuple[str, ...]:
        """Account names, indexed by the payer and payee of a transaction."""
        return self._account_names

    @property
    def initial_balances(self) -> np.ndarray:
        """Copy of the balances before the first block, shape (n_accounts,), float64, coins."""
        return self._initial_balances.copy()

    @property
    def blocks(self) -> tuple[Block, ...]:
        """Blocks in the order they were appended."""
        return tuple(self._blocks)

    @property
    def last_hash(self) -> str:
        """Hash of the last block, or ``GENESIS_PREVIOUS_HASH`` while the log is empty.

        Keep a trusted copy of it and pass it to ``verify(expected_last_hash=...)``.
        """
        if not self._blocks:
            return GENESIS_PREVIOUS_HASH
        return self._blocks[-1].hash

    def append_block(self, round: int, transactions: Iterable[TransactionRecord]) -> Block:
        """Seal the transactions confirmed in one round into a new block and append it.

        Integer fields are converted to ``int``, amounts to ``float`` and kinds to ``Kind``
        (numpy scalars included), so the stored records have one canonical form.

        Args:
            round: Round in which the block was formed, >= 0 and >= the last block's round.
            transactions: Transactions confirmed in this round, in confirmation order. May be
                empty. Each payer and payee must be an account index, each amount finite and
                >= 0 (exactly 0 for ``MILESTONE``), each ``round_submitted`` <= ``round``, and
                each ``tx_id`` new to the log.

        Returns:
            The appended block.

        Raises:
            TypeError: An item is not a ``TransactionRecord``, or a field has the wrong type.
            ValueError: The round or a transaction breaks one of the rules above. The log is
                left unchanged.
        """
        round = operator.index(round)
        if round < 0:
            raise ValueError(f"round must be >= 0, got {round}")
        if self._blocks and round < self._blocks[-1].round:
            raise ValueError(
                f"round must not decrease: the last block was formed in round "
                f"{self._blocks[-1].round}, got round {round}"
            )

        records = tuple(
            _normalize_transaction(tx, position) for position, tx in enumerate(transactions)
        )
        tx_ids_in_block: set[int] = set()
        for position, tx in enumerate(records):
            problem = _transaction_problem(tx, len(self._account_names), round)
            if problem is None and (tx.tx_id in self._logged_tx_ids or tx.tx_id in tx_ids_in_block):
                problem = f"tx_id {tx.tx_id} was already logged"
            if problem is not None:
                raise ValueError(f"transaction {position} of the new block is invalid: {problem}")
            tx_ids_in_block.add(tx.tx_id)

        index = len(self._blocks)
        previous_hash = self.last_hash
        block = Block(
            index=index,
            round=round,
            previous_hash=previous_hash,
            transactions=records,
            hash=block_hash(index, round, previous_hash, records),
        )
        self._blocks.append(block)
        self._logged_tx_ids.update(tx_ids_in_block)
        return block

    def verify(self, expected_last_hash: str | None = None) -> None:
        """Check the hash chain and the contents of every block.

        Per block, in order: the index equals the position, the stored hash equals the
        recomputed one, ``previous_hash`` equals the hash of the block before, the round does
        not decrease, and every transaction is valid with a ``tx_id`` not seen before.

        Args:
            expected_last_hash: Trusted copy of ``last_hash``, taken when the log was
                written. Without it, blocks dropped from or appended to the end, and a chain
                rewritten with fresh hashes from some block on, go undetected.

        Raises:
            AuditError: Names the first bad block and what is wrong with it.
            ValueError: ``expected_last_hash`` is not a 64-character hex string.
        """
        if expected_last_hash is not None:
            _check_hex_hash(expected_last_hash, "expected_last_hash")

        seen_tx_ids: dict[int, int] = {}  # tx_id -> position of the block that logged it
        previous: Block | None = None
        for position, block in enumerate(self._blocks):
            self._verify_block_header(position, block, previous)
            self._verify_block_transactions(position, block, seen_tx_ids)
            previous = block

        if expected_last_hash is not None and self.last_hash != expected_last_hash:
            last_position = len(self._blocks) - 1 if self._blocks else None
            where = "with no blocks" if last_position is None else f"block {last_position}"
            raise AuditError(
                f"audit log {where}: the last hash {self.last_hash} does not "
                f"match the expected last hash {expected_last_hash}. Blocks were dropped or "
                f"appended at the end, or the chain was rewritten from an unknown block on",
                last_position,
            )

    def replay(self) -> np.ndarray:
        """Apply every logged transaction to the initial balances.

        The log is not verified first, so call ``verify`` before trusting the result. No
        balance is checked for sign: the mint account's balance is minus the value minted.

        Returns:
            Balance of each account after the last block, shape (n_accounts,), float64, coins.

        Raises:
            AuditError: A transaction names an account index outside the log's accounts.
        """
        balances = self._initial_balances.copy()
        transactions = [tx for block in self._blocks for tx in block.transactions]
        if not transactions:
            return balances

        payers = np.array([tx.payer for tx in transactions], dtype=np.int64)
        payees = np.array([tx.payee for tx in transactions], dtype=np.int64)
        amounts = np.array([tx.amount for tx in transactions], dtype=np.float64)
        n_accounts = len(self._account_names)
        bad = (payers < 0) | (payers >= n_accounts) | (payees < 0) | (payees >= n_accounts)
        if np.any(bad):
            tx = transactions[int(np.argmax(bad))]
            raise AuditError(
                f"cannot replay tx_id {tx.tx_id}: payer {tx.payer} or payee {tx.payee} is not "
                f"an account index in [0, {n_accounts}). Run verify() to find the bad block",
                self._position_of_tx(tx),
            )

        # Unbuffered in-place updates, so an account that appears several times gets every
        # debit and credit.
        np.subtract.at(balances, payers, amounts)
        np.add.at(balances, payees, amounts)
        return balances

    def to_json(self) -> str:
        """Serialize the log, stored hashes included, as one line of JSON.

        ``from_json`` restores an equal log: floats are written with the shortest repr that
        parses back to the same value.
        """
        document = {
            "format": JSON_FORMAT,
            "version": JSON_FORMAT_VERSION,
            "account_names": list(self._account_names),
            "initial_balances": [float(value) for value in self._initial_balances],
            "blocks": [_block_to_dict(block) for block in self._blocks],
        }
        return _canonical_json(document)

    @classmethod
    def from_json(cls, text: str) -> AuditLog:
        """Load a log written by ``to_json``.

        Stored hashes are loaded as they are and not checked, so that a tampered file can be
        loaded and inspected. Call ``verify`` on the result before trusting it.

        Raises:
            ValueError: The text is not JSON, or a key is missing or has the wrong type.
        """
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError(f"audit log JSON must be an object, got {type(document).__name__}")
        if document.get("format") != JSON_FORMAT or document.get("version") != JSON_FORMAT_VERSION:
            raise ValueError(
                f"audit log JSON must have format {JSON_FORMAT!r} and version "
                f"{JSON_FORMAT_VERSION}, got format {document.get('format')!r} and version "
                f"{document.get('version')!r}"
            )

        log = cls(
            _require(document, "account_names", list, "audit log"),
            _require(document, "initial_balances", list, "audit log"),
        )
        for position, entry in enumerate(_require(document, "blocks", list, "audit log")):
            block = _block_from_dict(entry, position)
            log._blocks.append(block)
            log._logged_tx_ids.update(tx.tx_id for tx in block.transactions)
        return log

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuditLog):
            return NotImplemented
        return (
            self._account_names == other._account_names
            and np.array_equal(self._initial_balances, other._initial_balances)
            and self._blocks == other._blocks
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __repr__(self) -> str:
        return (
            f"AuditLog({len(self._account_names)} accounts, {len(self._blocks)} blocks, "
            f"last_hash={self.last_hash[:12]}...)"
        )

    def _verify_block_header(self, position: int, block: Block, previous: Block | None) -> None:
        """Check a block's index, stored hash, link to the block before and round."""
        if block.index != position:
            raise AuditError(
                f"audit log block {position}: its index field is {block.index}, expected "
                f"{position}. A block before it was dropped, inserted or moved",
                position,
            )

        try:
            recomputed = block_hash(
                block.index, block.round, block.previous_hash, block.transactions
            )
        except (TypeError, ValueError) as error:
            raise AuditError(
                f"audit log block {position}: its contents cannot be hashed: {error}", position
            ) from error
        if recomputed != block.hash:
            raise AuditError(
                f"audit log block {position}: hash mismatch, stored {block.hash} but the "
                f"header and transactions hash to {recomputed}. The block was edited after it "
                f"was sealed",
                position,
            )

        expected_previous = GENESIS_PREVIOUS_HASH if previous is None else previous.hash
        if block.previous_hash != expected_previous:
            before = (
                "the genesis value" if previous is None else f"the hash of block {position - 1}"
            )
            raise AuditError(
                f"audit log block {position}: broken link, previous_hash is "
                f"{block.previous_hash} but {before} is {expected_previous}",
                position,
            )

        if previous is not None and block.round < previous.round:
            raise AuditError(
                f"audit log block {position}: round {block.round} is earlier than round "
                f"{previous.round} of block {position - 1}",
                position,
            )

    def _verify_block_transactions(
        self, position: int, block: Block, seen_tx_ids: dict[int, int]
    ) -> None:
        """Check each transaction of a block and record its tx_id in ``seen_tx_ids``."""
        for tx_position, tx in enumerate(block.transactions):
            problem = _transaction_problem(tx, len(self._account_names), block.round)
            if problem is None and tx.tx_id in seen_tx_ids:
                problem = f"tx_id {tx.tx_id} was already logged in block {seen_tx_ids[tx.tx_id]}"
            if problem is not None:
                raise AuditError(
                    f"audit log block {position}, transaction {tx_position}: {problem}", position
                )
            seen_tx_ids[tx.tx_id] = position

    def _position_of_tx(self, target: TransactionRecord) -> int | None:
        """Find the first block that contains ``target`` (by identity) and return its position.

        Returns None when no block contains it.
        """
        for position, block in enumerate(self._blocks):
            if any(tx is target for tx in block.transactions):
                return position
        return None


def _canonical_json(value: Any) -> str:
    """Serialize to the one JSON text that the hashes and ``to_json`` use."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _transaction_to_dict(tx: TransactionRecord) -> dict[str, Any]:
    """Convert a transaction to the canonical field values that are hashed and saved.

    Raises TypeError for a non-integer in an integer field or a non-number amount.
    """
    if isinstance(tx.amount, bool) or not isinstance(tx.amount, numbers.Real):
        raise TypeError(f"amount must be a real number, got {tx.amount!r}")
    return {
        "tx_id": operator.index(tx.tx_id),
        "payer": operator.index(tx.payer),
        "payee": operator.index(tx.payee),
        "amount": float(tx.amount),
        "kind": operator.index(tx.kind),
        "round_submitted": operator.index(tx.round_submitted),
    }


def _normalize_transaction(tx: object, position: int) -> TransactionRecord:
    """Copy a transaction with built-in Python types in every field."""
    if not isinstance(tx, TransactionRecord):
        raise TypeError(
            f"transaction {position} of the new block must be a TransactionRecord, "
            f"got {type(tx).__name__}"
        )
    try:
        fields = _transaction_to_dict(tx)
        kind = Kind(fields["kind"])
    except (TypeError, ValueError) as error:
        raise type(error)(f"transaction {position} of the new block is invalid: {error}") from error
    return TransactionRecord(
        tx_id=fields["tx_id"],
        payer=fields["payer"],
        payee=fields["payee"],
        amount=fields["amount"],
        kind=kind,
        round_submitted=fields["round_submitted"],
    )


def _transaction_problem(tx: TransactionRecord, n_accounts: int, block_round: int) -> str | None:
    """Describe the first rule a transaction breaks, or return None when it is valid."""
    try:
        fields = _transaction_to_dict(tx)
    except (TypeError, ValueError) as error:
        return f"a field has no canonical form: {error}"
    for name in ("payer", "payee"):
        if not 0 <= fields[name] < n_accounts:
            return f"{name} {fields[name]} is not an account index in [0, {n_accounts})"
    amount = fields["amount"]
    if not math.isfinite(amount) or amount < 0:
        return f"amount must be finite and >= 0, got {amount!r}"
    if fields["kind"] not in _KIND_VALUES:
        return f"kind {fields['kind']} is not a Kind value {sorted(_KIND_VALUES)}"
    if fields["kind"] == Kind.MILESTONE and amount != 0:
        return f"a MILESTONE transaction moves no value, but its amount is {amount!r}"
    if fields["round_submitted"] > block_round:
        return (
            f"round_submitted {fields['round_submitted']} is later than the round "
            f"{block_round} in which the block was formed"
        )
    return None


def _check_hex_hash(value: object, name: str) -> None:
    """Raise ValueError unless ``value`` is a 64-character lowercase hex string."""
    valid = (
        isinstance(value, str)
        and len(value) == HASH_HEX_LENGTH
        and all(character in "0123456789abcdef" for character in value)
    )
    if not valid:
        raise ValueError(
            f"{name} must be a {HASH_HEX_LENGTH}-character lowercase hex SHA-256 digest, "
            f"got {value!r}"
        )


def _block_to_dict(block: Block) -> dict[str, Any]:
    return {
        "index": block.index,
        "round": block.round,
        "previous_hash": block.previous_hash,
        "hash": block.hash,
        "transactions": [_transaction_to_dict(tx) for tx in block.transactions],
    }


def _require(mapping: dict[str, Any], key: str, expected_type: type, where: str) -> Any:
    """Return ``mapping[key]``, raising ValueError when it is missing or of the wrong type."""
    if key not in mapping:
        raise ValueError(f"{where} JSON is missing the key {key!r}")
    value = mapping[key]
    # bool is a subclass of int, but true and false are never valid indices or amounts.
    if isinstance(value, bool) or not isinstance(value, expected_type):
        raise ValueError(
            f"{where} JSON key {key!r} must be of type {expected_type.__name__}, got {value!r}"
        )
    return value


def _block_from_dict(entry: object, position: int) -> Block:
    where = f"audit log block {position}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} JSON must be an object, got {entry!r}")

    transactions = []
    for tx_position, tx_entry in enumerate(_require(entry, "transactions", list, where)):
        tx_where = f"{where}, transaction {tx_position}"
        if not isinstance(tx_entry, dict):
            raise ValueError(f"{tx_where} JSON must be an object, got {tx_entry!r}")
        amount = tx_entry.get("amount")
        if isinstance(amount, int) and not isinstance(amount, bool):
            amount = float(amount)
            tx_entry = {**tx_entry, "amount": amount}
        kind_value = _require(tx_entry, "kind", int, tx_where)
        try:
            kind = Kind(kind_value)
        except ValueError as error:
            raise ValueError(f"{tx_where} JSON has an unknown kind {kind_value}") from error
        transactions.append(
            TransactionRecord(
                tx_id=_require(tx_entry, "tx_id", int, tx_where),
                payer=_require(tx_entry, "payer", int, tx_where),
                payee=_require(tx_entry, "payee", int, tx_where),
                amount=_require(tx_entry, "amount", float, tx_where),
                kind=kind,
                round_submitted=_require(tx_entry, "round_submitted", int, tx_where),
            )
        )

    return Block(
        index=_require(entry, "index", int, where),
        round=_require(entry, "round", int, where),
        previous_hash=_require(entry, "previous_hash", str, where),
        transactions=tuple(transactions),
        hash=_require(entry, "hash", str, where),
    )
