"""Valuation of the data market among robots: what buyers gain and what sellers pay.

Seller robot j offers data of quality q_j captured a_j rounds ago. Data perishes at rate delta,
so its value factor is f_j = q_j exp(-delta a_j). Data sent from j to buyer i crosses hops_ij
relays, each passing on a fraction rho, so i receives c_ij = rho_ij d_ij of the d_ij that j
sends, with rho_ij = rho^hops_ij. The valuation by quality and perishability is this
project's model. The utilities follow the iterative double auction of J. Kang, R. Yu, X. Huang
et al., "Enabling Localized Peer-to-Peer Electricity Trading Among Plug-in Hybrid Electric
Vehicles Using Consortium Blockchains", IEEE TII 13(6), 2017.

Symbols (units; see :mod:`ledgerzoo.envs.data_market.scenario`):
    f_j     value factor q_j exp(-delta a_j), in (0, 1]
    d_ij    data seller j sends to buyer i (data units)
    c_ij    data buyer i receives from seller j, c_ij = rho_ij d_ij (data units)
    U_i     buyer i's utility, U_i = v_i ln(1 + sum_j f_j c_ij)              (coins)
    D_j     seller j's supply, D_j = sum_i d_ij                               (data units)
    L_j     seller j's cost, L_j = l1 D_j^2 + l2 D_j                          (coins)
    SW      social welfare, SW = sum_i U_i - sum_j L_j                        (coins)

Every function takes arrays whose leading axis is a batch of B independent instances: (B, I)
per buyer, (B, J) per seller, (B, I, J) per buyer-seller pair and (B,) per instance.
"""

from __future__ import annotations

import numpy as np


def value_factors(quality: np.ndarray, age: np.ndarray, perishability: np.ndarray) -> np.ndarray:
    """Compute the value factors f_j = q_j exp(-delta a_j).

    Args:
        quality: q, (B, J), in (0, 1].
        age: a (rounds), (B, J), >= 0.
        perishability: delta (per round), (B,), >= 0.

    Returns:
        f, (B, J), in (0, 1].
    """
    return quality * np.exp(-np.asarray(perishability)[..., None] * age)


def path_efficiency(hop_efficiency: np.ndarray, hops: np.ndarray) -> np.ndarray:
    """Compute rho_ij = rho^hops_ij, the fraction of what j sends that reaches i.

    Args:
        hop_efficiency: rho, (B,), in (0, 1].
        hops: Relay hops, (B, I, J), integers >= 0.

    Returns:
        rho_ij, (B, I, J), in (0, 1].
    """
    return np.asarray(hop_efficiency)[..., None, None] ** hops


def delivered_amounts(sent: np.ndarray, efficiency: np.ndarray) -> np.ndarray:
    """Compute what each buyer receives, c_ij = rho_ij d_ij (data units), (B, I, J)."""
    return efficiency * sent


def buyer_utilities(
    delivered: np.ndarray, willingness: np.ndarray, factors: np.ndarray
) -> np.ndarray:
    """Compute U_i = v_i ln(1 + sum_j f_j c_ij).

    Args:
        delivered: c (data units), (B, I, J), >= 0.
        willingness: v (coins), (B, I).
        factors: f, (B, J).

    Returns:
        U (coins), (B, I).
    """
    return willingness * np.log1p(_valued_amounts(delivered, factors))


def buyer_marginal_utilities(
    delivered: np.ndarray, willingness: np.ndarray, factors: np.ndarray
) -> np.ndarray:
    """Compute dU_i/dc_ij = v_i f_j / (1 + sum_k f_k c_ik).

    Args:
        delivered: c (data units), (B, I, J), >= 0.
        willingness: v (coins), (B, I).
        factors: f, (B, J).

    Returns:
        Marginal utilities (coins per data unit), (B, I, J).
    """
    scale = willingness / (1.0 + _valued_amounts(delivered, factors))
    return scale[..., None] * factors[:, None, :]


def seller_supplies(sent: np.ndarray) -> np.ndarray:
    """Compute each seller's supply D_j = sum_i d_ij (data units), (B, J)."""
    return sent.sum(axis=1)


def seller_costs(
    sent: np.ndarray, quadratic_cost: np.ndarray, linear_cost: np.ndarray
) -> np.ndarray:
    """Compute L_j = l1 D_j^2 + l2 D_j.

    Args:
        sent: d (data units), (B, I, J), >= 0.
        quadratic_cost: l1 (coins per data unit squared), (B, J).
        linear_cost: l2 (coins per data unit), (B, J).

    Returns:
        L (coins), (B, J).
    """
    supply = seller_supplies(sent)
    return quadratic_cost * supply**2 + linear_cost * supply


def seller_marginal_costs(
    sent: np.ndarray, quadratic_cost: np.ndarray, linear_cost: np.ndarray
) -> np.ndarray:
    """Compute dL_j/dD_j = 2 l1 D_j + l2 (coins per data unit), (B, J)."""
    return 2.0 * quadratic_cost * seller_supplies(sent) + linear_cost


def social_welfare(
    sent: np.ndarray,
    efficiency: np.ndarray,
    willingness: np.ndarray,
    factors: np.ndarray,
    quadratic_cost: np.ndarray,
    linear_cost: np.ndarray,
) -> np.ndarray:
    """Compute SW = sum_i U_i - sum_j L_j for an allocation d.

    Args:
        sent: d (data units), (B, I, J), >= 0.
        efficiency: rho_ij, (B, I, J).
        willingness: v (coins), (B, I).
        factors: f, (B, J).
        quadratic_cost: l1, (B, J).
        linear_cost: l2, (B, J).

    Returns:
        SW (coins), (B,).
    """
    delivered = delivered_amounts(sent, efficiency)
    gains = buyer_utilities(delivered, willingness, factors).sum(axis=1)
    return gains - seller_costs(sent, quadratic_cost, linear_cost).sum(axis=1)


def _valued_amounts(delivered: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """sum_j f_j c_ij, (B, I)."""
    return np.einsum("bij,bj->bi", delivered, factors)
