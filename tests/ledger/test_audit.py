"""Audit log: hash chaining, tamper detection, replay of balances and JSON round trips.

Tampering is simulated the way an attacker with write access to the stored log would do it:
blocks are rebuilt with ``dataclasses.replace`` and put back into the private list
``AuditLog._blocks``, keeping their stored hashes unless a test recomputes them.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerzoo.ledger.audit import (
    GENESIS_PREVIOUS_HASH,
    AuditError,
    AuditLog,
    Block,
    block_hash,
)
from ledgerzoo.ledger.records import Kind, TransactionRecord

ACCOUNT_NAMES = ("mint", "lender_0", "borrower_0", "device_0")
MINT = 0  # index of the mint account in ACCOUNT_NAMES
INITIAL_BALANCES = (0.0, 100.0, 50.0, 20.0)

# (round, [(tx_id, payer, payee, amount, kind, round_submitted), ...]) per block. Amounts are
# dyadic fractions, so every sum in replay is exact and balances can be compared with ==.
HONEST_BLOCKS = [
    (0, [(0, MINT, 1, 10.0, Kind.MINT, 0), (1, 1, 2, 5.0, Kind.PAYMENT, 0)]),
    (
        2,
        [
            (2, 1, 2, 30.0, Kind.LOAN_PRINCIPAL, 1),
            (4, 2, 3, 2.5, Kind.DATA_PURCHASE, 2),
            (3, MINT, 3, 1.25, Kind.MINT, 1),
        ],
    ),
    (3, []),
    (5, [(5, 2, 1, 33.0, Kind.REPAYMENT, 4), (6, 3, 2, 0.5, Kind.PAYMENT, 5)]),
    (6, [(7, 1, 3, 4.0, Kind.ESCROW_LOCK, 6), (8, 0, 0, 0.0, Kind.MILESTONE, 6)]),
]


def make_transaction(*fields: object) -> TransactionRecord:
    return TransactionRecord(*fields)  # type: ignore[arg-type]


def build_honest_log() -> AuditLog:
    log = AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES)
    for round_, rows in HONEST_BLOCKS:
        log.append_block(round_, [make_transaction(*row) for row in rows])
    return log


def transaction_positions(log: AuditLog) -> list[tuple[int, int]]:
    """(block position, transaction position) of every logged transaction."""
    return [
        (block_position, tx_position)
        for block_position, block in enumerate(log.blocks)
        for tx_position in range(len(block.transactions))
    ]


def replace_transactions(
    log: AuditLog, block_position: int, transactions: list[TransactionRecord]
) -> None:
    """Swap in new transactions for a block and keep its stored hash (a tampered block)."""
    block = log._blocks[block_position]
    log._blocks[block_position] = dataclasses.replace(block, transactions=tuple(transactions))


def edit_transaction(
    log: AuditLog, block_position: int, tx_position: int, **changes: object
) -> None:
    transactions = list(log._blocks[block_position].transactions)
    transactions[tx_position] = dataclasses.replace(transactions[tx_position], **changes)
    replace_transactions(log, block_position, transactions)


def reseal_from(log: AuditLog, start: int) -> None:
    """Recompute indices, links and hashes from block ``start`` on, as a forger would."""
    for position in range(start, len(log._blocks)):
        block = log._blocks[position]
        previous_hash = GENESIS_PREVIOUS_HASH if position == 0 else log._blocks[position - 1].hash
        log._blocks[position] = dataclasses.replace(
            block,
            index=position,
            previous_hash=previous_hash,
            hash=block_hash(position, block.round, previous_hash, block.transactions),
        )


def assert_detected(log: AuditLog, block_position: int | None, **verify_kwargs: str) -> AuditError:
    with pytest.raises(AuditError) as caught:
        log.verify(**verify_kwargs)
    assert caught.value.block_index == block_position, str(caught.value)
    assert f"block {block_position}" in str(caught.value)
    return caught.value


def changed_value(tx: TransactionRecord, field: str) -> object:
    """A value of ``field`` that differs from ``tx``'s and is still valid for the log."""
    if field == "amount":
        return tx.amount + 1.0
    if field in ("payer", "payee"):
        return (getattr(tx, field) + 1) % len(ACCOUNT_NAMES)
    if field == "kind":
        return Kind.DATA_PURCHASE if tx.kind == Kind.PAYMENT else Kind.PAYMENT
    if field == "round_submitted":
        return max(tx.round_submitted - 1, 0) if tx.round_submitted > 0 else 1
    if field == "tx_id":
        return tx.tx_id + 100
    raise AssertionError(f"no changed value defined for field {field}")


# --- honest logs ---------------------------------------------------------------------------


def test_honest_log_verifies():
    log = build_honest_log()
    log.verify()
    log.verify(expected_last_hash=log.last_hash)


def test_blocks_are_hash_linked():
    log = build_honest_log()
    blocks = log.blocks
    assert blocks[0].previous_hash == GENESIS_PREVIOUS_HASH
    for position, block in enumerate(blocks):
        assert block.index == position
        assert len(block.hash) == 64
        assert block.hash == block_hash(
            block.index, block.round, block.previous_hash, block.transactions
        )
        if position > 0:
            assert block.previous_hash == blocks[position - 1].hash
    assert log.last_hash == blocks[-1].hash


def test_empty_log_verifies():
    log = AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES)
    log.verify()
    log.verify(expected_last_hash=GENESIS_PREVIOUS_HASH)
    assert log.blocks == ()
    assert log.last_hash == GENESIS_PREVIOUS_HASH
    assert log.replay().tolist() == list(INITIAL_BALANCES)


def test_empty_block_allowed():
    log = AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES)
    block = log.append_block(0, [])
    assert block.transactions == ()
    assert block.previous_hash == GENESIS_PREVIOUS_HASH
    log.verify()


def test_blocks_tuple_is_a_snapshot():
    log = build_honest_log()
    blocks = log.blocks
    assert isinstance(blocks, tuple)
    log.append_block(7, [])
    assert len(blocks) == len(HONEST_BLOCKS)
    assert len(log.blocks) == len(HONEST_BLOCKS) + 1


def test_block_is_frozen():
    block = build_honest_log().blocks[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.round = 9  # type: ignore[misc]


def test_hash_covers_header_and_transactions():
    block = build_honest_log().blocks[1]
    original = block_hash(block.index, block.round, block.previous_hash, block.transactions)
    assert (
        block_hash(block.index + 1, block.round, block.previous_hash, block.transactions)
        != original
    )
    assert (
        block_hash(block.index, block.round + 1, block.previous_hash, block.transactions)
        != original
    )
    assert block_hash(block.index, block.round, "f" * 64, block.transactions) != original
    assert (
        block_hash(block.index, block.round, block.previous_hash, block.transactions[:-1])
        != original
    )


def test_numpy_fields_normalized():
    log = AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES)
    numpy_tx = make_transaction(
        np.int64(0), np.int64(1), np.int32(2), np.float32(2.5), np.int64(2), np.int64(0)
    )
    block = log.append_block(np.int64(0), [numpy_tx])
    stored = block.transactions[0]
    assert type(stored.tx_id) is int
    assert type(stored.payer) is int
    assert type(stored.amount) is float
    assert stored.amount == 2.5
    assert stored.kind is Kind.LOAN_PRINCIPAL
    python_tx = make_transaction(0, 1, 2, 2.5, Kind.LOAN_PRINCIPAL, 0)
    assert block.hash == block_hash(0, 0, GENESIS_PREVIOUS_HASH, [python_tx])
    log.verify()


# --- tampering with transactions -----------------------------------------------------------


@pytest.mark.parametrize("field", ["amount", "payer", "payee", "kind", "round_submitted", "tx_id"])
def test_edited_transaction_detected(field):
    for block_position, tx_position in transaction_positions(build_honest_log()):
        log = build_honest_log()
        tx = log.blocks[block_position].transactions[tx_position]
        edit_transaction(log, block_position, tx_position, **{field: changed_value(tx, field)})
        error = assert_detected(log, block_position)
        assert "hash mismatch" in str(error)


def test_dropped_transaction_detected():
    for block_position, tx_position in transaction_positions(build_honest_log()):
        log = build_honest_log()
        transactions = list(log.blocks[block_position].transactions)
        del transactions[tx_position]
        replace_transactions(log, block_position, transactions)
        assert_detected(log, block_position)


def test_inserted_transaction_detected():
    forged = make_transaction(99, 2, 1, 7.0, Kind.PAYMENT, 0)
    for block_position, block in enumerate(build_honest_log().blocks):
        for tx_position in range(len(block.transactions) + 1):
            log = build_honest_log()
            transactions = list(block.transactions)
            transactions.insert(tx_position, forged)
            replace_transactions(log, block_position, transactions)
            assert_detected(log, block_position)


def test_swapped_transactions_detected():
    for block_position, block in enumerate(build_honest_log().blocks):
        count = len(block.transactions)
        for first in range(count):
            for second in range(first + 1, count):
                log = build_honest_log()
                transactions = list(block.transactions)
                transactions[first], transactions[second] = (
                    transactions[second],
                    transactions[first],
                )
                replace_transactions(log, block_position, transactions)
                assert_detected(log, block_position)


def test_transaction_moved_between_blocks_detected():
    log = build_honest_log()
    moved = log.blocks[0].transactions[-1]
    replace_transactions(log, 0, list(log.blocks[0].transactions[:-1]))
    replace_transactions(log, 1, [moved, *log.blocks[1].transactions])
    assert_detected(log, 0)


# --- tampering with blocks -----------------------------------------------------------------


def test_edited_block_round_detected():
    for position in range(len(HONEST_BLOCKS)):
        log = build_honest_log()
        log._blocks[position] = dataclasses.replace(
            log._blocks[position], round=log._blocks[position].round + 1
        )
        error = assert_detected(log, position)
        assert "hash mismatch" in str(error)


def test_edited_stored_hash_breaks_next_link():
    log = build_honest_log()
    log._blocks[1] = dataclasses.replace(log._blocks[1], hash="a" * 64)
    assert_detected(log, 1)

    # A forger who reseals block 1 alone leaves the link from block 2 broken.
    log = build_honest_log()
    edit_transaction(log, 1, 0, amount=300.0)
    reseal_from(log, 1)
    log._blocks[2:] = build_honest_log()._blocks[2:]
    error = assert_detected(log, 2)
    assert "broken link" in str(error)
    assert "block 1" in str(error)


def test_edited_previous_hash_detected():
    log = build_honest_log()
    log._blocks[0] = dataclasses.replace(log._blocks[0], previous_hash="1" * 64)
    assert_detected(log, 0)


def test_dropped_block_detected():
    for position in range(len(HONEST_BLOCKS) - 1):
        log = build_honest_log()
        del log._blocks[position]
        error = assert_detected(log, position)
        assert "index" in str(error)


def test_dropped_last_block_needs_expected_hash():
    log = build_honest_log()
    trusted_last_hash = log.last_hash
    del log._blocks[-1]
    # The shortened chain is consistent in itself: the limitation that expected_last_hash closes.
    log.verify()
    error = assert_detected(log, len(HONEST_BLOCKS) - 2, expected_last_hash=trusted_last_hash)
    assert trusted_last_hash in str(error)


def test_appended_block_needs_expected_hash():
    log = build_honest_log()
    trusted_last_hash = log.last_hash
    log.append_block(7, [make_transaction(99, 2, 1, 7.0, Kind.PAYMENT, 7)])
    # A forged block appended with a correct hash is consistent with the chain before it.
    log.verify()
    error = assert_detected(log, len(HONEST_BLOCKS), expected_last_hash=trusted_last_hash)
    assert "appended" in str(error)


def test_swapped_blocks_detected():
    for first in range(len(HONEST_BLOCKS)):
        for second in range(first + 1, len(HONEST_BLOCKS)):
            log = build_honest_log()
            log._blocks[first], log._blocks[second] = log._blocks[second], log._blocks[first]
            assert_detected(log, first)


def test_inserted_block_detected():
    log = build_honest_log()
    previous = log._blocks[1]
    forged_transactions = (make_transaction(99, 2, 1, 7.0, Kind.PAYMENT, 2),)
    forged = Block(
        index=2,
        round=previous.round,
        previous_hash=previous.hash,
        transactions=forged_transactions,
        hash=block_hash(2, previous.round, previous.hash, forged_transactions),
    )
    log._blocks.insert(2, forged)
    # The forged block itself is consistent, so the first bad block is the one after it.
    assert_detected(log, 3)


def test_rewritten_tail_needs_expected_hash():
    edited_block = 3
    for start in range(edited_block + 1):  # every resealing start at or before the edit
        log = build_honest_log()
        trusted_last_hash = log.last_hash
        edit_transaction(log, edited_block, 0, amount=0.25)
        reseal_from(log, start)
        log.verify()
        error = assert_detected(log, len(HONEST_BLOCKS) - 1, expected_last_hash=trusted_last_hash)
        assert "rewritten" in str(error)


def test_forged_chain_with_invalid_transaction():
    log = build_honest_log()
    edit_transaction(log, 1, 1, payer=len(ACCOUNT_NAMES))
    reseal_from(log, 1)
    error = assert_detected(log, 1)
    assert "payer 4" in str(error)

    log = build_honest_log()
    edit_transaction(log, 3, 1, tx_id=0)
    reseal_from(log, 3)
    error = assert_detected(log, 3)
    assert "tx_id 0 was already logged in block 0" in str(error)


def test_unhashable_field_detected():
    log = build_honest_log()
    edit_transaction(log, 0, 0, amount=float("nan"))
    error = assert_detected(log, 0)
    assert "cannot be hashed" in str(error)


@pytest.mark.parametrize("bad_hash", ["abc", "G" * 64, "A" * 64, 12])
def test_malformed_expected_hash_rejected(bad_hash):
    log = build_honest_log()
    with pytest.raises(ValueError, match="expected_last_hash") as caught:
        log.verify(expected_last_hash=bad_hash)
    assert not isinstance(caught.value, AuditError)


# --- replay --------------------------------------------------------------------------------


def test_replay_matches_hand_computation():
    balances = dict(zip(ACCOUNT_NAMES, INITIAL_BALANCES, strict=True))
    minted = 0.0
    for _, rows in HONEST_BLOCKS:
        for _, payer, payee, amount, kind, _ in rows:
            balances[ACCOUNT_NAMES[payer]] -= amount
            balances[ACCOUNT_NAMES[payee]] += amount
            if kind == Kind.MINT:
                minted += amount

    replayed = build_honest_log().replay()
    assert replayed.dtype == np.float64
    assert replayed.tolist() == [balances[name] for name in ACCOUNT_NAMES]
    # Written out by hand from HONEST_BLOCKS as a second check.
    assert replayed.tolist() == [-11.25, 104.0, 50.0, 27.25]
    assert replayed[MINT] == -minted
    assert replayed.sum() == sum(INITIAL_BALANCES)


def test_replay_leaves_initial_balances_alone():
    log = build_honest_log()
    log.replay()[1] = -1.0
    log.initial_balances[1] = -1.0
    assert log.initial_balances.tolist() == list(INITIAL_BALANCES)
    assert log.replay().tolist() == [-11.25, 104.0, 50.0, 27.25]


# --- append_block and constructor checks --------------------------------------------------


@pytest.mark.parametrize(
    ("transaction", "message"),
    [
        (make_transaction(10, 4, 1, 1.0, Kind.PAYMENT, 7), "payer 4"),
        (make_transaction(10, 1, -1, 1.0, Kind.PAYMENT, 7), "payee -1"),
        (make_transaction(10, 1, 2, -1.0, Kind.PAYMENT, 7), "amount must be finite and >= 0"),
        (make_transaction(10, 1, 2, float("inf"), Kind.PAYMENT, 7), "amount must be finite"),
        (make_transaction(10, 1, 2, float("nan"), Kind.PAYMENT, 7), "amount must be finite"),
        (make_transaction(10, 1, 2, 1.0, Kind.MILESTONE, 7), "MILESTONE"),
        (make_transaction(10, 1, 2, 1.0, Kind.PAYMENT, 8), "round_submitted 8 is later"),
        (make_transaction(0, 1, 2, 1.0, Kind.PAYMENT, 7), "tx_id 0 was already logged"),
        (make_transaction(10, 1, 2, 1.0, 99, 7), "99"),
    ],
    ids=[
        "payer out of range",
        "negative payee",
        "negative amount",
        "infinite amount",
        "nan amount",
        "milestone with value",
        "submitted after block",
        "duplicate tx_id",
        "unknown kind",
    ],
)
def test_append_rejects_invalid_transaction(transaction, message):
    log = build_honest_log()
    before = log.blocks
    with pytest.raises(ValueError, match=message):
        log.append_block(7, [transaction])
    assert log.blocks == before
    log.verify()


def test_append_rejects_duplicate_in_block():
    log = AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES)
    tx = make_transaction(0, 1, 2, 1.0, Kind.PAYMENT, 0)
    with pytest.raises(ValueError, match="tx_id 0 was already logged"):
        log.append_block(0, [tx, tx])
    assert log.blocks == ()


@pytest.mark.parametrize(
    "transaction",
    [
        (0, 1, 2, 1.0, Kind.PAYMENT, 0),
        make_transaction(0, 1.5, 2, 1.0, Kind.PAYMENT, 0),
        make_transaction(0, 1, 2, "1.0", Kind.PAYMENT, 0),
    ],
    ids=["tuple", "float payer", "string amount"],
)
def test_append_rejects_wrong_types(transaction):
    log = AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES)
    with pytest.raises(TypeError, match="transaction 0"):
        log.append_block(0, [transaction])


def test_append_rejects_earlier_round():
    log = build_honest_log()
    with pytest.raises(ValueError, match="round must not decrease"):
        log.append_block(5, [])
    with pytest.raises(ValueError, match="round must be >= 0"):
        AuditLog(ACCOUNT_NAMES, INITIAL_BALANCES).append_block(-1, [])


@pytest.mark.parametrize(
    ("names", "balances", "message"),
    [
        ((), (), "at least one account"),
        (("a", "a"), (1.0, 1.0), "duplicates \\['a'\\]"),
        (("a", "b"), (1.0,), "one value per account"),
        (("a", "b"), (1.0, -1.0), "finite and >= 0"),
        (("a", "b"), (1.0, float("nan")), "finite and >= 0"),
    ],
    ids=["no accounts", "duplicate names", "length mismatch", "negative", "nan"],
)
def test_constructor_rejects_invalid_accounts(names, balances, message):
    with pytest.raises(ValueError, match=message):
        AuditLog(names, balances)


# --- JSON ----------------------------------------------------------------------------------


def test_json_round_trip_equal():
    log = build_honest_log()
    text = log.to_json()
    loaded = AuditLog.from_json(text)
    assert loaded == log
    assert loaded.blocks == log.blocks
    assert loaded.account_names == log.account_names
    assert loaded.to_json() == text
    assert loaded.last_hash == log.last_hash
    assert loaded.replay().tolist() == log.replay().tolist()
    loaded.verify(expected_last_hash=log.last_hash)
    for block in loaded.blocks:
        for tx in block.transactions:
            assert type(tx.kind) is Kind
            assert type(tx.amount) is float


def test_json_round_trip_exact_floats():
    awkward = [0.1, 1 / 3, 5e-324, 1e-300, 2.0**53 + 2.0, 123456.789e10]
    log = AuditLog(["a", "b"], [1 / 7, 0.1])
    log.append_block(
        0, [make_transaction(i, 0, 1, amount, Kind.PAYMENT, 0) for i, amount in enumerate(awkward)]
    )
    loaded = AuditLog.from_json(log.to_json())
    assert [tx.amount for tx in loaded.blocks[0].transactions] == awkward
    assert loaded.initial_balances.tolist() == [1 / 7, 0.1]
    loaded.verify(expected_last_hash=log.last_hash)


def test_loaded_append_keeps_chain():
    loaded = AuditLog.from_json(build_honest_log().to_json())
    with pytest.raises(ValueError, match="tx_id 0 was already logged"):
        loaded.append_block(7, [make_transaction(0, 1, 2, 1.0, Kind.PAYMENT, 7)])
    loaded.append_block(7, [make_transaction(9, 1, 2, 1.0, Kind.PAYMENT, 7)])
    loaded.verify()


def test_tampered_json_fails_verify():
    log = build_honest_log()
    document = json.loads(log.to_json())
    document["blocks"][3]["transactions"][0]["amount"] = 3.0
    loaded = AuditLog.from_json(json.dumps(document))
    assert_detected(loaded, 3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda document: document.pop("blocks"), "missing the key 'blocks'"),
        (lambda document: document.update(version=2), "version"),
        (
            lambda document: document["blocks"][0].pop("hash"),
            "block 0 JSON is missing the key 'hash'",
        ),
        (
            lambda document: document["blocks"][1]["transactions"][0].update(payer="1"),
            "block 1, transaction 0 JSON key 'payer'",
        ),
        (
            lambda document: document["blocks"][1]["transactions"][0].update(kind=99),
            "unknown kind 99",
        ),
    ],
    ids=["no blocks", "wrong version", "no hash", "string payer", "unknown kind"],
)
def test_malformed_json_rejected(edit, message):
    document = json.loads(build_honest_log().to_json())
    edit(document)
    with pytest.raises(ValueError, match=message):
        AuditLog.from_json(json.dumps(document))


def test_non_json_rejected():
    with pytest.raises(ValueError):
        AuditLog.from_json("not json")


# --- random transaction streams ------------------------------------------------------------

amounts = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def audit_logs(draw: st.DrawFn) -> tuple[AuditLog, list[list[TransactionRecord]]]:
    """An honest log over random accounts, amounts, kinds and block sizes, and its blocks."""
    n_accounts = draw(st.integers(min_value=2, max_value=5))
    initial_balances = draw(st.lists(amounts, min_size=n_accounts, max_size=n_accounts))
    n_blocks = draw(st.integers(min_value=1, max_value=6))
    block_rounds = sorted(draw(st.lists(st.integers(0, 30), min_size=n_blocks, max_size=n_blocks)))
    account = st.integers(min_value=0, max_value=n_accounts - 1)

    log = AuditLog([f"account_{i}" for i in range(n_accounts)], initial_balances)
    blocks = []
    next_tx_id = 0
    for block_round in block_rounds:
        transactions = []
        for _ in range(draw(st.integers(min_value=0, max_value=5))):
            kind = draw(st.sampled_from(Kind))
            amount = 0.0 if kind == Kind.MILESTONE else draw(amounts)
            round_submitted = draw(st.integers(min_value=0, max_value=block_round))
            transactions.append(
                TransactionRecord(
                    next_tx_id, draw(account), draw(account), amount, kind, round_submitted
                )
            )
            next_tx_id += 1
        log.append_block(block_round, transactions)
        blocks.append(transactions)
    return log, blocks


TRANSACTION_EDITS = ("amount", "payer", "payee", "kind", "round_submitted", "tx_id")
BLOCK_EDITS = ("drop_tx", "insert_tx", "swap_tx", "block_round", "drop_block", "swap_blocks")


def apply_random_edit(log: AuditLog, data: st.DataObject) -> tuple[int | None, bool]:
    """Apply one random edit to ``log``.

    Returns:
        The block position that verify must name (None when the only block was dropped),
        and whether verify can detect the edit without a trusted last hash. Only dropping
        the last block needs one.
    """
    blocks = log._blocks
    positions = transaction_positions(log)
    choices = list(BLOCK_EDITS)
    if positions:
        choices.extend(TRANSACTION_EDITS)
    else:
        choices.remove("drop_tx")
    if not any(len(block.transactions) >= 2 for block in blocks):
        choices.remove("swap_tx")
    if len(blocks) < 2:
        choices.remove("swap_blocks")
    edit = data.draw(st.sampled_from(choices), label="edit")

    if edit in TRANSACTION_EDITS:
        block_position, tx_position = data.draw(st.sampled_from(positions), label="position")
        tx = blocks[block_position].transactions[tx_position]
        old = getattr(tx, edit)
        if edit == "amount":
            values = amounts.filter(lambda value: repr(value) != repr(old))
        elif edit in ("payer", "payee"):
            values = st.integers(0, len(log.account_names) - 1).filter(lambda value: value != old)
        elif edit == "kind":
            values = st.sampled_from(Kind).filter(lambda value: value != old)
        else:
            values = st.integers(0, 1000).filter(lambda value: value != old)
        edit_transaction(
            log, block_position, tx_position, **{edit: data.draw(values, label="value")}
        )
        return block_position, True

    if edit == "drop_tx":
        block_position, tx_position = data.draw(st.sampled_from(positions), label="position")
        transactions = list(blocks[block_position].transactions)
        del transactions[tx_position]
        replace_transactions(log, block_position, transactions)
        return block_position, True

    if edit == "insert_tx":
        block_position = data.draw(st.integers(0, len(blocks) - 1), label="block")
        transactions = list(blocks[block_position].transactions)
        tx_position = data.draw(st.integers(0, len(transactions)), label="position")
        forged = TransactionRecord(
            10_000, 0, len(log.account_names) - 1, data.draw(amounts), Kind.PAYMENT, 0
        )
        transactions.insert(tx_position, forged)
        replace_transactions(log, block_position, transactions)
        return block_position, True

    if edit == "swap_tx":
        candidates = [i for i, block in enumerate(blocks) if len(block.transactions) >= 2]
        block_position = data.draw(st.sampled_from(candidates), label="block")
        transactions = list(blocks[block_position].transactions)
        first, second = data.draw(
            st.lists(st.integers(0, len(transactions) - 1), min_size=2, max_size=2, unique=True),
            label="pair",
        )
        transactions[first], transactions[second] = transactions[second], transactions[first]
        replace_transactions(log, block_position, transactions)
        return block_position, True

    if edit == "block_round":
        block_position = data.draw(st.integers(0, len(blocks) - 1), label="block")
        old_round = blocks[block_position].round
        new_round = data.draw(st.integers(0, 40).filter(lambda value: value != old_round))
        blocks[block_position] = dataclasses.replace(blocks[block_position], round=new_round)
        return block_position, True

    if edit == "drop_block":
        block_position = data.draw(st.integers(0, len(blocks) - 1), label="block")
        del blocks[block_position]
        if block_position == len(blocks):  # the last block was dropped
            return (block_position - 1 if blocks else None), False
        return block_position, True

    # swap_blocks
    first, second = sorted(
        data.draw(
            st.lists(st.integers(0, len(blocks) - 1), min_size=2, max_size=2, unique=True),
            label="pair",
        )
    )
    blocks[first], blocks[second] = blocks[second], blocks[first]
    return first, True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=audit_logs(), data=st.data())
def test_random_stream_edit_detected(generated, data):
    log, blocks = generated
    log.verify()
    trusted_last_hash = log.last_hash

    balances = log.initial_balances
    for transactions in blocks:
        for tx in transactions:
            balances[tx.payer] -= tx.amount
            balances[tx.payee] += tx.amount
    np.testing.assert_allclose(log.replay(), balances, rtol=1e-12, atol=1e-6)

    expected_position, detectable_without_trusted_hash = apply_random_edit(log, data)
    if detectable_without_trusted_hash:
        with pytest.raises(AuditError) as caught:
            log.verify()
        assert caught.value.block_index == expected_position, str(caught.value)
    with pytest.raises(AuditError) as caught:
        log.verify(expected_last_hash=trusted_last_hash)
    assert caught.value.block_index == expected_position, str(caught.value)
