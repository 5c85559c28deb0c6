"""The auctioneer's batched dual solver against scipy and its own optimality conditions.

The reference solves the auctioneer's problem one instance at a time with scipy's SLSQP on the
received amounts c_ij. SLSQP fails on problems where tiny bids meet binding floors (nearly a
linear program), so those regimes are checked by the KKT conditions alone. The KKT checks
recompute stationarity and complementarity from the returned prices, independently of the
solver's own residual.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from ledgerzoo.envs.data_market.auctioneer import (
    AUCTIONEER_TOLERANCE,
    AuctioneerSolution,
    auctioneer_objective,
    solve_auctioneer,
    waived_floors,
)
from ledgerzoo.envs.data_market.scenario import small_market

# SLSQP reaches the objective to about 1e-11 of the total bid on these problems. The dual
# solver's objective must lie within this much of scipy's, relative to the total bid.
OBJECTIVE_TOLERANCE = 1e-8
# Relative error allowed in recomputed KKT conditions and bounds.
KKT_TOLERANCE = 1e-8


def random_problems(
    rng: np.random.Generator,
    batch: int,
    buyers: int,
    sellers: int,
    *,
    bid_scale: float = 1.0,
    supply_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Draw auctioneer problems whose demand floors are feasible by the sufficient condition."""
    hops = rng.integers(0, 3, (batch, buyers, sellers))
    efficiency = 0.9**hops
    max_supply = supply_scale * rng.uniform(0.5, 4.0, (batch, sellers))
    reachable = (efficiency * max_supply[:, None, :]).sum(axis=2).min(axis=1)
    floors = rng.uniform(0.0, 1.0, (batch, buyers))
    floors *= (0.9 * reachable / floors.sum(axis=1))[:, None] * rng.uniform(0.0, 1.0, (batch, 1))
    return {
        "bids": bid_scale * rng.uniform(0.05, 2.0, (batch, buyers, sellers)),
        "asks": rng.uniform(0.05, 1.0, (batch, buyers, sellers)),
        "efficiency": efficiency,
        "min_demand": floors,
        "max_demand": floors + rng.uniform(0.5, 5.0, (batch, buyers)),
        "max_supply": max_supply,
    }


def scipy_auctioneer(problem: dict[str, np.ndarray], index: int) -> tuple[np.ndarray, float]:
    """Solve one instance with scipy's SLSQP on the amounts c of the positive bids.

    The amounts are scaled by the mean demand cap and the objective by the total bid, which
    SLSQP needs to converge on these problems. Returns c (I, J), 0 for zero bids, and the
    objective sum b ln c - s c / rho.
    """
    bids = problem["bids"][index]
    asks = problem["asks"][index]
    efficiency = problem["efficiency"][index]
    floors, caps = problem["min_demand"][index], problem["max_demand"][index]
    supply = problem["max_supply"][index]
    buyers, sellers = bids.shape
    pairs = np.argwhere(bids > 0.0)
    weight = bids[pairs[:, 0], pairs[:, 1]]
    unit_cost = (asks / efficiency)[pairs[:, 0], pairs[:, 1]]
    amount_scale, objective_scale = caps.mean(), weight.sum()

    def negative_objective(scaled: np.ndarray) -> float:
        amounts = scaled * amount_scale
        value = (weight * np.log(amounts)).sum() - (unit_cost * amounts).sum()
        return -float(value) / objective_scale

    def gradient(scaled: np.ndarray) -> np.ndarray:
        amounts = scaled * amount_scale
        return (-weight / amounts + unit_cost) * amount_scale / objective_scale

    demand_rows = np.zeros((buyers, len(pairs)))
    demand_rows[pairs[:, 0], np.arange(len(pairs))] = amount_scale
    supply_rows = np.zeros((sellers, len(pairs)))
    supply_rows[pairs[:, 1], np.arange(len(pairs))] = (
        amount_scale / efficiency[pairs[:, 0], pairs[:, 1]]
    )
    constraints = [
        {"type": "ineq", "fun": lambda z: demand_rows @ z - floors, "jac": lambda z: demand_rows},
        {"type": "ineq", "fun": lambda z: caps - demand_rows @ z, "jac": lambda z: -demand_rows},
        {"type": "ineq", "fun": lambda z: supply - supply_rows @ z, "jac": lambda z: -supply_rows},
    ]
    # Start inside the feasible set, as in the sufficient condition the problems satisfy.
    # Every seller splits 99% of its cap in proportion to the floors (plus a little) of the
    # buyers that bid for it, and buyers above their caps are scaled down.
    shares = np.zeros((buyers, sellers))
    shares[pairs[:, 0], pairs[:, 1]] = (floors + 0.01 * caps)[pairs[:, 0]]
    shares /= np.maximum(shares.sum(axis=0, keepdims=True), 1e-300)
    start = 0.99 * efficiency * supply[None, :] * shares
    received = start.sum(axis=1)
    safe_received = np.where(received > 0.0, received, 1.0)
    start *= np.minimum(1.0, 0.99 * caps / safe_received)[:, None]
    with warnings.catch_warnings():
        # SLSQP may probe a point where an amount is 0 before its bounds take effect.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = optimize.minimize(
            negative_objective,
            start[pairs[:, 0], pairs[:, 1]] / amount_scale,
            jac=gradient,
            method="SLSQP",
            bounds=optimize.Bounds(1e-12, np.inf),
            constraints=constraints,
            options={"ftol": 1e-14, "maxiter": 3000},
        )
    # Status 8 ("positive directional derivative in line search") is SLSQP stopping at the
    # limit of its precision, which these tight tolerances reach.
    assert result.status in (0, 8), f"instance {index}: scipy failed: {result.message}"
    amounts = np.zeros((buyers, sellers))
    amounts[pairs[:, 0], pairs[:, 1]] = result.x * amount_scale
    received, used = amounts.sum(axis=1), (amounts / efficiency).sum(axis=0)
    violation = max(np.max(floors - received), np.max(received - caps), np.max(used - supply), 0.0)
    assert violation <= 1e-9 * max(caps.max(), supply.max()), (
        f"instance {index}: scipy's solution violates a bound by {violation}"
    )
    return amounts, -float(result.fun) * objective_scale


def solve(problem: dict[str, np.ndarray], **kwargs: object) -> AuctioneerSolution:
    return solve_auctioneer(
        problem["bids"],
        problem["asks"],
        problem["efficiency"],
        problem["min_demand"],
        problem["max_demand"],
        problem["max_supply"],
        **kwargs,  # type: ignore[arg-type]
    )


def assert_kkt(problem: dict[str, np.ndarray], solution: AuctioneerSolution) -> None:
    """Recompute feasibility, stationarity and complementarity for every instance."""
    bids, asks, efficiency = problem["bids"], problem["asks"], problem["efficiency"]
    floors = np.where(solution.floor_waived, 0.0, problem["min_demand"])
    caps, supply = problem["max_demand"], problem["max_supply"]
    delivered, sent = solution.delivered, solution.sent
    p, nu = solution.buyer_prices, solution.seller_prices
    positive = bids > 0.0

    assert np.all(solution.converged), solution.kkt_residual
    assert np.array_equal(sent * efficiency, delivered) or np.allclose(
        sent * efficiency, delivered, rtol=1e-15
    )
    assert np.all(delivered[~positive] == 0.0), "a zero bid received data"
    assert np.all(delivered[positive] > 0.0), "a positive bid received nothing"

    received = delivered.sum(axis=2)
    used = sent.sum(axis=1)
    assert np.all(received >= floors * (1.0 - KKT_TOLERANCE)), received - floors
    assert np.all(received <= caps * (1.0 + KKT_TOLERANCE)), received - caps
    assert np.all(used <= supply * (1.0 + KKT_TOLERANCE)), used - supply
    assert np.all(nu >= 0.0), nu

    # Stationarity: b / c = p_i + (s_ij + nu_j) / rho_ij for every pair with a positive bid.
    price = p[..., None] + (asks + nu[:, None, :]) / efficiency
    marginal = np.where(positive, bids / np.where(positive, delivered, 1.0), price)
    scale = np.abs(marginal) + np.abs(price)
    assert np.all(np.abs(marginal - price) <= KKT_TOLERANCE * scale), np.max(
        np.abs(marginal - price) / scale
    )
    # Complementarity: a buyer price is positive only at the cap, negative only at the floor,
    # and a seller price is positive only at the supply cap.
    at_cap = np.abs(received - caps) <= KKT_TOLERANCE * caps
    at_floor = np.abs(received - floors) <= KKT_TOLERANCE * np.maximum(floors, 1.0)
    assert np.all(at_cap[p > 0.0]), "a buyer below its cap has a positive price"
    assert np.all(at_floor[p < 0.0]), "a buyer above its floor has a negative price"
    gap = (nu * np.abs(supply - used)).sum(axis=1)
    scale = bids.sum(axis=(1, 2)) + (asks * sent).sum(axis=(1, 2))
    assert np.all(gap <= KKT_TOLERANCE * scale), gap / scale


def test_matches_scipy_on_small_instances() -> None:
    rng = np.random.default_rng(0)
    problem = random_problems(rng, 24, 4, 5)

    solution = solve(problem)

    assert_kkt(problem, solution)
    for index in range(24):
        _, reference = scipy_auctioneer(problem, index)
        total_bid = problem["bids"][index].sum()
        ours = solution.objective[index]
        assert ours >= reference - OBJECTIVE_TOLERANCE * total_bid, (
            f"instance {index}: dual solver {ours}, scipy {reference}"
        )
        assert ours <= reference + OBJECTIVE_TOLERANCE * total_bid, (
            f"instance {index}: dual solver {ours} above scipy {reference} beyond tolerance"
        )


@pytest.mark.parametrize(
    ("bid_scale", "supply_scale"),
    [(0.05, 0.3), (100.0, 1.0), (1.0, 0.2), (1.0, 10.0)],
)
def test_binding_regimes_match_scipy(bid_scale: float, supply_scale: float) -> None:
    rng = np.random.default_rng(int(bid_scale * 100 + supply_scale))
    problem = random_problems(rng, 8, 3, 4, bid_scale=bid_scale, supply_scale=supply_scale)

    solution = solve(problem)

    assert_kkt(problem, solution)
    for index in range(8):
        amounts, reference = scipy_auctioneer(problem, index)
        total_bid = problem["bids"][index].sum()
        assert abs(solution.objective[index] - reference) <= OBJECTIVE_TOLERANCE * total_bid, (
            f"instance {index}: dual solver {solution.objective[index]}, scipy {reference}"
        )
        assert np.allclose(solution.delivered[index], amounts, rtol=1e-4, atol=1e-6), (
            f"instance {index}: allocations differ by "
            f"{np.max(np.abs(solution.delivered[index] - amounts))}"
        )


def test_every_regime_occurs() -> None:
    rng = np.random.default_rng(1)
    problem = random_problems(rng, 400, 6, 8, bid_scale=1.0, supply_scale=0.5)
    problem["bids"] *= rng.choice([0.01, 1.0, 50.0], (400, 1, 1))

    solution = solve(problem)

    assert_kkt(problem, solution)
    assert np.any(solution.buyer_prices > 0.0), "no buyer at its cap"
    assert np.any(solution.buyer_prices < 0.0), "no buyer at its floor"
    assert np.any(solution.buyer_prices == 0.0), "no buyer between its bounds"
    assert np.any(solution.seller_prices > 0.0), "no seller at its cap"
    assert np.any(solution.seller_prices == 0.0), "no seller below its cap"


def test_batched_equals_per_instance() -> None:
    rng = np.random.default_rng(2)
    problem = random_problems(rng, 6, 4, 5)

    batched = solve(problem)

    for index in range(6):
        single = solve({key: value[index : index + 1] for key, value in problem.items()})
        assert np.allclose(single.delivered[0], batched.delivered[index], rtol=1e-9, atol=0.0), (
            f"instance {index}: batched and single allocations differ"
        )
        assert np.allclose(single.seller_prices[0], batched.seller_prices[index], atol=1e-9)


def test_warm_start_reaches_same_solution() -> None:
    rng = np.random.default_rng(3)
    problem = random_problems(rng, 16, 4, 5, supply_scale=0.3)
    cold = solve(problem)
    nudged = {**problem, "bids": problem["bids"] * rng.uniform(0.9, 1.1, problem["bids"].shape)}

    warm = solve(nudged, initial_seller_prices=cold.seller_prices)
    fresh = solve(nudged)

    assert_kkt(nudged, warm)
    assert np.allclose(warm.delivered, fresh.delivered, rtol=1e-8, atol=1e-12)
    again = solve(problem, initial_seller_prices=cold.seller_prices)
    assert np.all(again.iterations <= 1), again.iterations


def test_zero_bids_trade_nothing() -> None:
    rng = np.random.default_rng(4)
    problem = random_problems(rng, 8, 4, 5)
    bids = problem["bids"]
    bids[:, 0, :2] = 0.0  # buyer 0 bids nothing to sellers 0 and 1
    bids[:, :, 4] = 0.0  # no buyer bids for seller 4
    bids[:, 3, :] = 0.0  # buyer 3 bids nothing at all
    problem["min_demand"][:, 3] = 0.5

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solution = solve(problem)

    assert_kkt(problem, solution)
    assert np.all(solution.delivered[:, 0, :2] == 0.0)
    assert np.all(solution.sent[:, :, 4] == 0.0)
    assert np.all(solution.seller_prices[:, 4] == 0.0)
    assert np.all(solution.delivered[:, 3, :] == 0.0)
    assert np.all(solution.floor_waived[:, 3]), "a buyer that bids nothing keeps its floor"
    assert np.all(np.isfinite(solution.objective)), solution.objective
    for index in range(8):
        _, reference = scipy_auctioneer(
            {**problem, "min_demand": np.where(solution.floor_waived, 0.0, problem["min_demand"])},
            index,
        )
        assert (
            abs(solution.objective[index] - reference) <= OBJECTIVE_TOLERANCE * bids[index].sum()
        ), f"instance {index}: dual solver {solution.objective[index]}, scipy {reference}"


def test_tiny_bids_beside_large_ones() -> None:
    rng = np.random.default_rng(5)
    problem = random_problems(rng, 16, 4, 5)
    problem["min_demand"] = 0.5 * problem["max_demand"]
    problem["max_demand"] = problem["min_demand"] + 1.0
    problem["max_supply"] = np.full((16, 5), 50.0)
    problem["bids"][:, :, 0] *= 1e-12

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solution = solve(problem)

    assert_kkt(problem, solution)


def test_waived_floor_only_when_unreachable() -> None:
    efficiency = np.ones((1, 2, 2))
    supply = np.array([[3.0, 3.0]])
    floors = np.array([[2.0, 2.0]])
    both = np.ones((1, 2, 2), dtype=bool)
    # Buyer 0 bids only for seller 0, buyer 1 for both: seller 0's 3 units are claimed by
    # floors 2 + 2, so buyer 0 is guaranteed 3 * 2 / 4 = 1.5 < 2 and its floor is waived.
    narrow = np.array([[[True, False], [True, True]]])

    assert not waived_floors(both, efficiency, floors, supply).any()
    assert waived_floors(narrow, efficiency, floors, supply).tolist() == [[True, False]]


def test_validated_market_waives_nothing() -> None:
    market = small_market().sample(np.random.default_rng(6), 256)
    positive = np.ones(market.efficiency.shape, dtype=bool)

    waived = waived_floors(positive, market.efficiency, market.min_demand, market.max_supply)

    assert not waived.any()


def test_objective_treats_zero_bid_as_zero() -> None:
    bids = np.array([[[1.0, 0.0]]])
    asks = np.array([[[0.5, 0.5]]])
    delivered = np.array([[[np.e, 0.0]]])

    value = auctioneer_objective(bids, asks, delivered, delivered)

    assert value[0] == pytest.approx(1.0 - 0.5 * np.e)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("bids", -1.0, "bids must be >= 0"),
        ("asks", np.nan, "asks must be finite"),
        ("efficiency", 1.5, "efficiency must lie in"),
        ("max_supply", 0.0, "max_supply must be above 0"),
        ("max_demand", 0.0, "max_demand must be above 0"),
        ("min_demand", -0.5, "min_demand must be >= 0"),
    ],
)
def test_invalid_input_names_argument(name: str, value: float, message: str) -> None:
    problem = random_problems(np.random.default_rng(7), 2, 3, 4)
    problem[name] = problem[name].copy()
    problem[name].flat[0] = value

    with pytest.raises(ValueError, match=message):
        solve(problem)


def test_wrong_shape_names_argument() -> None:
    problem = random_problems(np.random.default_rng(8), 2, 3, 4)
    problem["max_supply"] = problem["max_supply"][:, :3]

    with pytest.raises(ValueError, match="max_supply must have shape"):
        solve(problem)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bid_exponent=st.floats(-3.0, 3.0),
    supply_scale=st.floats(0.05, 20.0),
    buyers=st.integers(1, 6),
    sellers=st.integers(1, 8),
)
def test_certificate_holds_across_scales(
    seed: int, bid_exponent: float, supply_scale: float, buyers: int, sellers: int
) -> None:
    rng = np.random.default_rng(seed)
    problem = random_problems(
        rng, 16, buyers, sellers, bid_scale=10.0**bid_exponent, supply_scale=supply_scale
    )

    solution = solve(problem)

    assert np.all(solution.kkt_residual <= AUCTIONEER_TOLERANCE), solution.kkt_residual
    assert_kkt(problem, solution)
