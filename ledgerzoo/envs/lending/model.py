"""Utilities of the lending market with one borrower and N competing lenders.

The model is the loan-pricing Stackelberg game for blockchain-based Internet-of-Vehicles data
trading from W. Chen's InPlus Lab (Sun Yat-sen University). Lenders lead by posting interest
rates; the borrower follows by choosing a loan from each lender, and then takes its loan from
the lender whose offer it values most.

Symbols (units):
    r_i       interest rate of lender i, fraction of the principal per loan term, in
              [r_min,i, r_max]
    y_i       price offered by lender i, y_i = 1 / r_i (loan terms)
    d_i       the borrower's willingness towards lender i, > 0 (coins x rate)
    x_i       loan amount the borrower takes from lender i (coins)
    BU_i      the borrower's utility for the loan from lender i:
              BU_i = x_i exp(-x_i r_i / d_i)                                     (coins)
    rho_i     competitiveness of lender i, rho_i = BU_i / mean_j BU_j            (1)
    phi_i     profit of lender i, phi_i = x_i (r_i - r_min,i)                    (coins)
    LU_i      utility of lender i, LU_i = rho_i phi_i                            (coins)

Every function takes arrays whose leading axis is a batch of independent game instances:
shape (B, N) for per-lender quantities and (B,) for per-instance ones.
"""

from __future__ import annotations

import numpy as np

from ledgerzoo.envs.core.rows import row_sum


def prices_from_rates(rates: np.ndarray) -> np.ndarray:
    """Convert interest rates r into prices y = 1 / r (loan terms)."""
    return 1.0 / rates


def borrower_best_response(
    prices: np.ndarray,
    willingness: np.ndarray,
    min_loan: np.ndarray | float = 0.0,
    max_loan: np.ndarray | float = np.inf,
) -> np.ndarray:
    """Compute the borrower's best-response loan from each lender.

    BU_i = x exp(-x / (d_i y_i)) rises up to x = d_i y_i and falls after it, so the best
    response on [x_min, x_max,i] is d_i y_i clipped to the bounds (stage II of the game).

    Args:
        prices: Prices y, shape (B, N), > 0.
        willingness: Willingness d, shape (B, N), > 0.
        min_loan: Smallest loan x_min (coins), broadcastable to (B, N).
        max_loan: Largest loan x_max,i (coins), broadcastable to (B, N); ``inf`` when slack.

    Returns:
        Loan amounts x (coins), shape (B, N).
    """
    return np.clip(willingness * prices, min_loan, max_loan)


def borrower_utilities(loans: np.ndarray, rates: np.ndarray, willingness: np.ndarray) -> np.ndarray:
    """Compute the borrower's utility BU_i = x_i exp(-x_i r_i / d_i) for each lender's loan.

    Args:
        loans: Loan amounts x (coins), shape (B, N), >= 0.
        rates: Interest rates r, shape (B, N), > 0.
        willingness: Willingness d, shape (B, N), > 0.

    Returns:
        Utilities BU (coins), shape (B, N).
    """
    return loans * np.exp(-loans * rates / willingness)


def lender_utility_against(
    own_borrower_utility: np.ndarray,
    others_borrower_utility: np.ndarray,
    loans: np.ndarray,
    rates: np.ndarray,
    min_rate: np.ndarray,
    n_lenders: int,
) -> np.ndarray:
    """Compute LU_i = rho_i phi_i given the borrower's utility for the other lenders' loans.

    Written in terms of the others' total so that a best-response search can vary one
    lender's offer while the others stay fixed:
    rho_i = N BU_i / (BU_i + sum_{j != i} BU_j) and phi_i = x_i (r_i - r_min,i).
    When every BU is zero the competitiveness is defined as 0.

    Args:
        own_borrower_utility: BU_i (coins), any shape.
        others_borrower_utility: sum over j != i of BU_j (coins), broadcastable to it.
        loans: x_i (coins), broadcastable.
        rates: r_i, broadcastable.
        min_rate: r_min,i, broadcastable.
        n_lenders: N, the number of lenders in the market.

    Returns:
        LU_i (coins), the broadcast shape.
    """
    total = own_borrower_utility + others_borrower_utility
    competitiveness = np.divide(
        n_lenders * own_borrower_utility,
        total,
        out=np.zeros(np.broadcast(own_borrower_utility, total).shape),
        where=total > 0.0,
    )
    profit = loans * (rates - min_rate)
    return competitiveness * profit


def lender_utilities(
    loans: np.ndarray, rates: np.ndarray, willingness: np.ndarray, min_rate: np.ndarray
) -> np.ndarray:
    """Compute every lender's utility LU_i = rho_i phi_i for the loans the borrower chose.

    Args:
        loans: Loan amounts x (coins), shape (B, N).
        rates: Interest rates r, shape (B, N).
        willingness: Willingness d, shape (B, N).
        min_rate: Minimum lending rates r_min, shape (B, N).

    Returns:
        LU (coins), shape (B, N).
    """
    utilities = borrower_utilities(loans, rates, willingness)
    return lender_utilities_given(utilities, loans, rates, min_rate)


def lender_utilities_given(
    borrower_utility: np.ndarray, loans: np.ndarray, rates: np.ndarray, min_rate: np.ndarray
) -> np.ndarray:
    """Compute every LU_i as :func:`lender_utilities` does, from BU already computed, (B, N).

    Args:
        borrower_utility: BU_i of each lender's loan (coins), (B, N), as
            :func:`borrower_utilities` returns it for ``loans`` and ``rates``.
        loans, rates, min_rate: As in :func:`lender_utilities`.
    """
    others = np.expand_dims(row_sum(borrower_utility), -1) - borrower_utility
    return lender_utility_against(
        borrower_utility, others, loans, rates, min_rate, n_lenders=loans.shape[-1]
    )


def optimal_lender(borrower_utility: np.ndarray) -> np.ndarray:
    """Index of the lender the borrower takes its loan from: argmax_i BU_i (lowest index on ties).

    Args:
        borrower_utility: BU, shape (B, N).

    Returns:
        Lender indices, shape (B,), int64.
    """
    return np.argmax(borrower_utility, axis=-1)


def lender_utility_gradient(
    prices: np.ndarray, beta: np.ndarray, willingness: np.ndarray, min_rate: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivative of LU_i with respect to the own price y_i (slack loan bounds).

    With the borrower's response x_j = d_j y_j substituted, LU_i = N d_i y_i (1 - y_i r_min,i)
    / (y_i + beta_i) with beta_i = sum_{j != i} (d_j / d_i) y_j, so

        dLU_i/dy_i   = N d_i (beta_i - r_min,i y_i^2 - 2 r_min,i beta_i y_i) / (y_i + beta_i)^2
        d2LU_i/dy_i2 = -2 N d_i beta_i (r_min,i beta_i + 1) / (y_i + beta_i)^3  (<= 0: concave)

    Args:
        prices: y, shape (B, N).
        beta: beta_i, shape (B, N).
        willingness: d, shape (B, N).
        min_rate: r_min, shape (B, N).
        n: Number of lenders N.

    Returns:
        The gradient and the curvature, each of shape (B, N).
    """
    total = prices + beta
    gradient = (
        n * willingness * (beta - min_rate * prices**2 - 2.0 * min_rate * beta * prices) / total**2
    )
    curvature = -2.0 * n * willingness * beta * (min_rate * beta + 1.0) / total**3
    return gradient, curvature


# --------------------------------------------------------------------------------------------
# One borrower, N investing lenders (the borrower leads).
#
# Symbols (units):
#     r_i       interest rate the borrower offers lender i, in [r_min,i, r_max]
#     x_i       investment of lender i, in [0, x_max,i] (coins)
#     R         reward the borrower shares in proportion to investment (coins)
#     w         the lenders' willingness weight (1)
#     eta       the borrower's valuation of funds (coins)
#     X         the amount the borrower must raise (coins)
#     phi_i     willingness to invest, phi_i = w (x_max,i + R - x_i) / x_max,i            (1)
#     LU_i      LU_i = x_i / sum_j x_j phi_i R + (r_i - r_min,i) x_i                    (coins)
#     BU        BU = eta ln(sum_i x_i - X + 1) - sum_i r_i x_i - R                      (coins)


def investor_utilities(
    investments: np.ndarray,
    rates: np.ndarray,
    min_rate: np.ndarray,
    max_investment: np.ndarray,
    reward: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Compute every investing lender's utility LU_i = x_i / sum_j x_j phi_i R + (r_i - r_min,i) x_i.

    The reward share x_i / sum_j x_j is defined as 0 when nobody invests.

    Args:
        investments: x (coins), (B, N), in [0, x_max].
        rates: r, (B, N).
        min_rate: r_min, (B, N).
        max_investment: x_max (coins), (B, N), > 0.
        reward: R (coins), broadcastable to (B, 1).
        weight: w, broadcastable to (B, 1).

    Returns:
        LU (coins), (B, N).
    """
    total = investments.sum(axis=-1, keepdims=True)
    others = total - investments
    return investor_utility_against(
        investments, others, rates, min_rate, max_investment, reward, weight
    )


def investor_utility_against(
    investment: np.ndarray,
    others_investment: np.ndarray,
    rate: np.ndarray,
    min_rate: np.ndarray,
    max_investment: np.ndarray,
    reward: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Compute LU_i of an investment x_i when the others invest beta_i = sum_{j != i} x_j in total.

    All arguments broadcast; see :func:`investor_utilities` for the symbols.
    """
    total = investment + others_investment
    share = np.divide(
        investment, total, out=np.zeros(np.broadcast(investment, total).shape), where=total > 0.0
    )
    willingness = weight * (max_investment + reward - investment) / max_investment
    return share * willingness * reward + (rate - min_rate) * investment


def raise_borrower_utility(
    investments: np.ndarray,
    rates: np.ndarray,
    target: np.ndarray,
    reward: np.ndarray,
    valuation: np.ndarray,
    failure_utility: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute the borrower's utility BU = eta ln(sum_i x_i - X + 1) - sum_i r_i x_i - R.

    BU is undefined when sum_i x_i <= X - 1: the raise has failed, and the borrower gets
    ``failure_utility`` instead.

    Args:
        investments: x (coins), (B, N).
        rates: r, (B, N).
        target: X (coins), (B,).
        reward: R (coins), (B,).
        valuation: eta (coins), (B,).
        failure_utility: BU of a failed raise (coins).

    Returns:
        BU (coins), (B,), and whether each raise succeeded, (B,) bool.
    """
    surplus = row_sum(investments) - target + 1.0
    feasible = surplus > 0.0
    log_surplus = np.log(np.where(feasible, surplus, 1.0))
    utility = valuation * log_surplus - row_sum(rates * investments) - reward
    return np.where(feasible, utility, failure_utility), feasible
