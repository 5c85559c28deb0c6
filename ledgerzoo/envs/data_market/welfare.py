"""The welfare optimum of the data market by a generic convex solver, to check the auction.

Problem (per instance), with the valuation of :mod:`ledgerzoo.envs.data_market.model`:

    max over d >= 0   SW(d) = sum_i v_i ln(1 + sum_j f_j rho_ij d_ij) - sum_j (l1 D_j^2 + l2 D_j)
    subject to        c_i^min <= sum_j rho_ij d_ij <= c_i^max     (buyer i's demand bounds)
                      D_j = sum_i d_ij <= d_j^max                 (seller j's supply cap)

SW is concave and the constraints are linear, so a local optimum is the global one. The
solver is scipy's trust-constr (interior point) by default, or SLSQP, one instance at a time,
with the exact gradient of SW and, for trust-constr, exact Hessian-vector products. It shares
no code with the auctioneer, so the tests can compare the two. It is a reference, not a step
of an env: on a shared 2-core machine (scipy 1.17) trust-constr took about 0.15 s per
instance of the small preset and 7 to 8 s per instance of the kang2017 preset. On the small
preset, its welfare agreed with SLSQP's to about 1e-8 relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, sparse

from ledgerzoo.envs.data_market import model
from ledgerzoo.envs.data_market.scenario import DataMarket

Method = Literal["trust-constr", "SLSQP"]
Vector = npt.NDArray[np.float64]
# Convergence tolerances passed to scipy.
SLSQP_TOLERANCE = 1e-12
TRUST_CONSTR_TOLERANCE = 1e-12
MAX_SOLVER_ITERATIONS = 5000


@dataclass(frozen=True)
class WelfareOptimum:
    """The welfare-maximizing allocation of B instances.

    Attributes:
        sent: d* (data units), (B, I, J).
        delivered: c* = rho d* (data units), (B, I, J).
        welfare: SW(d*) (coins), (B,).
        success: Whether scipy reported success for each instance, (B,).
        messages: scipy's message for each instance.
    """

    sent: np.ndarray
    delivered: np.ndarray
    welfare: np.ndarray
    success: np.ndarray
    messages: tuple[str, ...]


def solve_welfare(market: DataMarket, method: Method = "trust-constr") -> WelfareOptimum:
    """Maximize social welfare in every instance with scipy.

    Args:
        market: The market's parameters.
        method: ``"trust-constr"`` or ``"SLSQP"``. SLSQP's dense quasi-Newton matrix grows
            with the square of I * J, so it suits small markets only.

    Returns:
        The optimum of every instance.

    Raises:
        ValueError: For an unknown method.
    """
    if method not in ("trust-constr", "SLSQP"):
        raise ValueError(f"unknown method {method!r}; expected 'trust-constr' or 'SLSQP'")
    buyers, sellers = market.n_buyers, market.n_sellers

    sent = np.zeros((market.batch_size, buyers, sellers))
    success = np.zeros(market.batch_size, dtype=bool)
    messages = []
    for index in range(market.batch_size):
        result = _solve_instance(market.instance(index), method)
        sent[index] = result.x.reshape(buyers, sellers)
        success[index] = bool(result.success)
        messages.append(str(result.message))
    # The solvers may return tiny negative amounts within their tolerance.
    sent = np.maximum(sent, 0.0)
    welfare = model.social_welfare(
        sent,
        market.efficiency,
        market.willingness,
        market.value_factors,
        market.quadratic_cost,
        market.linear_cost,
    )
    return WelfareOptimum(
        sent=sent,
        delivered=model.delivered_amounts(sent, market.efficiency),
        welfare=welfare,
        success=success,
        messages=tuple(messages),
    )


def _solve_instance(market: DataMarket, method: str) -> optimize.OptimizeResult:
    """Solve one instance (a batch of one) and return scipy's result."""
    buyers, sellers = market.n_buyers, market.n_sellers
    efficiency = market.efficiency[0]
    willingness = market.willingness[0]
    quadratic, linear = market.quadratic_cost[0], market.linear_cost[0]
    # gain[i, j] = f_j rho_ij, the value one data unit sent by j adds inside buyer i's log.
    gain = market.value_factors[0][None, :] * efficiency

    def negative_welfare(x: Vector) -> float:
        sent = x.reshape(1, buyers, sellers)
        welfare = model.social_welfare(
            sent,
            market.efficiency,
            market.willingness,
            market.value_factors,
            market.quadratic_cost,
            market.linear_cost,
        )
        return -float(welfare[0])

    def gradient(x: Vector) -> Vector:
        sent = x.reshape(buyers, sellers)
        valued = 1.0 + (gain * sent).sum(axis=1)
        marginal_cost = 2.0 * quadratic * sent.sum(axis=0) + linear
        return (-(willingness / valued)[:, None] * gain + marginal_cost[None, :]).ravel()

    def hessian_product(x: Vector, direction: Vector) -> Vector:
        # The Hessian of -SW times a direction p: each buyer's term contributes
        # v_i / (1 + F_i)^2 g_i (g_i . p_i), each seller's term 2 l1 sum_k p_kj.
        sent = x.reshape(buyers, sellers)
        step = direction.reshape(buyers, sellers)
        valued = 1.0 + (gain * sent).sum(axis=1)
        along = (willingness / valued**2) * (gain * step).sum(axis=1)
        return (along[:, None] * gain + (2.0 * quadratic * step.sum(axis=0))[None, :]).ravel()

    # Sparse constraint rows keep trust-constr's projections cheap: with dense rows it took
    # minutes per kang2017 instance. SLSQP needs dense rows.
    demand_rows = sparse.csr_array(
        sparse.kron(sparse.eye_array(buyers), np.ones((1, sellers))) * efficiency.ravel()[None, :]
    )
    supply_rows = sparse.csr_array(sparse.kron(np.ones((1, buyers)), sparse.eye_array(sellers)))
    demand_bounds = (market.min_demand[0], market.max_demand[0])
    supply_bounds = (-np.inf, market.max_supply[0])
    if method == "SLSQP":
        constraints = [
            optimize.LinearConstraint(demand_rows.toarray(), *demand_bounds),
            optimize.LinearConstraint(supply_rows.toarray(), *supply_bounds),
        ]
    else:
        constraints = [
            optimize.LinearConstraint(demand_rows, *demand_bounds),
            optimize.LinearConstraint(supply_rows, *supply_bounds),
        ]
    start = _starting_point(market)
    bounds = optimize.Bounds(np.zeros(buyers * sellers), np.full(buyers * sellers, np.inf))
    if method == "SLSQP":
        return optimize.minimize(
            negative_welfare,
            start,
            jac=gradient,
            method="SLSQP",
            bounds=bounds,
            constraints=constraints,
            options={"ftol": SLSQP_TOLERANCE, "maxiter": MAX_SOLVER_ITERATIONS},
        )
    return optimize.minimize(
        negative_welfare,
        start,
        jac=gradient,
        hessp=hessian_product,
        method="trust-constr",
        bounds=bounds,
        constraints=constraints,
        options={
            "gtol": TRUST_CONSTR_TOLERANCE,
            "xtol": TRUST_CONSTR_TOLERANCE,
            "maxiter": MAX_SOLVER_ITERATIONS,
        },
    )


def _starting_point(market: DataMarket) -> Vector:
    """Build a positive allocation near the feasible set to start the solver (one instance).

    Every seller splits almost all of its cap among the buyers in proportion to their floors
    (plus 1% of their caps, so that every pair starts positive). Buyers above their caps are
    scaled down. Both scipy methods accept a start that violates a bound slightly.
    """
    efficiency = market.efficiency[0]
    floors, caps = market.min_demand[0], market.max_demand[0]
    weights = floors + 0.01 * caps
    sent = 0.999 * market.max_supply[0][None, :] * (weights / weights.sum())[:, None]
    received = (efficiency * sent).sum(axis=1)
    scale = np.minimum(1.0, 0.999 * caps / received)
    return (sent * scale[:, None]).ravel()
