"""Relays paid by credit receipts: Sprite's rule for the messages between sellers and buyers.

Source: S. Zhong, J. Chen, Y. R. Yang, "Sprite: A Simple, Cheat-Proof, Credit-Based System for
Mobile Ad-Hoc Networks", IEEE INFOCOM 2003. The payout rule itself is the ledger's
(:func:`ledgerzoo.ledger.contracts.credit_payouts`). This module decides who receives, forwards
and reports each message, and what that earns each relay.

A message travels from a seller through the K relays of its path to a buyer. Each relay that
receives it decides to forward it or drop it, and whether to report a receipt (a digest of the
message) to the credit clearance service on the ledger. The buyer always reports what it
receives. The service finds the last node on the path that reported the message and pays
every reporting relay before that node alpha (``relay_credit``). The last reporting node, when
it is a relay, is paid beta (``last_reporter_credit``), with alpha > beta, and a relay that did
not report is paid nothing. The sender is charged alpha for every relay on the path, whatever
is reported, and the clearance service keeps what it does not pay out. A relay pays c_fwd
(``forward_cost``) to forward and c_rcpt (``receipt_cost``) to report.

Settlement: the sender's charge goes through :func:`ledgerzoo.ledger.contracts.charge_credits`
and the payouts through :func:`ledgerzoo.ledger.contracts.pay_credits` with ``delivered``, which
applies the same rule as :attr:`RelayOutcome.credits`.

Symbols (units): alpha, beta, c_fwd and c_rcpt are coins per message. Arrays are batched:
(B, P) per message path and (B, P, K) per relay position on a path, in path order from the
sender, with K the longest path. Positions past a path's length are padding and take no part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ledgerzoo.envs.data_market.scenario import DataMarket
from ledgerzoo.ledger.contracts import credit_payouts


@dataclass(frozen=True)
class RelayOutcome:
    """The fate of B x P messages and the earnings of each relay on their paths.

    Attributes:
        received: Whether the relay at each position received the message, (B, P, K).
        forwarded: Whether it received and forwarded the message, (B, P, K).
        reported: Whether it received the message and reported a receipt, (B, P, K).
        delivered: Whether the buyer received the message, (B, P).
        credits: Credit the clearance service pays each relay (coins), (B, P, K).
        costs: What forwarding and reporting cost each relay (coins), (B, P, K).
        utilities: credits - costs (coins), (B, P, K).
        sender_charges: What the clearance service charges each sender, alpha times the path
            length (coins), (B, P).
        clearing_kept: What the clearance service keeps, the charge minus the credits
            (coins), (B, P), >= 0.
    """

    received: np.ndarray
    forwarded: np.ndarray
    reported: np.ndarray
    delivered: np.ndarray
    credits: np.ndarray
    costs: np.ndarray
    utilities: np.ndarray
    sender_charges: np.ndarray
    clearing_kept: np.ndarray


def relay_path_outcome(
    forward: np.ndarray,
    report: np.ndarray,
    path_length: np.ndarray,
    *,
    relay_credit: float,
    last_reporter_credit: float,
    forward_cost: float,
    receipt_cost: float,
) -> RelayOutcome:
    """Follow every message along its path and pay its relays by Sprite's rule.

    Args:
        forward: Whether the relay at each position forwards the message if it receives it,
            (B, P, K) bool.
        report: Whether the relay at each position reports a receipt if it receives the
            message, (B, P, K) bool.
        path_length: Relays on each path, (B, P), integers in [0, K]. A path of length 0 goes
            straight from seller to buyer.
        relay_credit: alpha (coins per message).
        last_reporter_credit: beta (coins per message), with alpha > beta >= 0.
        forward_cost: c_fwd (coins per message), >= 0.
        receipt_cost: c_rcpt (coins per message), >= 0.

    Returns:
        The outcome of every message.

    Raises:
        ValueError: For mismatched shapes, a path length outside [0, K], or credits that
            break alpha > beta >= 0.
    """
    forward = np.asarray(forward, dtype=bool)
    report = np.asarray(report, dtype=bool)
    path_length = np.asarray(path_length, dtype=np.int64)
    if forward.ndim != 3 or report.shape != forward.shape:
        raise ValueError(
            f"forward and report must both have shape (B, P, K), got {forward.shape} and "
            f"{report.shape}"
        )
    batch, paths, positions = forward.shape
    if path_length.shape != (batch, paths):
        raise ValueError(f"path_length must have shape {(batch, paths)}, got {path_length.shape}")
    if np.any(path_length < 0) or np.any(path_length > positions):
        raise ValueError(
            f"every path_length must lie in [0, K={positions}], got values in "
            f"[{path_length.min()}, {path_length.max()}]"
        )

    on_path = np.arange(positions) < path_length[..., None]
    # Relay k receives the message when every relay before it forwarded it, and the buyer
    # when every relay on the path did. Padding passes the message on.
    passed = np.logical_and.accumulate(forward | ~on_path, axis=2)
    first = np.ones((batch, paths, min(positions, 1)), dtype=bool)
    received = np.concatenate([first, passed[..., :-1]], axis=2) & on_path
    delivered = passed[..., -1] if positions else np.ones((batch, paths), dtype=bool)
    forwarded = received & forward
    reported = received & report

    # The buyer reports what it receives, so a delivered message's last reporter is the buyer.
    payouts = credit_payouts(
        reported.reshape(batch * paths, positions),
        relay_credit,
        last_reporter_credit,
        delivered=delivered.reshape(batch * paths),
    )
    credits = payouts.reshape(batch, paths, positions)
    costs = forward_cost * forwarded + receipt_cost * reported
    charges = relay_credit * path_length
    return RelayOutcome(
        received=received,
        forwarded=forwarded,
        reported=reported,
        delivered=delivered,
        credits=credits,
        costs=costs,
        utilities=credits - costs,
        sender_charges=charges.astype(np.float64),
        clearing_kept=charges - credits.sum(axis=2),
    )


class RelayRoutes:
    """The relay at every position of B x P message paths, indexed once for gathers and sums.

    Markets build it once per episode, because a path's relays are fixed for the episode.

    Args:
        relay_paths: Relay index at each position of each path, -1 for padding, (B, P, K).
        n_relays: Number of relays R.
    """

    def __init__(self, relay_paths: np.ndarray, n_relays: int) -> None:
        relay_paths = np.asarray(relay_paths, dtype=np.int64)
        batch = relay_paths.shape[0]
        self.relay_paths = relay_paths
        self.n_relays = n_relays
        self.valid = relay_paths >= 0
        # Padding reads relay 0 in gathers, and the valid mask then drops it.
        self._safe_paths = np.where(self.valid, relay_paths, 0)
        instance = np.broadcast_to(np.arange(batch)[:, None, None], relay_paths.shape)
        self._flat_relays = (instance * n_relays + self._safe_paths)[self.valid]

    def spread(self, choices: np.ndarray) -> np.ndarray:
        """Spread each relay's choice onto every path position it occupies.

        Args:
            choices: One choice per relay, (B, R) bool.

        Returns:
            The choice at each position, False at padding, (B, P, K) bool.
        """
        choices = np.asarray(choices, dtype=bool)
        gathered = np.take_along_axis(
            choices, self._safe_paths.reshape(choices.shape[0], -1), axis=1
        ).reshape(self.relay_paths.shape)
        return gathered & self.valid

    def totals(self, values: np.ndarray) -> np.ndarray:
        """Sum per-position values (B, P, K) onto the relays at those positions, (B, R).

        Positions are summed in (path, position) order, whatever the values.
        """
        batch = self.relay_paths.shape[0]
        totals = np.bincount(
            self._flat_relays,
            weights=np.asarray(values, dtype=np.float64)[self.valid],
            minlength=batch * self.n_relays,
        )
        return totals.reshape(batch, self.n_relays)


def relay_utilities(
    outcome: RelayOutcome, relay_paths: np.ndarray | RelayRoutes, n_relays: int
) -> np.ndarray:
    """Sum each relay's utility over every message it relayed.

    Args:
        outcome: Outcome of the messages, per path position (B, P, K).
        relay_paths: Relay index at each position of each path, -1 for padding, (B, P, K),
            or the :class:`RelayRoutes` built from it.
        n_relays: Number of relays R.

    Returns:
        Utility of each relay (coins), (B, R).
    """
    return _routes(relay_paths, n_relays).totals(outcome.utilities)


def choices_on_paths(choices: np.ndarray, relay_paths: np.ndarray) -> np.ndarray:
    """Spread each relay's choice onto every path position it occupies.

    Args:
        choices: One choice per relay, (B, R) bool.
        relay_paths: Relay index at each position, -1 for padding, (B, P, K).

    Returns:
        The choice at each position, False at padding, (B, P, K) bool.
    """
    return RelayRoutes(relay_paths, np.shape(choices)[1]).spread(choices)


def _routes(relay_paths: np.ndarray | RelayRoutes, n_relays: int) -> RelayRoutes:
    if isinstance(relay_paths, RelayRoutes):
        return relay_paths
    return RelayRoutes(relay_paths, n_relays)


def market_relay_outcome(
    market: DataMarket,
    forward: np.ndarray,
    report: np.ndarray,
    trades: np.ndarray,
    routes: RelayRoutes | None = None,
) -> RelayOutcome:
    """Follow one message per trading buyer-seller pair of a market.

    Paths are flattened in (buyer, seller) order, so path p = i * J + j. A pair that trades
    nothing sends no message: its path counts as length 0, with no charge and no credit.

    Args:
        market: The market, whose ``relay_paths`` and ``hops`` give each pair's path.
        forward: Each relay's choice to forward, (B, R) bool, applied to every message it
            receives.
        report: Each relay's choice to report, (B, R) bool.
        trades: Whether each pair trades this round, (B, I, J) bool.
        routes: :func:`market_routes` of the market, when the caller keeps it.

    Returns:
        The outcome, with P = I * J paths.
    """
    batch = market.batch_size
    if routes is None:
        routes = market_routes(market)
    length = np.where(np.asarray(trades, dtype=bool), market.hops, 0).reshape(batch, -1)
    return relay_path_outcome(
        routes.spread(forward),
        routes.spread(report),
        length,
        relay_credit=market.relay_credit,
        last_reporter_credit=market.last_reporter_credit,
        forward_cost=market.forward_cost,
        receipt_cost=market.receipt_cost,
    )


def market_routes(market: DataMarket) -> RelayRoutes:
    """Index the relays on the paths of a market's buyer-seller pairs, path p = i * J + j."""
    paths = market.relay_paths.reshape(
        market.batch_size, market.n_buyers * market.n_sellers, market.relay_paths.shape[-1]
    )
    return RelayRoutes(paths, market.n_relays)


def forward_and_report_is_equilibrium(
    relay_credit: float, last_reporter_credit: float, forward_cost: float, receipt_cost: float
) -> bool:
    """Check Sprite's condition for forward-and-report to be every relay's best response.

    When the other relays forward and report, a relay that forwards and reports earns
    alpha - c_fwd - c_rcpt. Dropping and reporting earns beta - c_rcpt, forwarding silently
    earns -c_fwd, and dropping silently earns 0. beta > c_rcpt and alpha - beta > c_fwd make
    the first the largest (a sufficient condition, not a necessary one).
    """
    return bool(
        last_reporter_credit > receipt_cost and relay_credit - last_reporter_credit > forward_cost
    )


@dataclass(frozen=True)
class DeviationPayoffs:
    """A relay's utility for each of its four choices while the others forward and report.

    Each field has the shape of the ``path_length`` and ``position`` arguments (coins).
    """

    forward_and_report: np.ndarray
    forward_silently: np.ndarray
    drop_and_report: np.ndarray
    drop_silently: np.ndarray


def deviation_payoffs(
    path_length: np.ndarray,
    position: np.ndarray,
    *,
    relay_credit: float,
    last_reporter_credit: float,
    forward_cost: float,
    receipt_cost: float,
) -> DeviationPayoffs:
    """Compute one relay's utility for each choice, the others forwarding and reporting.

    The utilities come from :func:`relay_path_outcome`, not from the closed forms of
    :func:`forward_and_report_is_equilibrium`, so that the two can be checked against each
    other.

    Args:
        path_length: Relays on the path, (N,), >= 1.
        position: The deviating relay's position on its path, (N,), in [0, path_length).
        relay_credit, last_reporter_credit, forward_cost, receipt_cost: As in
            :func:`relay_path_outcome`.

    Returns:
        The relay's utility under each of its four choices, (N,) each.

    Raises:
        ValueError: If a path is empty or a position lies outside its path.
    """
    path_length = np.atleast_1d(np.asarray(path_length, dtype=np.int64))
    position = np.atleast_1d(np.asarray(position, dtype=np.int64))
    if np.any(path_length < 1) or np.any(position < 0) or np.any(position >= path_length):
        raise ValueError(
            f"every position must lie in [0, path_length) with path_length >= 1, got "
            f"path_length={path_length} and position={position}"
        )
    longest = int(path_length.max())
    count = path_length.shape[0]
    rows = np.arange(count)
    credits = {
        "relay_credit": relay_credit,
        "last_reporter_credit": last_reporter_credit,
        "forward_cost": forward_cost,
        "receipt_cost": receipt_cost,
    }
    payoffs = {}
    for name, forwards, reports in (
        ("forward_and_report", True, True),
        ("forward_silently", True, False),
        ("drop_and_report", False, True),
        ("drop_silently", False, False),
    ):
        forward = np.ones((1, count, longest), dtype=bool)
        report = np.ones((1, count, longest), dtype=bool)
        forward[0, rows, position] = forwards
        report[0, rows, position] = reports
        outcome = relay_path_outcome(forward, report, path_length[None, :], **credits)
        payoffs[name] = outcome.utilities[0, rows, position]
    return DeviationPayoffs(**payoffs)
