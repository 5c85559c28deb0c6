"""Bare numpy kernels of each market's per-step economics: the practical limit of a step.

A kernel does the arithmetic of one round over arrays preallocated once per episode, with
no action validation, no infos, no observations and no ledger classes. It reads the
episode's parameters from a freshly reset :class:`~ledgerzoo.envs.core.market.BatchedMarket`
(:meth:`Kernel.load`), so it runs on the same arrays as the market, and it never resets:
the throughput benchmark times it on whole episodes of steps.

The kernels assume the default settings of the shipped configs: an instant ledger, slack
budgets and balances, free data, utility rewards, and no reputation or loans. Under other
settings :func:`check_kernel` reports a mismatch instead of a wrong throughput.

What each kernel computes, per step:

- lending_one_to_one_v0: rate mapping, the borrower's closed-form best response capped by
  the lenders' balances, borrower utilities, competitiveness, profits and lender utilities,
  the optimal lender, and the ledger arithmetic (last round's repayment with interest, the
  minted data income, the new principal).
- lending_one_to_many_v0: rate mapping, and the lenders' investment equilibrium by Jacobi
  iteration of their closed-form best responses (the market's stopping rule). Then the
  borrower's raise utility, the lenders' utilities, and the ledger arithmetic: repayments
  with the reward share folded into the rate, the minted income, the new principals.
- offloading_v0: device costs and relay income through the pure functions of
  ``offloading/model.py``, rewards, and the ledger arithmetic (provider bills, relay fees,
  minted mining income) as one ``np.bincount``.
- data_market_v0: the relays' message outcome and utilities (``data_market/relays.py``),
  payments and Sprite charges, the ledger arithmetic, the damped truthful update of bids
  and asks, and the next round's allocation by the exact auctioneer
  (``data_market/auctioneer.py``, without input checks). These solvers are called, not
  rewritten, so this kernel measures the market's overhead around them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ledgerzoo.envs.core.market import BatchedMarket

# Tolerances of check_kernel: both sides do the same float64 arithmetic, in another order.
CHECK_RTOL = 1e-9
CHECK_ATOL = 1e-9


class Kernel(ABC):
    """The per-step economics of one market over preallocated arrays.

    Subclasses set :attr:`market_name`, fill their arrays in :meth:`load` and step in
    :meth:`step`, which returns the acting role's rewards (B, count), already scaled.
    """

    market_name = ""

    @abstractmethod
    def load(self, market: Any) -> None:
        """Copy the episode's parameters and ledger balances of a freshly reset market."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> np.ndarray:
        """Play one round with the acting role's actions and return its scaled rewards."""

    @property
    @abstractmethod
    def balances(self) -> np.ndarray:
        """Balances of every ledger account after the last step, (B, A) coins."""


def _ledger_of(market: Any) -> Any:
    """Return the market's :class:`~ledgerzoo.ledger.Ledger` (the markets keep it differently)."""
    book = getattr(market, "book", None)
    if book is not None and hasattr(book, "ledger"):
        return book.ledger
    return market.ledger


class OneToOneKernel(Kernel):
    """Kernel of ``lending_one_to_one_v0`` with analytic followers."""

    market_name = "lending_one_to_one_v0"

    def load(self, market: Any) -> None:
        game = market.game
        batch, n = game.willingness.shape
        ledger = _ledger_of(market)
        self.n = n
        self.batch = batch
        self.willingness = game.willingness.copy()
        self.min_rate = game.min_rate.copy()
        self.rate_span = market.max_rate - self.min_rate
        self.reward_scale = market.reward_scale
        self.income = np.asarray(market.book.income, dtype=np.float64).copy()
        self._balances = ledger.balances.copy()
        self.accounts = self._balances.shape[1]
        self.borrower = market.book.borrower
        self.mint = ledger.mint
        rows = np.arange(batch) * self.accounts
        self.borrower_index = rows + self.borrower
        self.mint_index = rows + self.mint
        self.rows = rows
        self.rates = np.empty((batch, n))
        self.loans = np.empty((batch, n))
        self.scratch = np.empty((batch, n))
        self.borrower_utilities = np.empty((batch, n))
        self.rewards = np.empty((batch, n))
        self.total = np.empty((batch, 1))
        self.has_loan = False
        self.loan_lender = np.zeros(batch, dtype=np.int64)
        self.loan_repayment = np.zeros(batch)

    def step(self, actions: np.ndarray) -> np.ndarray:
        rates, loans, scratch = self.rates, self.loans, self.scratch
        bu, rewards = self.borrower_utilities, self.rewards
        flat = self._balances.reshape(-1)
        # Rate mapping r = r_min + a (r_max - r_min), and the best response x = d / r capped
        # by each lender's spendable balance.
        np.multiply(actions[..., 0], self.rate_span, out=rates)
        rates += self.min_rate
        np.divide(self.willingness, rates, out=loans)
        np.minimum(loans, self._balances[:, : self.n], out=loans)
        # BU_i = x_i exp(-x_i r_i / d_i).
        np.multiply(loans, rates, out=scratch)
        scratch /= self.willingness
        np.negative(scratch, out=scratch)
        np.exp(scratch, out=scratch)
        np.multiply(loans, scratch, out=bu)
        # LU_i = rho_i phi_i with rho_i = N BU_i / sum_j BU_j and phi_i = x_i (r_i - r_min,i).
        np.sum(bu, axis=1, keepdims=True, out=self.total)
        np.subtract(rates, self.min_rate, out=scratch)
        scratch *= loans
        np.multiply(bu, scratch, out=rewards)
        rewards *= self.n * self.reward_scale
        np.divide(rewards, self.total, out=rewards, where=self.total > 0.0)
        rewards[self.total[:, 0] <= 0.0] = 0.0
        optimal = np.argmax(bu, axis=1)
        self.borrower_utility = bu[np.arange(self.batch), optimal]

        # Ledger: last round's loan is repaid with interest, the income is minted, and the
        # optimal lender's principal moves to the borrower.
        if self.has_loan:
            flat[self.rows + self.loan_lender] += self.loan_repayment
            flat[self.borrower_index] -= self.loan_repayment
        flat[self.borrower_index] += self.income
        flat[self.mint_index] -= self.income
        principal = loans[np.arange(self.batch), optimal]
        flat[self.rows + optimal] -= principal
        flat[self.borrower_index] += principal
        self.loan_lender = optimal
        self.loan_repayment = principal * (1.0 + rates[np.arange(self.batch), optimal])
        self.has_loan = True
        return rewards

    @property
    def balances(self) -> np.ndarray:
        return self._balances


class OneToManyKernel(Kernel):
    """Kernel of ``lending_one_to_many_v0`` with analytic followers and uniform pricing."""

    market_name = "lending_one_to_many_v0"

    def load(self, market: Any) -> None:
        from ledgerzoo.envs.lending import investing

        game = market.game
        batch, n = game.min_rate.shape
        ledger = _ledger_of(market)
        low, high = game.rate_bounds(market.pricing)
        self.uniform = market.pricing == "uniform"
        self.low = np.ascontiguousarray(low)
        self.span = np.ascontiguousarray(high - low)
        self.n = n
        self.batch = batch
        self.min_rate = game.min_rate.copy()
        self.max_investment = game.max_investment.copy()
        self.reward = game.reward[:, None].copy()
        self.scaled_reward = game.weight[:, None] * self.reward
        self.valuation = np.broadcast_to(game.valuation, (batch,)).copy()
        self.target = np.broadcast_to(game.target, (batch,)).copy()
        self.failure_utility = float(game.failure_utility)
        self.reward_scale = market.reward_scale
        self.start = investing.START_INVESTMENT * self.max_investment
        self.zero_beta = investing.ZERO_BETA_INVESTMENT * self.max_investment
        self.jacobi_iterations = investing.JACOBI_ITERATIONS
        self.tolerance = investing.FOLLOWER_TOLERANCE
        self.rounding = investing.ROUNDING_ULPS * np.finfo(np.float64).eps
        self.max_iterations = investing.FOLLOWER_MAX_ITERATIONS
        self.income = np.asarray(market.book.income, dtype=np.float64).copy()
        self._balances = ledger.balances.copy()
        self.accounts = self._balances.shape[1]
        self.borrower = market.book.borrower
        self.mint = ledger.mint
        self.rates = np.empty((batch, n))
        self.denominator = np.empty((batch, n))
        self.has_loans = False
        self.repayments = np.zeros((batch, n))

    def _best_response(self, investments: np.ndarray) -> np.ndarray:
        # x_i* = sqrt(w R (beta^2 + x_max beta + R beta) / (w R - x_max (r - r_min))) - beta,
        # clipped to [0, x_max]; x_max where interest alone pays (denominator <= 0).
        beta = investments.sum(axis=1, keepdims=True) - investments
        numerator = self.scaled_reward * beta * (beta + self.max_investment + self.reward)
        root = np.sqrt(numerator / self.safe_denominator) - beta
        np.clip(root, 0.0, self.max_investment, out=root)
        np.copyto(root, self.zero_beta, where=beta <= 0.0)
        np.copyto(root, self.max_investment, where=self.interest_dominates)
        return root

    def step(self, actions: np.ndarray) -> np.ndarray:
        rates = self.rates
        fraction = actions[:, 0, :1] if self.uniform else actions[:, 0, :]
        np.multiply(fraction, self.span, out=rates)
        rates += self.low
        np.subtract(rates, self.min_rate, out=self.denominator)
        self.denominator *= -self.max_investment
        self.denominator += self.scaled_reward
        self.interest_dominates = self.denominator <= 0.0
        self.safe_denominator = np.where(self.interest_dominates, 1.0, self.denominator)

        # The lenders' equilibrium: Jacobi best responses until every instance converges.
        investments = self.start.copy()
        converged = np.zeros(self.batch, dtype=bool)
        for iteration in range(1, self.max_iterations + 1):
            response = self._best_response(investments)
            # The market's rule: each change, less the rounding noise of the lenders' total.
            noise = self.rounding * investments.sum(axis=1, keepdims=True)
            change = np.max((np.abs(response - investments) - noise) / self.max_investment, axis=1)
            step = 1.0 if iteration <= self.jacobi_iterations else 0.5
            update = investments + step * (response - investments)
            np.copyto(investments, update, where=~converged[:, None])
            converged |= change <= self.tolerance
            if converged.all():
                break
        np.minimum(investments, self._balances[:, : self.n], out=investments)

        # BU = eta ln(sum x - X + 1) - sum r x - R, or the failure utility.
        total = investments.sum(axis=1)
        surplus = total - self.target + 1.0
        feasible = surplus > 0.0
        utility = (
            self.valuation * np.log(np.where(feasible, surplus, 1.0))
            - (rates * investments).sum(axis=1)
            - self.reward[:, 0]
        )
        utility = np.where(feasible, utility, self.failure_utility)
        # LU_i = x_i / sum x phi_i R + (r_i - r_min,i) x_i, phi_i = w (x_max + R - x_i) / x_max.
        share = np.divide(
            investments, total[:, None], out=np.zeros_like(investments), where=total[:, None] > 0
        )
        willingness = (
            self.scaled_reward * (self.max_investment + self.reward - investments)
        ) / self.max_investment
        self.lender_utilities = share * willingness + (rates - self.min_rate) * investments

        # Ledger: last round's loans are repaid, the income is minted, the principals move.
        # The reward share R / sum x is folded into each loan's rate.
        balances = self._balances
        if self.has_loans:
            balances[:, : self.n] += self.repayments
            balances[:, self.borrower] -= self.repayments.sum(axis=1)
        balances[:, self.borrower] += self.income
        balances[:, self.mint] -= self.income
        with np.errstate(divide="ignore"):
            reward_rate = np.where(total > 0.0, self.reward[:, 0] / total, 0.0)
        tradable = feasible & np.isfinite(reward_rate)
        principal = np.where(tradable[:, None], investments, 0.0)
        balances[:, : self.n] -= principal
        balances[:, self.borrower] += principal.sum(axis=1)
        self.repayments = principal * (1.0 + rates + reward_rate[:, None])
        self.has_loans = True
        return (utility * self.reward_scale)[:, None]

    @property
    def balances(self) -> np.ndarray:
        return self._balances


class OffloadingKernel(Kernel):
    """Kernel of ``offloading_v0`` with fixed edge prices, without reputation or loans."""

    market_name = "offloading_v0"

    def load(self, market: Any) -> None:
        from ledgerzoo.envs.offloading import model

        self.model = model
        game = market.game
        ledger = market.ledger
        self.game = game
        batch, n = game.weights.shape
        self.batch = batch
        self.n = n
        self.n_edges = game.n_edges
        self.reward_scale = market.reward_scale
        self._balances = ledger.balances.copy()
        accounts = self._balances.shape[1]
        self.accounts = accounts
        # The bills of every action are fixed for the episode, as the prices are.
        provider, _ = model.action_payments(game)
        self.provider_bills = provider
        self.fee_each = game.scenario.relay_fee * game.tasks.task_bits  # (B, N)
        self.route_relays = game.topology.route_relays
        self.mining_income = game.mining_income
        self.rows = (np.arange(batch) * accounts)[:, None]
        self.devices = self.rows + np.arange(n)[None, :]
        self.mint_index = np.arange(batch) * accounts + ledger.mint
        self.clearing = ledger.clearing

    def step(self, actions: np.ndarray) -> np.ndarray:
        model, game = self.model, self.game
        costs = model.device_costs(game, actions)
        relay_income = model.relay_income(game, actions)
        rewards = self.mining_income - costs + relay_income
        rewards *= self.reward_scale

        # Ledger: each device pays its provider (edge k, or the cloud through the clearing
        # account) and each relay on its route, and mining income is minted to it.
        bill = np.take_along_axis(self.provider_bills, actions[:, :, None], axis=2)[:, :, 0]
        payee = np.where(
            actions >= 1 + self.n_edges, self.clearing, self.n + np.maximum(actions - 1, 0)
        )
        relays = np.take_along_axis(self.route_relays, actions[:, :, None, None], axis=2)[
            :, :, 0, :
        ]
        valid = relays < self.n
        fees = np.where(valid, self.fee_each[:, :, None], 0.0)
        paid = bill + fees.sum(axis=2)
        indices = np.concatenate(
            [
                self.devices.ravel(),
                (self.rows + payee).ravel(),
                (self.rows[:, :, None] + np.where(valid, relays, 0)).ravel(),
                self.devices.ravel(),
                self.mint_index,
            ]
        )
        weights = np.concatenate(
            [
                -paid.ravel(),
                bill.ravel(),
                fees.ravel(),
                self.mining_income.ravel(),
                -self.mining_income.sum(axis=1),
            ]
        )
        delta = np.bincount(indices, weights=weights, minlength=self._balances.size)
        self._balances += delta.reshape(self._balances.shape)
        return rewards

    @property
    def balances(self) -> np.ndarray:
        return self._balances


class DataMarketKernel(Kernel):
    """Kernel of ``data_market_v0`` with truthful bidders and relays."""

    market_name = "data_market_v0"

    def load(self, market: Any) -> None:
        from ledgerzoo.envs.data_market import auction, auctioneer, model, relays

        self.auction, self.auctioneer, self.model, self.relays = auction, auctioneer, model, relays
        if market.bidding != "truthful" or not market.has_relays:
            raise ValueError(
                "the data market kernel covers bidding='truthful' with relays=True only; got "
                f"bidding={market.bidding!r}, relays={market.has_relays}"
            )
        data = market.market
        self.data = data
        batch = market.num_instances
        self.batch = batch
        self.n_buyers, self.n_sellers, self.n_relays = (
            market.n_buyers,
            market.n_sellers,
            market.n_relays,
        )
        self.reward_scale = market.reward_scale
        self.efficiency = data.efficiency
        self.paths = data.relay_paths.reshape(
            batch, self.n_buyers * self.n_sellers, data.relay_paths.shape[-1]
        )
        valid = self.paths >= 0
        instance = np.broadcast_to(np.arange(batch)[:, None, None], self.paths.shape)
        self.path_valid = valid
        self.path_index = (instance * self.n_relays + np.where(valid, self.paths, 0))[valid]
        self.no_hops = data.hops == 0
        self.age = data.age.copy()
        self.age_offset = market.age_offset
        self.bids = market.bids.copy()
        self.asks = market.asks.copy()
        self.theta = market.theta.copy()
        self.previous_welfare = market.previous_welfare.copy()
        self.pending_credits = market.pending_credits.copy()
        allocation = market.allocation
        self.delivered_planned = allocation.delivered.copy()
        self.sent = allocation.sent.copy()
        self.warm = (allocation.seller_prices.copy(), allocation.buyer_prices.copy())
        ledger = market.ledger
        self._balances = ledger.balances.copy()
        self.clearing = ledger.clearing
        self.sellers = slice(self.n_buyers, self.n_buyers + self.n_sellers)
        first_relay = self.n_buyers + self.n_sellers
        self.relays_accounts = slice(first_relay, first_relay + self.n_relays)

    def _sum_by_relay(self, values: np.ndarray) -> np.ndarray:
        totals = np.bincount(
            self.path_index,
            weights=values[self.path_valid],
            minlength=self.batch * self.n_relays,
        )
        return totals.reshape(self.batch, self.n_relays)

    def step(self, actions: np.ndarray) -> np.ndarray:
        from ledgerzoo.envs.data_market.market import FORWARD_SILENTLY

        data, model = self.data, self.model
        trades = self.delivered_planned > 0.0
        forward = actions >= FORWARD_SILENTLY
        report = (actions % 2) == 1
        outcome = self.relays.market_relay_outcome(data, forward, report, trades)
        arrived = outcome.delivered.reshape(trades.shape) | self.no_hops
        relay_utility = self._sum_by_relay(outcome.utilities)
        credits = self._sum_by_relay(outcome.credits)
        charges = outcome.sender_charges.reshape(trades.shape).sum(axis=1)
        payments = np.where(trades & arrived, self.bids, 0.0)

        # Ledger: buyers pay sellers, sellers pay the charges to the clearing account, and
        # the clearing account pays last round's credits.
        balances = self._balances
        balances[:, : self.n_buyers] -= payments.sum(axis=2)
        balances[:, self.sellers] += payments.sum(axis=1) - charges
        balances[:, self.clearing] += charges.sum(axis=1) - self.pending_credits.sum(axis=1)
        balances[:, self.relays_accounts] += self.pending_credits
        self.pending_credits = credits

        # The damped truthful update towards the allocation, then next round's allocation,
        # both with the data aged by one more round.
        self.age_offset += 1
        factors = model.value_factors(data.quality, self.age + self.age_offset, data.perishability)
        welfare = model.social_welfare(
            self.sent,
            self.efficiency,
            data.willingness,
            factors,
            data.quadratic_cost,
            data.linear_cost,
        )
        previous = self.previous_welfare
        fell = welfare < previous - self.auction.WELFARE_DROP_TOLERANCE * np.abs(previous)
        self.theta = np.where(
            fell, np.maximum(0.5 * self.theta, self.auction.MIN_DAMPING), self.theta
        )
        self.previous_welfare = welfare
        step = self.theta[:, None, None]
        target_bids = self.auction.truthful_bids(self.delivered_planned, data.willingness, factors)
        target_asks = self.auction.truthful_asks(self.sent, data.quadratic_cost, data.linear_cost)
        self.bids = self.bids + step * (target_bids - self.bids)
        self.asks = self.asks + step * (target_asks - self.asks)
        solution = self.auctioneer.solve_auctioneer(
            self.bids,
            self.asks,
            self.efficiency,
            data.min_demand,
            data.max_demand,
            data.max_supply,
            initial_seller_prices=self.warm[0],
            initial_buyer_prices=self.warm[1],
            check=False,
        )
        self.warm = (solution.seller_prices, solution.buyer_prices)
        self.delivered_planned = solution.delivered
        self.sent = solution.sent
        return relay_utility * self.reward_scale

    @property
    def balances(self) -> np.ndarray:
        return self._balances


KERNELS: dict[str, type[Kernel]] = {
    kernel.market_name: kernel
    for kernel in (OneToOneKernel, OneToManyKernel, OffloadingKernel, DataMarketKernel)
}


@dataclass(frozen=True)
class KernelCheck:
    """Result of comparing a kernel with its market on the same actions.

    Attributes:
        matches: Whether rewards and balances agreed at every compared step.
        steps: Steps compared.
        max_reward_error: Largest absolute difference of a reward.
        max_balance_error: Largest absolute difference of a balance (coins).
        message: What differed first, or an empty string.
    """

    matches: bool
    steps: int
    max_reward_error: float
    max_balance_error: float
    message: str = ""


def compare_step(
    kernel_rewards: np.ndarray,
    kernel_balances: np.ndarray,
    market_rewards: np.ndarray,
    market_balances: np.ndarray,
) -> tuple[float, float, bool]:
    """Return the largest reward and balance differences of one step and whether both pass."""
    reward_error = float(np.max(np.abs(kernel_rewards - market_rewards), initial=0.0))
    balance_error = float(np.max(np.abs(kernel_balances - market_balances), initial=0.0))
    ok = np.allclose(kernel_rewards, market_rewards, rtol=CHECK_RTOL, atol=CHECK_ATOL) and (
        np.allclose(kernel_balances, market_balances, rtol=CHECK_RTOL, atol=CHECK_ATOL)
    )
    return reward_error, balance_error, bool(ok)


def market_balances(market: BatchedMarket) -> np.ndarray:
    """Return the balances of every account of a market's ledger, (B, A) coins."""
    return np.asarray(_ledger_of(market).balances)
