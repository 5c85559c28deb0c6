"""Tests of the batched ledger: validation, conservation, confirmation per mode, batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerzoo.ledger.core import FUNDS_TOLERANCE, Ledger, LedgerConfig
from ledgerzoo.ledger.records import Kind, Status

AGENTS = ["a", "b", "c"]


def stream_strategy(max_rounds: int = 12) -> st.SearchStrategy:
    """Random transaction streams: per round, a list of (payer, payee, amount) among agents."""
    transaction = st.tuples(
        st.integers(0, len(AGENTS) - 1),
        st.integers(0, len(AGENTS) - 1),
        st.floats(0.0, 6.0, allow_nan=False),
    )
    return st.lists(st.lists(transaction, max_size=4), min_size=1, max_size=max_rounds)


# A payment is accepted when the balance covers it within FUNDS_TOLERANCE, so a balance can end
# that far below 0, plus the rounding of the subtraction (a few ulps of the coins involved).
LOWEST_BALANCE = -(FUNDS_TOLERANCE + 1e-12)

CHAIN = {"mode": "chain", "block_interval": 2, "block_capacity": 2, "confirmations": 1}
TANGLE = {"mode": "tangle", "tangle": {"milestone_interval": 3}}


def play(ledger: Ledger, stream: list, drain_rounds: int = 40) -> tuple[set[int], set[int]]:
    """Submit a stream round by round, then run empty rounds; return submitted and confirmed ids."""
    accepted: set[int] = set()
    confirmed: set[int] = set()
    for round_transactions in stream + [[]] * drain_rounds:
        for payer, payee, amount in round_transactions:
            submission = ledger.submit([[payer]], [[payee]], [[amount]])
            if submission.accepted[0, 0]:
                accepted.add(int(submission.tx_ids[0, 0]))
        settlement = ledger.end_round()
        confirmed |= {int(i) for i in settlement.tx_id[0][settlement.confirmed[0]]}
        assert np.all(ledger.balances[0, : ledger.mint] >= LOWEST_BALANCE), ledger.balances
        assert ledger.conservation_error()[0] < 1e-9, ledger.conservation_error()
    return accepted, confirmed


@pytest.mark.parametrize("config", ["instant", CHAIN, TANGLE])
@settings(max_examples=40, deadline=None)
@given(stream=stream_strategy())
def test_stream_conserves_and_confirms(config: object, stream: list) -> None:
    ledger = Ledger(AGENTS, 1, config, initial_balances=[10.0, 5.0, 0.0], seeds=[7])
    accepted, confirmed = play(ledger, stream)

    assert confirmed == accepted, f"accepted {sorted(accepted)}, confirmed {sorted(confirmed)}"
    assert ledger.pending_count()[0] == 0, ledger.pending_count()


def test_payment_within_tolerance_stays_bounded() -> None:
    # 5 - 1e-9 rounds so that paying 5.0 next leaves -1.00000008e-09: within tolerance, but
    # just below -FUNDS_TOLERANCE.
    ledger = Ledger(AGENTS, 1, "instant", initial_balances=[10.0, 5.0, 0.0])
    first = ledger.submit([[1]], [[0]], [[1e-9]])
    second = ledger.submit([[1]], [[0]], [[5.0]])
    ledger.end_round()

    assert first.accepted[0, 0]
    assert second.accepted[0, 0]
    assert ledger.balances[0, 1] >= LOWEST_BALANCE, ledger.balances
    third = ledger.submit([[1]], [[0]], [[1e-9]])
    assert not third.accepted[0, 0], "a balance at the tolerance covered another payment"


def test_tangle_stream_confirms_everything() -> None:
    rng = np.random.default_rng(3)
    stream = [
        [
            (int(rng.integers(3)), int(rng.integers(3)), float(rng.uniform(0, 2)))
            for _ in range(int(rng.integers(0, 4)))
        ]
        for _ in range(15)
    ]
    config = {"mode": "tangle", "tangle": {"milestone_interval": 3}}
    ledger = Ledger(AGENTS, 1, config, initial_balances=[10.0, 5.0, 0.0], seeds=[1])

    accepted, confirmed = play(ledger, stream, drain_rounds=10)

    assert confirmed == accepted, f"accepted {sorted(accepted)}, confirmed {sorted(confirmed)}"


def test_debit_at_once_credit_at_confirmation() -> None:
    ledger = Ledger(AGENTS, 1, CHAIN, initial_balances=[10.0, 0.0, 0.0])
    ledger.submit([[0]], [[1]], [[4.0]])

    assert ledger.balances[0, 0] == 6.0, ledger.balances
    assert ledger.balances[0, 1] == 0.0, ledger.balances
    assert ledger.pending_incoming()[0, 1] == 4.0, ledger.pending_incoming()


def test_double_spend_rejected() -> None:
    ledger = Ledger(AGENTS, 1, CHAIN, initial_balances=[5.0, 0.0, 0.0])

    submission = ledger.submit([[0, 0]], [[1, 2]], [[4.0, 4.0]])

    assert submission.status[0].tolist() == [Status.PENDING, Status.REJECTED], submission.status
    assert ledger.balances[0, 0] == 1.0, ledger.balances


@pytest.mark.parametrize("confirmations", [0, 1, 3])
@pytest.mark.parametrize("block_interval", [1, 2, 5])
def test_chain_latency_as_configured(confirmations: int, block_interval: int) -> None:
    config = {"mode": "chain", "block_interval": block_interval, "confirmations": confirmations}
    ledger = Ledger(AGENTS, 1, config, initial_balances=[10.0, 0.0, 0.0])
    ledger.submit([[0]], [[1]], [[1.0]])

    rounds = 0
    while not ledger.end_round().confirmed.any():
        rounds += 1
        assert rounds < 100, "never confirmed"

    # The first block forms at the end of round block_interval - 1; each further block waits
    # block_interval rounds.
    expected = block_interval - 1 + confirmations * block_interval
    assert rounds == expected, f"confirmed in round {rounds}, expected {expected}"


def test_block_capacity_delays_overflow() -> None:
    config = {"mode": "chain", "block_interval": 1, "block_capacity": 2, "confirmations": 0}
    ledger = Ledger(AGENTS, 1, config, initial_balances=[10.0, 0.0, 0.0])
    ledger.submit([[0, 0, 0]], [[1, 1, 1]], [[1.0, 1.0, 1.0]])

    first = ledger.end_round()
    second = ledger.end_round()

    assert first.confirmed.sum() == 2, first.confirmed.sum()
    assert second.confirmed.sum() == 1, second.confirmed.sum()


@pytest.mark.parametrize(
    ("payer", "payee", "amount", "kind"),
    [
        (0, 1, -1.0, Kind.PAYMENT),
        (0, 1, np.nan, Kind.PAYMENT),
        (0, 1, np.inf, Kind.PAYMENT),
        (0, 99, 1.0, Kind.PAYMENT),
        (-1, 1, 1.0, Kind.PAYMENT),
        (0, 1, 11.0, Kind.PAYMENT),
        (0, 1, 1.0, Kind.MINT),
        (5, 1, 1.0, Kind.PAYMENT),
    ],
)
def test_invalid_transaction_changes_nothing(
    payer: int, payee: int, amount: float, kind: Kind
) -> None:
    ledger = Ledger(AGENTS, 1, "instant", initial_balances=[10.0, 0.0, 0.0])
    before = ledger.balances.copy()

    submission = ledger.submit([[payer]], [[payee]], [[amount]], kind)

    assert submission.status[0, 0] == Status.REJECTED, submission.status
    assert submission.tx_ids[0, 0] == -1, submission.tx_ids
    np.testing.assert_array_equal(ledger.balances, before)
    assert ledger.pending_count()[0] == 0, ledger.pending_count()


def test_mint_creates_declared_value() -> None:
    ledger = Ledger(AGENTS, 1, "instant")
    ledger.submit([[ledger.mint]], [[0]], [[7.5]], Kind.MINT)
    ledger.end_round()

    assert ledger.balances[0, 0] == 7.5, ledger.balances
    assert ledger.balances[0, ledger.mint] == -7.5, ledger.balances
    assert ledger.minted[0] == 7.5, ledger.minted


def test_full_queue_rejects_explicitly() -> None:
    ledger = Ledger(AGENTS, 1, {"mode": "chain", "queue_capacity": 2}, initial_balances=10.0)

    submission = ledger.submit([[0, 0, 0]], [[1, 1, 1]], [[1.0, 1.0, 1.0]])

    assert submission.status[0].tolist() == [Status.PENDING, Status.PENDING, Status.REJECTED]
    assert ledger.balances[0, 0] == 8.0, ledger.balances


@pytest.mark.parametrize("config", ["instant", CHAIN, TANGLE])
@settings(max_examples=20, deadline=None)
@given(streams=st.lists(stream_strategy(max_rounds=6), min_size=3, max_size=3))
def test_batched_equals_single(config: object, streams: list) -> None:
    start = [10.0, 5.0, 1.0]
    seeds = list(range(len(streams)))
    batched = Ledger(AGENTS, len(streams), config, initial_balances=start, seeds=seeds)
    singles = [Ledger(AGENTS, 1, config, initial_balances=start, seeds=[seed]) for seed in seeds]
    rounds = max(len(stream) for stream in streams) + 5
    for round_index in range(rounds):
        width = max((len(s[round_index]) if round_index < len(s) else 0) for s in streams)
        payers = np.zeros((len(streams), width), dtype=np.int64)
        payees = np.zeros_like(payers)
        amounts = np.zeros((len(streams), width))
        valid = np.zeros((len(streams), width), dtype=bool)
        for b, stream in enumerate(streams):
            for k, (payer, payee, amount) in enumerate(
                stream[round_index] if round_index < len(stream) else []
            ):
                payers[b, k], payees[b, k], amounts[b, k], valid[b, k] = payer, payee, amount, True
        # A padded slot is a rejected NaN payment, which changes nothing.
        amounts = np.where(valid, amounts, np.nan)
        if width:
            batched.submit(payers, payees, amounts)
            for b, single in enumerate(singles):
                single.submit(payers[b : b + 1], payees[b : b + 1], amounts[b : b + 1])
        batched.end_round()
        for single in singles:
            single.end_round()
        for b, single in enumerate(singles):
            np.testing.assert_array_equal(
                batched.balances[b], single.balances[0], err_msg=f"round {round_index}"
            )


def test_config_rejects_unknown_setting() -> None:
    with pytest.raises(ValueError, match="unknown ledger setting 'blocks'"):
        LedgerConfig.parse({"mode": "chain", "blocks": 3})
    with pytest.raises(ValueError, match="invalid ledger mode 'dag'"):
        LedgerConfig.parse("dag")
    with pytest.raises(ValueError, match="block_interval"):
        LedgerConfig(mode="chain", block_interval=0)


def test_reserved_account_names_rejected() -> None:
    with pytest.raises(ValueError, match="reserved"):
        Ledger(["mint", "a"], 1)
    with pytest.raises(KeyError, match="unknown account 'z'"):
        Ledger(AGENTS, 1).account("z")


@pytest.mark.parametrize("mode", ["instant", "chain"])
def test_audit_log_replays_balances(mode: str) -> None:
    config = {"mode": mode, "audit": True, "block_interval": 2}
    ledger = Ledger(AGENTS, 1, config, initial_balances=[10.0, 5.0, 0.0])
    ledger.submit([[ledger.mint]], [[2]], [[3.0]], Kind.MINT)
    for round_index in range(8):
        if round_index < 4:
            ledger.submit([[0, 1]], [[1, 2]], [[1.5, 0.25]])
        ledger.end_round()

    (log,) = ledger.audit_logs
    log.verify()
    np.testing.assert_allclose(log.replay(), ledger.balances[0] + 0.0, atol=1e-12)
    assert ledger.pending_count()[0] == 0, ledger.pending_count()


def test_masked_entries_are_skipped() -> None:
    ledger = Ledger(AGENTS, 2, "instant", initial_balances=10.0)
    submission = ledger.submit(0, 1, [[1.0, 2.0], [3.0, 4.0]], where=[[True, False], [False, True]])

    assert submission.status.tolist() == [
        [Status.PENDING, Status.SKIPPED],
        [Status.SKIPPED, Status.PENDING],
    ]
    assert submission.tx_ids[0, 1] == -1
    assert ledger.pending_count().tolist() == [1, 1]
    np.testing.assert_allclose(ledger.balances[:, 0], [9.0, 6.0])


def test_settlement_reports_paid_and_received() -> None:
    ledger = Ledger(AGENTS, 1, CHAIN, initial_balances=10.0)
    ledger.submit([[0, 1]], [[1, 2]], [[4.0, 1.5]])

    paid_rounds = []
    for _ in range(4):
        settlement = ledger.end_round()
        paid_rounds.append(settlement.paid[0, :3].tolist())
        if settlement.confirmed.any():
            np.testing.assert_allclose(settlement.received[0, :3], [0.0, 4.0, 1.5])

    # Both confirm together, one block after the block formed at the end of round 1.
    assert paid_rounds == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [4.0, 1.5, 0.0]]


@settings(max_examples=60, deadline=None)
@given(
    rounds=st.lists(
        st.lists(
            st.tuples(
                st.integers(-1, len(AGENTS) + 3),  # payer, -1 and past the end are invalid
                st.integers(0, len(AGENTS) - 1),
                st.floats(-1.0, 8.0, allow_nan=False),
                st.booleans(),  # where
            ),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=6,
    ),
    queue=st.integers(2, 8),
)
@pytest.mark.parametrize("fast_paths", ["all", "by_occurrence"])
def test_vectorized_submit_matches_in_order(fast_paths: str, rounds: list, queue: int) -> None:
    fast = Ledger(AGENTS, 2, {"mode": "chain", "queue_capacity": queue}, initial_balances=5.0)
    slow = Ledger(AGENTS, 2, {"mode": "chain", "queue_capacity": queue}, initial_balances=5.0)
    if fast_paths == "by_occurrence":
        fast._submit_together = lambda *args: False  # type: ignore[method-assign]
    slow._submit_together = lambda *args: False  # type: ignore[method-assign]
    slow._submit_by_occurrence = lambda *args: False  # type: ignore[method-assign]
    mint = fast.mint
    for entries in rounds:
        payers = np.array([[p if p != len(AGENTS) + 3 else mint for p, *_ in entries]] * 2)
        payers[1] = payers[1][::-1]
        payees = np.array([[t for _, t, *_ in entries]] * 2)
        amounts = np.array([[a for _, _, a, _ in entries]] * 2)
        kinds = np.where(payers == mint, int(Kind.MINT), int(Kind.PAYMENT))
        where = np.array([[w for *_, w in entries]] * 2)
        a = fast.submit(payers, payees, amounts, kinds, where=where)
        b = slow.submit(payers, payees, amounts, kinds, where=where)
        np.testing.assert_array_equal(a.status, b.status)
        np.testing.assert_array_equal(a.tx_ids, b.tx_ids)
        np.testing.assert_array_equal(fast.balances, slow.balances)
        np.testing.assert_array_equal(fast.queue_id, slow.queue_id)
        np.testing.assert_array_equal(fast.minted, slow.minted)
        for name in ("active", "payer", "payee", "amount", "kind", "round"):
            np.testing.assert_array_equal(
                getattr(fast, f"queue_{name}"), getattr(slow, f"queue_{name}"), err_msg=name
            )
        fast_settlement = fast.end_round()
        slow_settlement = slow.end_round()
        np.testing.assert_array_equal(fast.balances, slow.balances)
        for name in ("confirmed", "payer", "payee", "amount", "kind", "tx_id", "received", "paid"):
            np.testing.assert_array_equal(
                getattr(fast_settlement, name), getattr(slow_settlement, name), err_msg=name
            )


def test_settlement_fields_match_queue() -> None:
    # Blocks every second round, each confirming its two oldest transactions at once.
    config = {
        "mode": "chain",
        "block_interval": 2,
        "block_capacity": 2,
        "confirmations": 0,
        "queue_capacity": 8,
    }
    ledger = Ledger(AGENTS, 2, config, initial_balances=10.0)
    ledger.submit([[0, 1], [2, 0]], [[1, 2], [0, 1]], [[4.0, 1.5], [2.0, 0.5]], Kind.PAYMENT)
    ledger.end_round()  # no block yet: nothing confirms
    ledger.submit([[2], [1]], [[0], [2]], [[1.0], [3.0]], Kind.DATA_PURCHASE)
    queue = {
        "payer": ledger.queue_payer.copy(),
        "payee": ledger.queue_payee.copy(),
        "amount": ledger.queue_amount.copy(),
        "kind": ledger.queue_kind.copy(),
        "tx_id": ledger.queue_id.copy(),
    }
    fill = {"payer": 0, "payee": 0, "amount": 0.0, "kind": 0, "tx_id": -1}

    settlement = ledger.end_round()

    confirmed = settlement.confirmed
    assert confirmed.sum(axis=1).tolist() == [2, 2]
    assert ledger.pending_count().tolist() == [1, 1]
    np.testing.assert_array_equal(settlement.entries, np.flatnonzero(confirmed))
    for name, before in queue.items():
        spread = getattr(settlement, name)
        assert spread.dtype == before.dtype, name
        np.testing.assert_array_equal(spread[confirmed], before[confirmed], err_msg=name)
        np.testing.assert_array_equal(spread[~confirmed], fill[name], err_msg=name)
    # The settlement keeps its transactions after the queue slots are reused.
    ledger.submit([[0], [0]], [[1], [1]], [[0.25], [0.25]])
    np.testing.assert_array_equal(settlement.tx_id[confirmed], queue["tx_id"][confirmed])
