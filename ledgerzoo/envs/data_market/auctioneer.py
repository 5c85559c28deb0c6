"""The auctioneer's allocation problem of the iterative double auction, solved exactly.

Buyers submit bids b_ij (coins buyer i offers seller j), sellers submit asks s_ij (coins per
data unit seller j asks of buyer i), and the auctioneer (an edge server) solves

    max over c, d >= 0 of  sum_ij (b_ij ln c_ij - s_ij d_ij)
    subject to             c_ij = rho_ij d_ij                       (relay losses)
                           c_i^min <= sum_j c_ij <= c_i^max         (buyer i's demand bounds)
                           sum_i d_ij <= d_j^max                    (seller j's supply cap)

This is the auctioneer's problem of the iterative double auction of J. Kang, R. Yu, X. Huang
et al., "Enabling Localized Peer-to-Peer Electricity Trading Among Plug-in Hybrid Electric
Vehicles Using Consortium Blockchains", IEEE TII 13(6), 2017, with this project's relay
losses rho_ij.

Method. With d_ij = c_ij / rho_ij the problem is separable given prices: a net price p_i of
buyer i's demand bounds (p_i > 0 when the cap binds, p_i < 0 when the floor binds, 0 in
between) and a price nu_j >= 0 of seller j's cap. The KKT conditions give each pair's
allocation in closed form,

    c_ij = b_ij / w_ij,   w_ij = p_i + (s_ij + nu_j) / rho_ij,

and the prices minimize the convex dual function

    phi(p, nu) = sum_ij b_ij (ln(b_ij / w_ij) - 1) + sum_i h_i(p_i) + sum_j nu_j d_j^max,
    h_i(p) = c_i^max p for p >= 0 and c_i^min p for p < 0.

For fixed nu, each p_i solves the one-dimensional equation sum_j c_ij = c_i^max or c_i^min,
which Newton's method solves to rounding (:func:`_buyer_prices`). The seller prices then
minimize the reduced dual phi(nu) = min_p phi(p, nu) subject to nu >= 0, by projected Newton
(D. P. Bertsekas, "Projected Newton methods for optimization problems with simple
constraints", SIAM J. Control Optim. 20(2), 1982) with an Armijo line search. Its gradient is
d_j^max - D_j, with D_j = sum_i d_ij. Its Hessian is the Schur complement of the buyers'
responses. A step moves no price by more than ``STEP_LIMIT`` times its value plus the
market's average price, because the reduced dual is linear in a seller's price while all the
seller's buyers sit at demand bounds. Every instance of the batch runs the same array operations, with no loop over
instances, and instances leave the batch once they have converged.

Certificate. Stationarity holds by construction and the buyers' bounds hold to rounding. An
instance counts as converged when its KKT residual is at most ``tol`` (default 1e-10). The
residual is the largest of the relative violation of a supply cap,
max_j (D_j - d_j^max)^+ / d_j^max, the duality gap sum_j nu_j |d_j^max - D_j| relative to
sum_ij (b_ij + s_ij d_ij) (the size of the objective's terms), and the relative error of a
binding demand bound.

Zero bids. A pair with b_ij = 0 trades nothing (c_ij = d_ij = 0) and adds nothing to the
objective, by the convention 0 ln 0 = 0. The solver gives such a pair an infinite w_ij, so
it never evaluates ln 0 or divides by a zero bid. A buyer's demand floor is enforced only where
a sufficient condition guarantees that the pairs with positive bids can meet it
(:func:`waived_floors`). Otherwise the floor is waived for the round, and the solution
reports it.

Scope. With bids that span many orders of magnitude (for example 1e-22 beside 1e-2, as the
undamped truthful update produces when it oscillates), the problem is close to a linear
program. Its dual is then almost piecewise linear and Newton's method makes slow progress,
so such an instance may stop at ``max_iterations`` with ``converged`` False.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Default KKT residual at which the auctioneer's solution counts as optimal.
AUCTIONEER_TOLERANCE = 1e-10
# Projected Newton iterations on the seller prices before an instance counts as not converged.
MAX_NEWTON_ITERATIONS = 100
# Newton iterations of each buyer's price equation. Convergence is quadratic and takes about
# six iterations from the cold start, fewer from a warm start.
MAX_BUYER_ITERATIONS = 60
# Relative error of a buyer's total at which its price equation counts as solved.
BUYER_TOLERANCE = 1e-13
# Halvings of the projected Newton step before the line search gives up on an instance.
MAX_STEP_HALVINGS = 50
# Largest move of a seller price in one Newton step, relative to the price plus the market's
# average price (see _Problem.newton_direction).
STEP_LIMIT = 10.0
# Armijo's sufficient-decrease factor.
ARMIJO_FACTOR = 1e-4
# Relative Levenberg-Marquardt shift of the reduced Hessian. With equal path efficiencies and
# every buyer at a demand bound, the Hessian is singular along equal seller prices. The shift
# keeps the Newton system solvable there, STEP_LIMIT bounds the step along that direction, and
# the line search and the projection onto nu >= 0 settle it.
HESSIAN_SHIFT = 1e-12
# A pair whose w_ij is below this fraction of |p_i| computes its change of ln w from the
# stored w, because the linear form p + a has cancelled there.
CANCELLATION_RATIO = 1e-8


@dataclass(frozen=True)
class AuctioneerSolution:
    """The auctioneer's allocation and the prices that certify it, for B instances.

    Attributes:
        delivered: c, what each buyer receives from each seller (data units), (B, I, J).
        sent: d = c / rho, what each seller sends to each buyer (data units), (B, I, J).
        buyer_prices: p_i, the net price of buyer i's demand bounds (coins per data unit
            received), (B, I): > 0 when the cap binds, < 0 when the floor binds, else 0.
        seller_prices: nu_j >= 0, the price of seller j's supply cap (coins per data unit
            sent), (B, J).
        floor_waived: Whether buyer i's demand floor was waived because its bids could not
            guarantee it (:func:`waived_floors`), (B, I).
        objective: sum_ij (b_ij ln c_ij - s_ij d_ij) over the pairs with b_ij > 0 (coins), (B,).
        kkt_residual: The certificate of the module docstring, (B,).
        iterations: Projected Newton iterations per instance, (B,).
        converged: Whether ``kkt_residual`` <= the tolerance, (B,).
    """

    delivered: np.ndarray
    sent: np.ndarray
    buyer_prices: np.ndarray
    seller_prices: np.ndarray
    floor_waived: np.ndarray
    objective: np.ndarray
    kkt_residual: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def solve_auctioneer(
    bids: np.ndarray,
    asks: np.ndarray,
    efficiency: np.ndarray,
    min_demand: np.ndarray,
    max_demand: np.ndarray,
    max_supply: np.ndarray,
    *,
    tol: float = AUCTIONEER_TOLERANCE,
    max_iterations: int = MAX_NEWTON_ITERATIONS,
    initial_seller_prices: np.ndarray | None = None,
    initial_buyer_prices: np.ndarray | None = None,
    check: bool = True,
) -> AuctioneerSolution:
    """Solve the auctioneer's problem of B instances by the dual method of the module docstring.

    Args:
        bids: b (coins), (B, I, J), >= 0. A zero bid trades nothing.
        asks: s (coins per data unit sent), (B, I, J), >= 0.
        efficiency: rho_ij, (B, I, J), in (0, 1].
        min_demand: c^min (data units), (B, I), >= 0.
        max_demand: c^max (data units), (B, I), finite, > 0 and >= c^min.
        max_supply: d^max (data units), (B, J), finite and > 0.
        tol: KKT residual at which an instance stops.
        max_iterations: Cap on projected Newton iterations.
        initial_seller_prices: Starting nu, (B, J), for example the previous round's prices.
            Negative entries are raised to 0. Zeros by default.
        initial_buyer_prices: Starting guess of p, (B, I), for example the previous round's
            prices. It only speeds up the buyers' price equations, whose solution does not
            depend on it.
        check: Whether to validate the inputs. Skip it only for inputs known to be valid.

    Returns:
        The allocation, prices and certificate of every instance.

    Raises:
        ValueError: With ``check``, for a value of the wrong shape, not finite, or outside its
            bounds. The message names the argument.
    """
    bids = np.asarray(bids, dtype=np.float64)
    asks = np.asarray(asks, dtype=np.float64)
    efficiency = np.asarray(efficiency, dtype=np.float64)
    min_demand = np.asarray(min_demand, dtype=np.float64)
    max_demand = np.asarray(max_demand, dtype=np.float64)
    max_supply = np.asarray(max_supply, dtype=np.float64)
    if check:
        _check_inputs(bids, asks, efficiency, min_demand, max_demand, max_supply)

    positive = bids > 0.0
    floor_waived = waived_floors(positive, efficiency, min_demand, max_supply)
    floors = np.where(floor_waived, 0.0, min_demand)
    problem = _Problem(bids, asks, efficiency, floors, max_demand, max_supply)

    batch, buyers, sellers = bids.shape
    if initial_seller_prices is None:
        prices = np.zeros((batch, sellers))
    else:
        prices = np.maximum(np.asarray(initial_seller_prices, dtype=np.float64), 0.0)
    # A seller with no positive bid supplies nothing at any price, so its price stays 0.
    prices = np.where(problem.seller_has_bid, prices, 0.0)
    guess = None
    if initial_buyer_prices is not None:
        guess = np.asarray(initial_buyer_prices, dtype=np.float64)
    state = problem.evaluate(prices, guess)

    # Results by instance. An instance leaves the working batch (problem, state) once it has
    # converged, stalled or run out of iterations. rows maps the working batch to the full one.
    result = _State.empty(batch, buyers, sellers)
    residual = np.zeros(batch)
    iterations = np.zeros(batch, dtype=np.int64)
    rows = np.arange(batch)
    stalled = np.zeros(batch, dtype=bool)
    for iteration in range(max_iterations + 1):
        current = problem.residual(state)
        finished = (current <= tol) | stalled | (iteration == max_iterations)
        if finished.any():
            result.put(rows[finished], state.take(finished))
            residual[rows[finished]] = current[finished]
            keep = ~finished
            if not keep.any():
                break
            problem, state = problem.take(keep), state.take(keep)
            rows, stalled = rows[keep], stalled[keep]
        direction, gradient = problem.newton_direction(state)
        state, moved = problem.line_search(state, direction, gradient)
        iterations[rows] = iteration + 1
        # An instance whose line search found no decrease stops: rounding then limits what a
        # step can achieve.
        stalled = ~moved

    delivered = result.delivered
    sent = delivered / efficiency
    return AuctioneerSolution(
        delivered=delivered,
        sent=sent,
        buyer_prices=result.buyer_prices,
        seller_prices=result.seller_prices,
        floor_waived=floor_waived,
        objective=auctioneer_objective(bids, asks, delivered, sent),
        kkt_residual=residual,
        iterations=iterations,
        converged=residual <= tol,
    )


def waived_floors(
    positive: np.ndarray, efficiency: np.ndarray, min_demand: np.ndarray, max_supply: np.ndarray
) -> np.ndarray:
    """Find the buyers whose demand floors the auctioneer cannot guarantee through their bids.

    Let every seller j split its cap d_j^max among the buyers that bid for its data, in
    proportion to their floors. If every buyer i then receives at least its floor, the floors
    can all be met:

        sum_{j: b_ij > 0} rho_ij d_j^max / S_j >= 1,   S_j = sum_{k: b_kj > 0} c_k^min.

    Buyers that fail this test have their floors waived, which lowers every S_j, and the test
    repeats until no buyer fails. A buyer with a floor but no positive bid always has its floor
    waived.
    With positive bids on every pair, a market that passes ``DataMarket.validate`` waives no
    floor. The test is sufficient, not necessary, so it can waive a floor that some other
    allocation would meet.

    Args:
        positive: Whether b_ij > 0, (B, I, J).
        efficiency: rho_ij, (B, I, J).
        min_demand: c^min (data units), (B, I).
        max_supply: d^max (data units), (B, J).

    Returns:
        Whether each buyer's floor is waived, (B, I).
    """
    floors = np.where(positive.any(axis=2), min_demand, 0.0)
    waived = (min_demand > 0.0) & (floors == 0.0)
    weights = positive.astype(np.float64)
    reach = weights * efficiency
    for _ in range(min_demand.shape[1] + 1):
        claims = np.einsum("bij,bi->bj", weights, floors)
        # A pair with a positive bid from a buyer with a floor has claims > 0. A seller with no
        # claims adds only to buyers without a floor or without a bid for it, which the test
        # ignores, so its share may be anything finite.
        share_per_unit = max_supply / np.where(claims > 0.0, claims, np.inf)
        failing = (floors > 0.0) & (np.einsum("bij,bj->bi", reach, share_per_unit) < 1.0)
        if not failing.any():
            break
        floors = np.where(failing, 0.0, floors)
        waived |= failing
    return waived


def auctioneer_objective(
    bids: np.ndarray, asks: np.ndarray, delivered: np.ndarray, sent: np.ndarray
) -> np.ndarray:
    """Compute sum_ij (b_ij ln c_ij - s_ij d_ij), with 0 ln c = 0 for zero bids (coins), (B,).

    Returns -inf where a positive bid receives nothing.
    """
    positive = bids > 0.0
    with np.errstate(divide="ignore"):
        log_delivered = np.log(np.where(positive, delivered, 1.0))
    return (np.where(positive, bids * log_delivered, 0.0) - asks * sent).sum(axis=(1, 2))


# --------------------------------------------------------------------------------------------


@dataclass
class _State:
    """The buyers' exact response to seller prices nu, and what it implies."""

    seller_prices: np.ndarray  # nu, (n, J)
    buyer_prices: np.ndarray  # p, (n, I)
    offsets: np.ndarray  # w_ij = p_i + (s_ij + nu_j) / rho_ij, inf for zero bids, (n, I, J)
    delivered: np.ndarray  # c_ij = b_ij / w_ij, (n, I, J)
    buyer_bound: np.ndarray  # whether a demand bound binds (p_i != 0), (n, I)
    targets: np.ndarray  # the binding bound, or 1 where none binds, (n, I)

    @classmethod
    def empty(cls, batch: int, buyers: int, sellers: int) -> _State:
        return cls(
            seller_prices=np.zeros((batch, sellers)),
            buyer_prices=np.zeros((batch, buyers)),
            offsets=np.full((batch, buyers, sellers), np.inf),
            delivered=np.zeros((batch, buyers, sellers)),
            buyer_bound=np.zeros((batch, buyers), dtype=bool),
            targets=np.ones((batch, buyers)),
        )

    def take(self, rows: np.ndarray) -> _State:
        """Return the state of the selected instances (a boolean mask or indices)."""
        return _State(*(getattr(self, spec.name)[rows] for spec in fields(self)))

    def put(self, rows: np.ndarray, other: _State) -> None:
        """Write ``other``'s instances into the instances ``rows`` of this state."""
        for spec in fields(self):
            getattr(self, spec.name)[rows] = getattr(other, spec.name)


class _Problem:
    """The auctioneer's problem of n instances, with the pieces of the reduced dual.

    Sums over one axis of an (n, I, J) array use einsum, which is several times faster than
    ndarray.sum for the short axes of these problems (numpy 2.4).
    """

    def __init__(
        self,
        bids: np.ndarray,
        asks: np.ndarray,
        efficiency: np.ndarray,
        floors: np.ndarray,
        caps: np.ndarray,
        supply: np.ndarray,
    ) -> None:
        self.bids = bids
        self.asks = asks
        self.efficiency = efficiency
        self.floors = floors
        self.caps = caps
        self.supply = supply
        self.positive = bids > 0.0
        self.inverse_efficiency = 1.0 / efficiency
        self.scaled_asks = asks * self.inverse_efficiency
        # Added to every offset: inf for zero bids, so that b / (p + a) is 0 there without a
        # division by zero.
        self.zero_bid_offset = np.where(self.positive, 0.0, np.inf)
        self.total_bid = np.einsum("bij->b", bids)
        self.buyer_bid = np.einsum("bij->bi", bids)
        self.seller_has_bid = self.positive.any(axis=1)

    def take(self, rows: np.ndarray) -> _Problem:
        """Return the problem of the selected instances."""
        return _Problem(
            self.bids[rows],
            self.asks[rows],
            self.efficiency[rows],
            self.floors[rows],
            self.caps[rows],
            self.supply[rows],
        )

    def evaluate(self, seller_prices: np.ndarray, buyer_guess: np.ndarray | None = None) -> _State:
        """Compute every buyer's exact price and allocation at the seller prices nu.

        ``buyer_guess`` (n, I) warm-starts the buyers' price equations.
        """
        # Seller offsets a_ij = (s_ij + nu_j) / rho_ij.
        finite_offsets = self.scaled_asks + seller_prices[:, None, :] * self.inverse_efficiency
        offsets = finite_offsets + self.zero_bid_offset
        prices, shifted, bound, targets = _buyer_prices(
            self.bids, offsets, finite_offsets, self.buyer_bid, self.floors, self.caps, buyer_guess
        )
        delivered = self.bids / shifted
        return _State(seller_prices, prices, shifted, delivered, bound, targets)

    def residual(self, state: _State) -> np.ndarray:
        """KKT residual: supply violation, duality gap or demand error, all relative, (n,)."""
        supply_used = np.einsum("bij,bij->bj", state.delivered, self.inverse_efficiency)
        slack = self.supply - supply_used
        violation = np.max(np.maximum(-slack, 0.0) / self.supply, axis=1)
        gap = (state.seller_prices * np.abs(slack)).sum(axis=1)
        # The objective's terms are of the size of the total bid and the total ask payment.
        scale = self.total_bid + np.einsum("bij,bij->b", self.scaled_asks, state.delivered)
        relative_gap = np.divide(gap, scale, out=np.zeros_like(gap), where=scale > 0.0)
        delivered_total = np.einsum("bij->bi", state.delivered)
        demand_error = np.where(
            state.buyer_bound, np.abs(delivered_total - state.targets) / state.targets, 0.0
        )
        return np.maximum(np.maximum(violation, relative_gap), demand_error.max(axis=1))

    def newton_direction(self, state: _State) -> tuple[np.ndarray, np.ndarray]:
        """Return the projected Newton direction on nu and the reduced dual's gradient, (n, J)."""
        supply_used = np.einsum("bij,bij->bj", state.delivered, self.inverse_efficiency)
        gradient = self.supply - supply_used

        # Curvature of each pair's term, K_ij = b / w^2 = c / w (0 for zero bids).
        curvature = state.delivered / state.offsets
        scaled = curvature * self.inverse_efficiency
        diagonal = np.einsum("bij,bij->bj", scaled, self.inverse_efficiency)
        # A buyer at a demand bound re-prices to keep its total fixed, which couples the
        # sellers it buys from: subtract u_i u_i^T / k_i with u_ij = K_ij / rho_ij and
        # k_i = sum_j K_ij.
        buyer_curvature = np.einsum("bij->bi", curvature)
        weight = np.divide(
            state.buyer_bound.astype(np.float64),
            buyer_curvature,
            out=np.zeros_like(buyer_curvature),
            where=buyer_curvature > 0.0,
        )
        hessian = -np.matmul((scaled * weight[..., None]).transpose(0, 2, 1), scaled)
        sellers = np.arange(diagonal.shape[1])
        hessian[:, sellers, sellers] += diagonal

        # Bertsekas's epsilon-active set: prices at (or within epsilon of) 0 whose gradient
        # pushes them below 0 stay at the bound and take a scaled gradient step.
        safe_diagonal = np.where(diagonal > 0.0, diagonal, 1.0)
        prices = state.seller_prices
        projected = prices - np.maximum(prices - gradient / safe_diagonal, 0.0)
        epsilon = np.max(np.abs(projected), axis=1, keepdims=True)
        at_bound = ((prices <= epsilon) & (gradient > 0.0)) | ~self.seller_has_bid
        free = ~at_bound

        system = np.where(free[:, :, None] & free[:, None, :], hessian, 0.0)
        shift = HESSIAN_SHIFT * np.max(diagonal, axis=1, keepdims=True)
        system[:, sellers, sellers] += np.where(free, shift, 1.0)
        rhs = np.where(free, -gradient, 0.0)
        step = np.linalg.solve(system, rhs[..., None])[..., 0]
        direction = np.where(free, step, -gradient / safe_diagonal)
        direction = np.where(self.seller_has_bid, direction, 0.0)

        # Where every buyer of a seller sits at a demand bound, the reduced dual is linear in
        # that seller's price until a buyer changes regime, so the Hessian is singular there
        # and the Newton step unbounded. Shrinking the direction so that no price moves by more
        # than STEP_LIMIT times (its value plus the market's average price, total bid over
        # total amount) leaves that distance to the line search.
        delivered_total = np.einsum("bij->b", state.delivered)
        average_price = np.divide(
            self.total_bid,
            delivered_total,
            out=np.ones_like(delivered_total),
            where=delivered_total > 0.0,
        )
        # Prices held at the bound move to 0 at most, so only free prices count.
        limit = STEP_LIMIT * (prices + average_price[:, None])
        largest = np.max(np.where(free, np.abs(direction) / limit, 0.0), axis=1)
        direction = np.where(free, direction / np.maximum(largest, 1.0)[:, None], direction)
        return direction, gradient

    def line_search(
        self, state: _State, direction: np.ndarray, gradient: np.ndarray
    ) -> tuple[_State, np.ndarray]:
        """Backtrack along the projection arc until Armijo's condition holds.

        Only the instances still searching are evaluated after the first trial.

        Returns:
            The new state (unchanged where no step was accepted) and whether each instance
            moved, (n,).
        """
        trial_prices = np.maximum(state.seller_prices + direction, 0.0)
        trial = self.evaluate(trial_prices, state.buyer_prices)
        change = self.dual_change(state, trial)
        expected = (gradient * (trial_prices - state.seller_prices)).sum(axis=1)
        ok = change <= ARMIJO_FACTOR * expected
        if ok.all():
            return trial, ok

        # Backtrack on the instances that rejected the full step.
        result = state.take(np.arange(direction.shape[0]))
        accepted = np.zeros(direction.shape[0], dtype=bool)
        pending = np.arange(direction.shape[0])
        problem, start = self, state
        step_size = 1.0
        for _ in range(MAX_STEP_HALVINGS):
            if step_size < 1.0:
                trial_prices = np.maximum(start.seller_prices + step_size * direction, 0.0)
                trial = problem.evaluate(trial_prices, start.buyer_prices)
                change = problem.dual_change(start, trial)
                expected = (gradient * (trial_prices - start.seller_prices)).sum(axis=1)
                ok = change <= ARMIJO_FACTOR * expected
            result.put(pending[ok], trial.take(ok))
            accepted[pending[ok]] = True
            if ok.all():
                break
            rest = ~ok
            pending = pending[rest]
            problem, start = problem.take(rest), start.take(rest)
            direction, gradient = direction[rest], gradient[rest]
            step_size *= 0.5
        return result, accepted

    def dual_change(self, old: _State, new: _State) -> np.ndarray:
        """Compute phi(new) - phi(old) from the price changes, so that rounding stays small, (n,)."""
        price_change = new.buyer_prices - old.buyer_prices
        seller_change = new.seller_prices - old.seller_prices
        # w_new - w_old, formed from the price changes rather than by subtracting the offsets.
        offset_change = (
            price_change[..., None] + seller_change[:, None, :] * self.inverse_efficiency
        )
        relative = offset_change / old.offsets
        # Where w is far below |p|, p + a has cancelled and the linear change is inaccurate, so
        # such pairs, and pairs whose w changes by half or more, use the ratio of the stored w
        # (accurate by construction). The linear form is kept for small changes, where the
        # line search needs it to cancel exactly against the change of h_i. Zero bids have
        # infinite w and a relative change of 0, so they take the linear form.
        linear = (old.offsets >= CANCELLATION_RATIO * np.abs(old.buyer_prices)[..., None]) & (
            relative > -0.5
        )
        log_ratio = np.empty_like(relative)
        np.log1p(relative, out=log_ratio, where=linear)
        with np.errstate(invalid="ignore"):
            # inf / inf for zero bids, which take the linear form.
            ratio = new.offsets / old.offsets
        np.log(ratio, out=log_ratio, where=~linear)
        log_term = -np.einsum("bij,bij->b", self.bids, log_ratio)

        # h_i is linear on each side of 0, so on one side its change is the slope times the
        # price change. Subtracting h(old) from h(new) would lose that change to rounding.
        upper = (new.buyer_prices > 0.0) & (old.buyer_prices > 0.0)
        lower = (new.buyer_prices <= 0.0) & (old.buyer_prices <= 0.0)
        crossing = _bound_value(new.buyer_prices, self.floors, self.caps) - _bound_value(
            old.buyer_prices, self.floors, self.caps
        )
        bound_change = np.where(
            upper,
            self.caps * price_change,
            np.where(lower, self.floors * price_change, crossing),
        )
        return log_term + bound_change.sum(axis=1) + (self.supply * seller_change).sum(axis=1)


def _bound_value(prices: np.ndarray, floors: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """h_i(p) = c^max p for p >= 0 and c^min p for p < 0, (n, I)."""
    return np.where(prices > 0.0, caps * prices, floors * prices)


def _buyer_prices(
    bids: np.ndarray,
    offsets: np.ndarray,
    finite_offsets: np.ndarray,
    buyer_bid: np.ndarray,
    floors: np.ndarray,
    caps: np.ndarray,
    guess: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve every buyer's price p_i given its offsets a_ij.

    The buyer's total S(p) = sum_j b_ij / (p + a_ij) falls with p. If S(0) lies in
    [c^min, c^max], p = 0. Otherwise p solves S(p) = T with T the bound that S(0) violates, by
    Newton's method on g = 1 / S - 1 / T. g is increasing and concave, because 1 / S is a
    harmonic sum of the increasing lines (p + a_ij) / b_ij. From a start left of the root the
    iterates therefore rise monotonically to it and converge quadratically. From a start right
    of the root, one step lands left of it, or halves t while it would leave the domain.

    The unknown is t = p + min_j a_ij, the smallest w_ij, and w_ij = t + (a_ij - min_j a_ij).
    When a floor binds hard, w_ij of the cheapest pair can be far below a_ij, and p + a_ij
    would lose it to cancellation.

    Args:
        bids: b, (n, I, J).
        offsets: a, (n, I, J), inf where b = 0.
        finite_offsets: a without the inf of zero bids, (n, I, J).
        buyer_bid: sum_j b_ij, (n, I).
        floors: c^min, (n, I), 0 where waived.
        caps: c^max, (n, I).
        guess: A previous p, (n, I), to start from where it lies in the domain.

    Returns:
        p (n, I), w = p + a (n, I, J; inf for zero bids), whether a bound binds (n, I), and the
        bound T (1 where none binds), (n, I).
    """
    with np.errstate(divide="ignore"):
        # A zero offset with a positive bid makes S(0) infinite, so the cap binds.
        total_at_zero = np.einsum("bij->bi", bids / offsets)
    above = total_at_zero > caps
    below = total_at_zero < floors
    bound = above | below
    targets = np.where(above, caps, np.where(below, floors, 1.0))

    # A buyer without a positive bid has every offset infinite, and 0 keeps its arithmetic
    # finite.
    cheapest = _min_over_sellers(offsets)
    cheapest = np.where(np.isfinite(cheapest), cheapest, 0.0)
    excess = offsets - cheapest[..., None]

    # Starting points left of the root, where S >= T. Each is a valid start, so their maximum
    # is too: S(t) >= b_ij / (t + e_ij) for every j, and by Jensen's inequality
    # S(t) >= B_i / (t + sum_j b_ij e_ij / B_i), with e the excess offsets and B_i the
    # buyer's total bid. Rounding can move the Jensen start slightly right of the root, which
    # the iteration tolerates.
    safe_total = np.where(buyer_bid > 0.0, buyer_bid, 1.0)
    weighted_excess = np.einsum("bij,bij->bi", bids, finite_offsets) - buyer_bid * cheapest
    jensen = safe_total / targets - weighted_excess / safe_total
    single = _max_over_sellers(bids / targets[..., None] - excess)
    start = np.maximum(jensen, single)
    start = np.where(above, np.maximum(start, cheapest), start)
    if guess is not None:
        warm = guess + cheapest
        start = np.where(warm > 0.0, warm, start)
    smallest = np.where(bound, start, cheapest)

    smallest = _solve_buyer_equations(bids, excess, targets, smallest, bound)
    shifted = excess + smallest[..., None]
    prices = np.where(bound, smallest - cheapest, 0.0)
    return prices, shifted, bound, targets


def _solve_buyer_equations(
    bids: np.ndarray,
    excess: np.ndarray,
    targets: np.ndarray,
    smallest: np.ndarray,
    bound: np.ndarray,
) -> np.ndarray:
    """Run Newton's method on 1 / S(t) = 1 / T for the buyers at a bound; returns t, (n, I).

    The iteration works on the unsolved buyers only, gathered into (k, J) arrays, because after
    a few steps most buyers have converged.
    """
    sellers = bids.shape[-1]
    flat_bids = bids.reshape(-1, sellers)
    flat_excess = excess.reshape(-1, sellers)
    flat_targets = targets.reshape(-1)
    result = smallest.reshape(-1).copy()
    pending = np.flatnonzero(bound.reshape(-1))
    for _ in range(MAX_BUYER_ITERATIONS):
        if pending.size == 0:
            break
        row_bids, row_excess = flat_bids[pending], flat_excess[pending]
        target, current = flat_targets[pending], result[pending]
        inverse = 1.0 / (row_excess + current[:, None])
        amounts = row_bids * inverse
        total = np.einsum("kj->k", amounts)
        slope = np.einsum("kj,kj->k", amounts, inverse)
        unsolved = np.abs(total - target) > BUYER_TOLERANCE * target
        # Newton's step on g: (1/S - 1/T) / (S' / S^2) = S (S - T) / (T S'). Every pending
        # buyer has a positive bid, so S' > 0.
        step = total * (total - target) / (target * slope)
        # Halving keeps every iterate inside the domain t > 0.
        result[pending] = np.where(unsolved, np.maximum(current + step, 0.5 * current), current)
        pending = pending[unsolved]
    return result.reshape(smallest.shape)


def _min_over_sellers(values: np.ndarray) -> np.ndarray:
    """min over the last axis of an (n, I, J) array, (n, I).

    A loop over the J slices is several times faster than ndarray.min for short last axes.
    """
    result = values[..., 0].copy()
    for seller in range(1, values.shape[-1]):
        np.minimum(result, values[..., seller], out=result)
    return result


def _max_over_sellers(values: np.ndarray) -> np.ndarray:
    """max over the last axis of an (n, I, J) array, (n, I)."""
    result = values[..., 0].copy()
    for seller in range(1, values.shape[-1]):
        np.maximum(result, values[..., seller], out=result)
    return result


def _check_inputs(
    bids: np.ndarray,
    asks: np.ndarray,
    efficiency: np.ndarray,
    min_demand: np.ndarray,
    max_demand: np.ndarray,
    max_supply: np.ndarray,
) -> None:
    if bids.ndim != 3:
        raise ValueError(f"bids must have shape (B, I, J), got {bids.shape}")
    batch, buyers, sellers = bids.shape
    for name, value, shape in (
        ("asks", asks, bids.shape),
        ("efficiency", efficiency, bids.shape),
        ("min_demand", min_demand, (batch, buyers)),
        ("max_demand", max_demand, (batch, buyers)),
        ("max_supply", max_supply, (batch, sellers)),
    ):
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match bids, got {value.shape}")
    for name, value in (
        ("bids", bids),
        ("asks", asks),
        ("efficiency", efficiency),
        ("min_demand", min_demand),
        ("max_demand", max_demand),
        ("max_supply", max_supply),
    ):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value[~np.isfinite(value)][:5]}")
    for name, value in (("bids", bids), ("asks", asks), ("min_demand", min_demand)):
        if np.any(value < 0.0):
            raise ValueError(f"{name} must be >= 0, got {float(value.min())}")
    if np.any(efficiency <= 0.0) or np.any(efficiency > 1.0):
        raise ValueError(
            f"efficiency must lie in (0, 1], got values in [{efficiency.min()}, {efficiency.max()}]"
        )
    if np.any(max_supply <= 0.0):
        raise ValueError(f"max_supply must be above 0, got {float(max_supply.min())}")
    if np.any(max_demand <= 0.0) or np.any(max_demand < min_demand):
        raise ValueError(
            "max_demand must be above 0 and at least min_demand for every buyer; raise "
            "max_demand or lower min_demand"
        )
