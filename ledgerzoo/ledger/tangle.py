"""The IOTA-style tangle (a DAG of transactions) of one ledger instance.

Every new transaction approves two tips, and each tip is chosen by a weighted random walk,
the Markov chain Monte Carlo tip selection of S. Popov, "The Tangle" (the IOTA white paper):

- the walk starts at the site ``depth`` approval steps back from a uniformly drawn tip, or at
  genesis when the path back is shorter;
- from a site x it moves to an approver y of x with probability proportional to
  exp(alpha (H_y - H_max)). H is the cumulative weight: own weight 1 plus the weights of all
  direct and indirect approvers. H_max is the largest H among x's approvers, and subtracting
  it only keeps exp from overflowing;
- it stops at a tip, a site that no other site approves.

alpha = 0 is a uniform walk, and a large alpha always follows the heaviest approver.

Transactions of the same round do not see each other: every walk of a round runs on the
tangle as it was when the round opened. The more transactions a round carries, the more of
them approve the previous round's transactions at once, so a transaction gains weight faster
as the transaction rate rises.

A transaction is confirmed when its cumulative weight reaches ``confirmation_weight``, or when
a coordinator milestone approves it directly or indirectly. A milestone is issued at the end
of a round once ``milestone_interval`` rounds have passed since the previous one. Its walks run on every site attached so far, and it
approves the two tips that the same walk selects. A milestone also approves every tip that
was already a tip when the previous milestone was issued, because agents never re-issue a
transaction that the walks leave behind, and without this such a transaction could stay
pending forever. Confirmation is closed under approval: every site that a confirmed site
approves directly or indirectly is confirmed.

Transactions carry the caller's non-negative integer ids. Genesis has id ``GENESIS_ID`` (-1)
and the k-th milestone has id -(k + 1), so every site can be queried with the same methods.

This class models one instance and walks sequentially, one transaction at a time, so a batched
ledger keeps one ``Tangle`` per instance. Adding a transaction adds 1 to the cumulative weight
of each of its ancestors (a breadth-first search), so attaching costs time linear in the
number of ancestors, which grows with the age of the tangle.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

GENESIS_ID = -1  # id of the genesis site, confirmed from the start


@dataclass(frozen=True)
class TangleConfig:
    """Parameters of the tangle of one ledger instance.

    Attributes:
        alpha: Bias of the tip-selection walk towards heavy approvers (>= 0, finite). 0 gives a
            uniform walk. The default 0.05 keeps the mean confirmation latency falling as the
            transaction rate rises (measured from 1 to 8 per round). NOTE: at 0.5 and 4 or more
            transactions per round, the walks leave tips behind that wait for a milestone, which
            lifts the mean latency above that at 1 per round although the median falls
            (measured on 100-round streams with milestone_interval 20).
        depth: Approval steps back from a uniformly drawn tip at which a walk starts (>= 1).
            A walk whose path back reaches genesis sooner starts at genesis.
        confirmation_weight: Cumulative weight at which a transaction is confirmed (>= 1).
        milestone_interval: Rounds between two coordinator milestones (>= 1).
    """

    alpha: float = 0.05
    depth: int = 5
    confirmation_weight: int = 5
    milestone_interval: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real):
            raise TypeError(f"alpha must be a number, got {self.alpha!r}")
        if not math.isfinite(self.alpha) or self.alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0, got {self.alpha}")
        _check_count("depth", self.depth, "approval steps")
        _check_count("confirmation_weight", self.confirmation_weight, "sites")
        _check_count("milestone_interval", self.milestone_interval, "rounds")


@dataclass
class _WalkView:
    """The part of the tangle that a walk may see.

    Attributes:
        size: Number of visible sites. Sites with an index >= size are hidden.
        tips: Indices of the visible sites that no visible site approves, ascending.
        weight_gain: Cumulative weight that hidden sites have added to each visible site, so
            that a visible site's weight in the view is its current weight minus its gain.
    """

    size: int
    tips: list[int]
    weight_gain: dict[int, int] = field(default_factory=dict)


class Tangle:
    """The DAG of transactions of one ledger instance, grown round by round.

    Call ``attach`` any number of times in a round and then ``end_round`` once. Round numbers
    must increase from one round to the next but may skip values. All randomness comes from
    the generator passed in, so the same generator state and the same calls give the same
    tangle.

    Args:
        config: Walk, confirmation and milestone parameters.
        rng: Generator that draws the walks' starting tips and steps.
    """

    def __init__(self, config: TangleConfig, rng: np.random.Generator) -> None:
        if not isinstance(config, TangleConfig):
            raise TypeError(f"config must be a TangleConfig, got {type(config).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.config = config
        self._rng = rng

        # One entry per site, indexed in attach order, with genesis at index 0.
        self._site_id: list[int] = [GENESIS_ID]
        self._approved: list[tuple[int, ...]] = [()]
        self._approvers: list[list[int]] = [[]]  # ascending, because sites are appended in order
        self._weight: list[int] = [1]
        self._confirmed: list[bool] = [True]
        self._index_of: dict[int, int] = {GENESIS_ID: 0}
        self._tips: set[int] = {0}

        self._pending: dict[int, None] = {}  # unconfirmed transaction ids, in attach order
        self._confirmed_ids: list[int] = []  # in confirmation order
        self._newly_confirmed: list[int] = []  # confirmed since the last end_round
        self._milestone_count = 0

        self._open_round: int | None = None
        self._last_ended_round: int | None = None
        self._round_view: _WalkView | None = None  # the tangle as the open round started
        # Round of the previous milestone. Genesis counts as one issued before the first round.
        self._last_milestone_round: int | None = None
        self._last_milestone_site = 0

    # ------------------------------------------------------------------ rounds

    def attach(self, tx_ids: Iterable[int], round: int) -> None:
        """Attach new transactions, each approving two tips chosen by the weighted walk.

        The walks see the tangle as it was when ``round`` opened, so transactions attached in
        the same round never approve each other. The two walks of a transaction may end at
        the same tip, which it then approves once. A transaction whose cumulative weight
        reaches ``confirmation_weight`` is confirmed at once and reported by the next
        ``end_round``.

        Args:
            tx_ids: New transaction ids, non-negative integers never attached before.
            round: The round being played. It opens a new round unless it is already open.

        Raises:
            TypeError: If an id or the round is not an integer.
            ValueError: If an id is negative, repeated or already attached, or if the round
                has ended or another round is still open. Nothing is attached then.
        """
        self._check_round(round, "attach")
        new_ids = self._validate_new_ids(tx_ids)
        self._open(round)
        view = self._round_view
        assert view is not None, "the open round has no walk view"

        for tx_id in new_ids:
            parents = {self._select_tip(view), self._select_tip(view)}
            index = self._add_site(tx_id, sorted(parents), view.weight_gain)
            self._pending[tx_id] = None
            if self._weight[index] >= self.config.confirmation_weight:  # confirmation_weight 1
                self._confirm(index)

    def end_round(self, round: int) -> list[int]:
        """Close a round, issuing a milestone when one is due, and report confirmations.

        A milestone is issued when at least ``milestone_interval`` rounds have passed since the
        previous one (genesis counts as issued just before the first round). Its walks run on
        every site attached so far, including this round's.

        Args:
            round: The round to close: the open round, or a later one if nothing was attached.

        Returns:
            Ids of the transactions confirmed since the previous ``end_round``, by cumulative
            weight or by a milestone, in confirmation order. Each id is reported once.

        Raises:
            TypeError: If the round is not an integer.
            ValueError: If the round has ended or another round is still open.
        """
        self._check_round(round, "end_round")
        self._open(round)
        assert self._last_milestone_round is not None, "an open round has no milestone round"
        if round - self._last_milestone_round >= self.config.milestone_interval:
            self._issue_milestone(round)

        self._open_round = None
        self._round_view = None
        self._last_ended_round = round
        confirmed, self._newly_confirmed = self._newly_confirmed, []
        return confirmed

    # ------------------------------------------------------------------ queries

    def pending_ids(self) -> list[int]:
        """Return the ids of attached transactions not yet confirmed, in attach order."""
        return list(self._pending)

    def confirmed_ids(self) -> list[int]:
        """Return the ids of confirmed transactions, in confirmation order.

        Genesis and milestones are confirmed too but are not listed.
        """
        return list(self._confirmed_ids)

    def tip_ids(self) -> list[int]:
        """Return the ids of the sites that no site approves, in attach order."""
        return [self._site_id[index] for index in sorted(self._tips)]

    def cumulative_weight(self, tx_id: int) -> int:
        """Return 1 plus the number of distinct sites that approve a site, directly or not.

        The count includes milestones and the transactions of the open round.
        """
        return self._weight[self._lookup(tx_id)]

    def approvers(self, tx_id: int) -> list[int]:
        """Return the ids of the sites that approve a site directly, in attach order."""
        return [self._site_id[index] for index in self._approvers[self._lookup(tx_id)]]

    def approved(self, tx_id: int) -> list[int]:
        """Return the ids of the sites that a site approves directly, in attach order.

        A transaction approves one or two sites, genesis none, and a milestone one or more.
        """
        return [self._site_id[index] for index in self._approved[self._lookup(tx_id)]]

    def is_confirmed(self, tx_id: int) -> bool:
        """Return whether a site is confirmed."""
        return self._confirmed[self._lookup(tx_id)]

    def select_tip(self) -> int:
        """Run one walk on the whole current tangle and return the id of the tip it ends at.

        This draws from the generator, so it changes the tangles that later calls build.
        """
        return self._site_id[self._select_tip(self._current_view())]

    # ------------------------------------------------------------------ the walk

    def _select_tip(self, view: _WalkView) -> int:
        """Walk from a start site to a tip of the view and return the tip's index."""
        site = view.tips[int(self._rng.integers(len(view.tips)))]
        for _ in range(self.config.depth):
            parents = self._approved[site]
            if not parents:  # genesis
                break
            site = parents[int(self._rng.integers(len(parents)))]

        while True:
            approvers = self._approvers[site]
            visible = approvers[: bisect_left(approvers, view.size)]
            if not visible:
                return site
            if len(visible) == 1:
                site = visible[0]
                continue
            site = visible[self._draw_approver(visible, view)]

    def _draw_approver(self, candidates: Sequence[int], view: _WalkView) -> int:
        """Draw a position in ``candidates`` with probability ∝ exp(alpha (H_y - H_max))."""
        weights = np.array(
            [self._weight[y] - view.weight_gain.get(y, 0) for y in candidates], dtype=np.float64
        )
        # P(x -> y) ∝ exp(alpha (H_y - H_max)), H_max = max of H over x's approvers.
        likelihoods = np.exp(self.config.alpha * (weights - weights.max()))
        cumulative = np.cumsum(likelihoods)
        position = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], "right"))
        return min(position, len(candidates) - 1)  # guards against rounding at the top end

    # ------------------------------------------------------------------ growth

    def _add_site(
        self, site_id: int, parents: list[int], weight_gain: dict[int, int] | None
    ) -> int:
        """Append a site approving ``parents`` and return its index.

        Adds the new site's weight to each ancestor and confirms the ancestors whose weight
        reaches ``confirmation_weight``. ``weight_gain``, if given, records the weight added
        to each ancestor, so that the open round's walks can subtract it.
        """
        index = len(self._site_id)
        self._site_id.append(site_id)
        self._approved.append(tuple(parents))
        self._approvers.append([])
        self._weight.append(1)
        self._confirmed.append(False)
        self._index_of[site_id] = index
        for parent in parents:
            self._approvers[parent].append(index)
            self._tips.discard(parent)
        self._tips.add(index)

        # Every ancestor, reached once each, gains the new site's weight of 1.
        threshold = self.config.confirmation_weight
        seen = set(parents)
        queue = deque(parents)
        while queue:
            ancestor = queue.popleft()
            self._weight[ancestor] += 1
            if weight_gain is not None:
                weight_gain[ancestor] = weight_gain.get(ancestor, 0) + 1
            if not self._confirmed[ancestor] and self._weight[ancestor] >= threshold:
                self._confirm(ancestor)
            for grandparent in self._approved[ancestor]:
                if grandparent not in seen:
                    seen.add(grandparent)
                    queue.append(grandparent)
        return index

    def _issue_milestone(self, round: int) -> None:
        """Attach a milestone and confirm every site it approves directly or indirectly."""
        view = self._current_view()
        parents = {self._select_tip(view), self._select_tip(view)}
        # Promote tips left behind: those that were tips when the previous milestone was issued.
        previous_milestone = self._last_milestone_site
        parents.update(tip for tip in self._tips if tip <= previous_milestone)

        self._milestone_count += 1
        milestone = self._add_site(-(self._milestone_count + 1), sorted(parents), None)
        self._confirmed[milestone] = True
        self._last_milestone_round = round
        self._last_milestone_site = milestone

        # Confirmation is closed under approval, so the search stops at confirmed sites.
        queue = deque(parent for parent in parents if not self._confirmed[parent])
        while queue:
            site = queue.popleft()
            if self._confirmed[site]:
                continue
            self._confirm(site)
            queue.extend(parent for parent in self._approved[site] if not self._confirmed[parent])

    def _confirm(self, index: int) -> None:
        """Mark an unconfirmed transaction confirmed and queue its id for ``end_round``."""
        self._confirmed[index] = True
        tx_id = self._site_id[index]
        del self._pending[tx_id]
        self._confirmed_ids.append(tx_id)
        self._newly_confirmed.append(tx_id)

    # ------------------------------------------------------------------ helpers

    def _current_view(self) -> _WalkView:
        return _WalkView(size=len(self._site_id), tips=sorted(self._tips))

    def _open(self, round: int) -> None:
        """Open ``round`` if it is not open yet, freezing the view its walks see."""
        if self._open_round == round:
            return
        self._open_round = round
        self._round_view = self._current_view()
        if self._last_milestone_round is None:
            self._last_milestone_round = round - 1

    def _check_round(self, round: int, method: str) -> None:
        if isinstance(round, bool) or not isinstance(round, (int, np.integer)):
            raise TypeError(f"round must be an int, got {round!r}")
        if self._last_ended_round is not None and round <= self._last_ended_round:
            raise ValueError(
                f"{method}: round {round} has ended. Pass a round after "
                f"{self._last_ended_round}, the last round passed to end_round"
            )
        if self._open_round is not None and round != self._open_round:
            raise ValueError(
                f"{method}: round {round} is not the open round {self._open_round}. "
                f"Call end_round({self._open_round}) first"
            )

    def _validate_new_ids(self, tx_ids: Iterable[int]) -> list[int]:
        new_ids: list[int] = []
        seen: set[int] = set()
        for tx_id in tx_ids:
            if isinstance(tx_id, bool) or not isinstance(tx_id, (int, np.integer)):
                raise TypeError(f"transaction ids must be integers, got {tx_id!r}")
            value = int(tx_id)
            if value < 0:
                raise ValueError(
                    f"transaction ids must be >= 0 (negative ids name genesis and milestones), "
                    f"got {value}"
                )
            if value in seen or value in self._index_of:
                raise ValueError(
                    f"transaction id {value} is already attached or repeated in the batch; "
                    f"pass ids not used before"
                )
            seen.add(value)
            new_ids.append(value)
        return new_ids

    def _lookup(self, tx_id: int) -> int:
        try:
            return self._index_of[int(tx_id)]
        except KeyError:
            raise KeyError(f"site id {tx_id} not found in the tangle") from None


def _check_count(name: str, value: int, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int ({unit}), got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1 ({unit}), got {value}")
