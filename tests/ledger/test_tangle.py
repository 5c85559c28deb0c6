"""The tangle of one ledger instance: weights, confirmation, the walk and seeding.

Cumulative weights are checked against a brute-force count of descendants, and confirmation
against its definition (weight at the threshold, or approved by a milestone), on random
streams drawn by hypothesis.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerzoo.ledger.tangle import GENESIS_ID, Tangle, TangleConfig

# Transactions per round of a random stream; rounds of zero transactions are included.
round_sizes = st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12)
configs = st.builds(
    TangleConfig,
    alpha=st.sampled_from([0.0, 0.5, 3.0]),
    depth=st.integers(min_value=1, max_value=6),
    confirmation_weight=st.integers(min_value=1, max_value=6),
    milestone_interval=st.integers(min_value=1, max_value=4),
)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def play_stream(tangle: Tangle, sizes: list[int]) -> dict[int, int]:
    """Attach ``sizes[r]`` new transactions in round r and end each round.

    Returns:
        The round in which each transaction id was attached.
    """
    attached_round: dict[int, int] = {}
    next_id = 0
    for round_index, size in enumerate(sizes):
        tx_ids = list(range(next_id, next_id + size))
        next_id += size
        tangle.attach(tx_ids, round_index)
        attached_round.update(dict.fromkeys(tx_ids, round_index))
        tangle.end_round(round_index)
    return attached_round


def all_sites(tangle: Tangle) -> list[int]:
    """List every site id, found by following approvers from genesis."""
    seen = {GENESIS_ID}
    queue = deque([GENESIS_ID])
    while queue:
        site = queue.popleft()
        for approver in tangle.approvers(site):
            if approver not in seen:
                seen.add(approver)
                queue.append(approver)
    return sorted(seen)


def descendants(tangle: Tangle, site: int) -> set[int]:
    """Collect the sites that approve ``site`` directly or indirectly, by depth-first search."""
    found: set[int] = set()
    stack = list(tangle.approvers(site))
    while stack:
        approver = stack.pop()
        if approver not in found:
            found.add(approver)
            stack.extend(tangle.approvers(approver))
    return found


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("alpha", -0.1, ValueError),
        ("alpha", float("inf"), ValueError),
        ("alpha", float("nan"), ValueError),
        ("alpha", "0.5", TypeError),
        ("depth", 0, ValueError),
        ("depth", 2.0, TypeError),
        ("confirmation_weight", 0, ValueError),
        ("confirmation_weight", True, TypeError),
        ("milestone_interval", -3, ValueError),
    ],
)
def test_config_rejects_invalid_value(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field) as raised:
        TangleConfig(**{field: value})  # type: ignore[arg-type]
    assert repr(value) in str(raised.value) or str(value) in str(raised.value)


def test_config_defaults() -> None:
    config = TangleConfig()
    assert config.alpha == 0.05
    assert config.depth == 5
    assert config.confirmation_weight == 5
    assert config.milestone_interval == 5


# ---------------------------------------------------------------------- rounds and ids


def test_new_tangle_holds_confirmed_genesis() -> None:
    tangle = Tangle(TangleConfig(), np.random.default_rng(0))
    assert tangle.tip_ids() == [GENESIS_ID]
    assert tangle.cumulative_weight(GENESIS_ID) == 1
    assert tangle.is_confirmed(GENESIS_ID)
    assert tangle.pending_ids() == []
    assert tangle.confirmed_ids() == []


def test_same_round_transactions_do_not_approve_each_other() -> None:
    tangle = Tangle(TangleConfig(), np.random.default_rng(0))
    tangle.attach([0, 1, 2], round=0)
    tangle.attach([3], round=0)  # a second call in the same round walks on the same view
    for tx_id in range(4):
        assert tangle.approved(tx_id) == [GENESIS_ID], f"tx {tx_id}"
    assert tangle.cumulative_weight(GENESIS_ID) == 5
    assert tangle.approvers(GENESIS_ID) == [0, 1, 2, 3]
    assert tangle.tip_ids() == [0, 1, 2, 3]


def test_next_round_approves_previous_tips() -> None:
    tangle = Tangle(TangleConfig(milestone_interval=10), np.random.default_rng(0))
    tangle.attach([0, 1, 2], round=0)
    tangle.end_round(0)
    tangle.attach([3, 4], round=1)
    for tx_id in (3, 4):
        approved = tangle.approved(tx_id)
        assert 1 <= len(approved) <= 2, f"tx {tx_id} approves {approved}"
        assert set(approved) <= {0, 1, 2}, f"tx {tx_id} approves {approved}"


def test_milestone_issued_every_interval() -> None:
    tangle = Tangle(TangleConfig(milestone_interval=3), np.random.default_rng(0))
    tangle.end_round(0)
    tangle.end_round(1)
    assert tangle.tip_ids() == [GENESIS_ID]

    tangle.end_round(2)
    assert tangle.tip_ids() == [-2]
    assert tangle.approvers(GENESIS_ID) == [-2]
    assert tangle.is_confirmed(-2)

    for round_index in (3, 4):
        tangle.end_round(round_index)
    assert tangle.tip_ids() == [-2]
    tangle.end_round(5)
    assert tangle.tip_ids() == [-3]
    assert tangle.approved(-3) == [-2]


def test_milestone_confirms_what_it_approves() -> None:
    config = TangleConfig(confirmation_weight=100, milestone_interval=2)
    tangle = Tangle(config, np.random.default_rng(0))
    tangle.attach([0, 1], round=0)
    assert tangle.end_round(0) == []
    assert tangle.pending_ids() == [0, 1]

    tangle.attach([2], round=1)
    confirmed = tangle.end_round(1)  # the milestone's walks include tx 2
    assert set(confirmed) == set(tangle.confirmed_ids())
    for tx_id in confirmed:
        assert any(site < GENESIS_ID for site in descendants(tangle, tx_id)), f"tx {tx_id}"


def test_weight_threshold_one_confirms_at_attach() -> None:
    tangle = Tangle(TangleConfig(confirmation_weight=1), np.random.default_rng(0))
    tangle.attach([7, 8], round=0)
    assert tangle.pending_ids() == []
    assert tangle.confirmed_ids() == [7, 8]
    assert tangle.end_round(0) == [7, 8]
    assert tangle.end_round(1) == []


def test_round_order_is_enforced() -> None:
    tangle = Tangle(TangleConfig(), np.random.default_rng(0))
    tangle.attach([0], round=4)
    with pytest.raises(ValueError, match="open round 4"):
        tangle.attach([1], round=5)
    with pytest.raises(ValueError, match="open round 4"):
        tangle.end_round(3)
    tangle.end_round(4)
    with pytest.raises(ValueError, match="round 4 has ended"):
        tangle.attach([1], round=4)
    with pytest.raises(ValueError, match="round 2 has ended"):
        tangle.end_round(2)
    with pytest.raises(TypeError, match="round"):
        tangle.attach([1], round=5.0)  # type: ignore[arg-type]
    tangle.attach([1], round=9)  # rounds may skip values


def test_invalid_ids_attach_nothing() -> None:
    tangle = Tangle(TangleConfig(), np.random.default_rng(0))
    tangle.attach([0], round=0)
    bad_batches: list[tuple[list[object], type[Exception], str]] = [
        ([1, 0], ValueError, "id 0 is already attached"),
        ([1, 1], ValueError, "id 1 is already attached or repeated in the batch"),
        ([1, -4], ValueError, "got -4"),
        ([1, "2"], TypeError, "'2'"),
        ([1, True], TypeError, "True"),
    ]
    for batch, error, message in bad_batches:
        with pytest.raises(error, match=message):
            tangle.attach(batch, round=0)  # type: ignore[arg-type]
        assert tangle.pending_ids() == [0], f"batch {batch} attached part of itself"
    tangle.attach(np.array([1, 2]), round=0)  # numpy integers are accepted
    assert tangle.pending_ids() == [0, 1, 2]


def test_unknown_id_raises_key_error() -> None:
    tangle = Tangle(TangleConfig(), np.random.default_rng(0))
    with pytest.raises(KeyError, match="site id 3 not found"):
        tangle.cumulative_weight(3)
    with pytest.raises(KeyError, match="site id 3 not found"):
        tangle.approvers(3)


def test_constructor_checks_types() -> None:
    with pytest.raises(TypeError, match="TangleConfig"):
        Tangle({"alpha": 0.5}, np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generator"):
        Tangle(TangleConfig(), 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- invariants


@settings(max_examples=150, deadline=None)
@given(config=configs, sizes=round_sizes, seed=seeds)
def test_weights_and_confirmations_match_definitions(
    config: TangleConfig, sizes: list[int], seed: int
) -> None:
    tangle = Tangle(config, np.random.default_rng(seed))
    attached_round = play_stream(tangle, sizes)
    sites = all_sites(tangle)
    assert len(sites) == 1 + len(attached_round) + sum(site < GENESIS_ID for site in sites)

    descendant_sets = {site: descendants(tangle, site) for site in sites}
    for site in sites:
        assert tangle.cumulative_weight(site) == 1 + len(descendant_sets[site]), f"site {site}"

    for tx_id, round_index in attached_round.items():
        approved = tangle.approved(tx_id)
        assert 1 <= len(approved) <= 2, f"tx {tx_id} approves {approved}"
        for parent in approved:
            # Genesis, milestones (negative ids) and earlier rounds are the only valid parents.
            assert parent < 0 or attached_round[parent] < round_index, f"tx {tx_id} -> {parent}"

        heavy_enough = tangle.cumulative_weight(tx_id) >= config.confirmation_weight
        under_milestone = any(site < GENESIS_ID for site in descendant_sets[tx_id])
        expected = heavy_enough or under_milestone
        assert tangle.is_confirmed(tx_id) == expected, f"tx {tx_id} of round {round_index}"

    for site in sites:
        if tangle.is_confirmed(site):
            for parent in tangle.approved(site):
                assert tangle.is_confirmed(parent), f"confirmed {site} approves pending {parent}"


@settings(max_examples=150, deadline=None)
@given(config=configs, sizes=round_sizes, seed=seeds)
def test_every_transaction_confirmed_once(
    config: TangleConfig, sizes: list[int], seed: int
) -> None:
    tangle = Tangle(config, np.random.default_rng(seed))
    reported: list[int] = []
    next_id = 0
    for round_index, size in enumerate(sizes):
        tangle.attach(range(next_id, next_id + size), round_index)
        next_id += size
        reported.extend(tangle.end_round(round_index))
        pending = tangle.pending_ids()
        confirmed = tangle.confirmed_ids()
        assert set(pending).isdisjoint(confirmed), f"round {round_index}"
        assert sorted(pending + confirmed) == list(range(next_id)), f"round {round_index}"

    # With no new transactions, the first milestone promotes the tips that the walk left
    # behind, and the second approves them at the latest: 2 intervals confirm everything.
    for round_index in range(len(sizes), len(sizes) + 2 * config.milestone_interval):
        reported.extend(tangle.end_round(round_index))

    assert tangle.pending_ids() == []
    assert sorted(reported) == list(range(next_id)), "an id was reported twice or never"
    assert reported == tangle.confirmed_ids()


# ---------------------------------------------------------------------- the walk and seeding


def test_same_seed_builds_same_tangle() -> None:
    sizes = [3, 0, 5, 2, 8, 1, 0, 4]
    built = []
    for _ in range(2):
        tangle = Tangle(TangleConfig(milestone_interval=3), np.random.default_rng(42))
        play_stream(tangle, sizes)
        built.append({site: tangle.approved(site) for site in all_sites(tangle)})
    assert built[0] == built[1]

    other = Tangle(TangleConfig(milestone_interval=3), np.random.default_rng(43))
    play_stream(other, sizes)
    assert {site: other.approved(site) for site in all_sites(other)} != built[0]


def test_walks_see_round_start_weights() -> None:
    # Round 0 leaves four tips of equal weight under genesis. With alpha 50, a walk steps to a
    # strictly heavier approver with probability about 1 - exp(-50). If round 1's walks
    # counted the weight that its earlier transactions add, they would all end at the one or
    # two tips that the first transaction approved.
    config = TangleConfig(alpha=50.0, depth=1000, milestone_interval=100)
    tangle = Tangle(config, np.random.default_rng(3))
    tangle.attach([0, 1, 2, 3], round=0)
    tangle.end_round(0)

    tangle.attach(range(4, 12), round=1)
    chosen = {parent for tx_id in range(4, 12) for parent in tangle.approved(tx_id)}
    assert chosen <= {0, 1, 2, 3}
    assert len(chosen) >= 3, f"round 1 approved only {sorted(chosen)}"


def test_uniform_walk_ends_at_tips() -> None:
    tangle = Tangle(TangleConfig(alpha=0.0), np.random.default_rng(5))
    play_stream(tangle, [4, 4, 0, 6, 3])
    tips = set(tangle.tip_ids())
    for _ in range(50):
        assert tangle.select_tip() in tips


def test_large_alpha_follows_heaviest_approver() -> None:
    # A depth larger than the tangle makes every walk start at genesis.
    config = TangleConfig(alpha=50.0, depth=1000, milestone_interval=100)
    tangle = Tangle(config, np.random.default_rng(11))
    play_stream(tangle, [3, 4, 1, 5, 2, 6])

    # Tips reachable by always stepping to an approver of maximal weight (ties branch).
    heaviest_tips: set[int] = set()
    frontier = [GENESIS_ID]
    while frontier:
        site = frontier.pop()
        approvers = tangle.approvers(site)
        if not approvers:
            heaviest_tips.add(site)
            continue
        top = max(tangle.cumulative_weight(approver) for approver in approvers)
        frontier.extend(a for a in approvers if tangle.cumulative_weight(a) == top)
    tips = set(tangle.tip_ids())
    assert heaviest_tips < tips, f"every tip {tips} is on a heaviest path, so nothing is tested"

    for walk in range(100):
        tip = tangle.select_tip()
        assert tip in heaviest_tips, f"walk {walk} ended at {tip}, off the heaviest paths"


# ---------------------------------------------------------------------- confirmation latency


def mean_latency(rate: int, seed: int, config: TangleConfig) -> float:
    """Mean rounds from attach to confirmation under a constant transaction rate.

    The stream runs 100 rounds, and the mean covers the transactions of the first 60, which
    all confirm before the stream ends.
    """
    rounds, measured_rounds = 100, 60
    tangle = Tangle(config, np.random.default_rng(seed))
    attached_round: dict[int, int] = {}
    latencies: dict[int, int] = {}
    for round_index in range(rounds):
        tx_ids = list(range(round_index * rate, (round_index + 1) * rate))
        tangle.attach(tx_ids, round_index)
        attached_round.update(dict.fromkeys(tx_ids, round_index))
        for tx_id in tangle.end_round(round_index):
            latencies[tx_id] = round_index - attached_round[tx_id]

    measured = [tx_id for tx_id, r in attached_round.items() if r < measured_rounds]
    missing = [tx_id for tx_id in measured if tx_id not in latencies]
    assert not missing, f"rate {rate}, seed {seed}: {len(missing)} transactions still pending"
    return float(np.mean([latencies[tx_id] for tx_id in measured]))


def test_latency_falls_as_rate_rises() -> None:
    # Milestones every 20 rounds, so that confirmation by weight dominates. alpha is small
    # because at alpha 0.5 the walk leaves enough tips behind at 8 transactions per round that
    # the milestone-confirmed tail lifts the mean above that of 1 per round (median still 2).
    config = TangleConfig(alpha=0.05, depth=5, confirmation_weight=5, milestone_interval=20)
    seeds_used = range(6)
    slow = np.mean([mean_latency(1, seed, config) for seed in seeds_used])
    fast = np.mean([mean_latency(8, seed, config) for seed in seeds_used])

    # Measured with these seeds: 3.50 rounds at 1 per round and 2.79 at 8 per round, with
    # single seeds at 8 per round from 2.59 to 2.92. At 1 per round the tangle is a chain,
    # because each round's walks find one tip, so latency is 4 unless a milestone comes
    # first. The margin keeps half the measured gap.
    margin = 0.35
    assert fast < slow - margin, f"mean latency {fast:.2f} at rate 8 vs {slow:.2f} at rate 1"
