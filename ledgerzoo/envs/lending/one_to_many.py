"""Lending market with one borrower and N investing lenders (the borrower leads).

The stage game and its solvers are in :mod:`ledgerzoo.envs.lending.model` and
:mod:`ledgerzoo.envs.lending.investing`. This module turns them into a repeated market: the
batched core :class:`OneToManyMarket` and its PettingZoo face :class:`LendingOneToManyEnv`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.market import FOLLOWER_MODES, BatchedMarket, Role, write_entry
from ledgerzoo.envs.core.parallel import MarketParallelEnv
from ledgerzoo.envs.core.params import (
    MAX_AGENTS,
    ParamSpec,
    check_maximum_above_default,
    describe_value,
    integer_count,
    parse_param,
    positive_number,
    to_float,
)
from ledgerzoo.envs.core.rows import row_sum
from ledgerzoo.envs.core.spaces import box_from_table, index_of
from ledgerzoo.envs.lending import investing, settlement
from ledgerzoo.envs.lending.investing import OneToManyEquilibrium, OneToManyGame
from ledgerzoo.envs.lending.model import raise_borrower_utility

NAME = "lending_one_to_many_v0"

# Defaults of the scenario (see docs/lending.md for units).
DEFAULT_N_LENDERS = 5
DEFAULT_MIN_RATE = {"low": 0.01, "high": 0.05}  # r_min,i, fraction per loan term
DEFAULT_MAX_INVESTMENT = {"low": 10.0, "high": 30.0}  # x_max,i, coins
DEFAULT_MAX_RATE = 0.3  # r_max, fraction per loan term
DEFAULT_REWARD = {"low": 2.0, "high": 8.0}  # R, coins
DEFAULT_WEIGHT = 1.0  # w
DEFAULT_VALUATION = 30.0  # eta, coins
DEFAULT_TARGET = 20.0  # X, coins
DEFAULT_FAILURE_UTILITY = investing.DEFAULT_FAILURE_UTILITY  # BU of a failed raise, coins
DEFAULT_MAX_CYCLES = 25  # rounds per episode
# Magnitudes the env accepts, so that every observation stays finite in float32.
MAX_COINS = 1e12
# The lenders' willingness w (x_max,i + R - x_i) / x_max,i divides by x_max,i: with this floor
# it stays below 1e12 * 2e12 / 1e-9 = 2e33.
MIN_MAX_INVESTMENT = 1e-9  # coins
MIN_RATE_FLOOR = 1e-9
MAX_RATE_CAP = 1e3

BORROWER_HEADER = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("n_lenders", 1.0, np.inf),
    ("max_rate", 0.0, np.inf),
    ("reward", 0.0, np.inf),
    ("weight", 0.0, np.inf),
    ("valuation", 0.0, np.inf),
    ("target", 0.0, np.inf),
    ("last_total_investment", 0.0, np.inf),
    ("last_raise_failed", 0.0, 1.0),
)
BORROWER_PER_LENDER = (
    ("min_rate_ratio", 0.0, 1.0),
    ("max_investment", 0.0, np.inf),
    ("last_rate_ratio", 0.0, 1.0),
    ("last_investment", 0.0, np.inf),
)
LENDER_OBSERVATION = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("n_lenders", 1.0, np.inf),
    ("max_rate", 0.0, np.inf),
    ("min_rate_ratio", 0.0, 1.0),
    ("max_investment", 0.0, np.inf),
    ("reward", 0.0, np.inf),
    ("weight", 0.0, np.inf),
    ("offered_rate_ratio", 0.0, 1.0),
    ("others_last_investment", 0.0, np.inf),
    ("last_investment", 0.0, np.inf),
    ("last_raise_failed", 0.0, 1.0),
)
BORROWER_INDEX = index_of(BORROWER_HEADER)
LENDER_INDEX = index_of(LENDER_OBSERVATION)


class OneToManyMarket(BatchedMarket):
    """B instances of the one-to-many lending market, stepped on (B, N) arrays.

    Arguments are those of :class:`LendingOneToManyEnv`, plus ``num_instances`` (B).
    """

    name = NAME
    rate_roles = ("borrower",)

    def __init__(
        self,
        n_lenders: int = DEFAULT_N_LENDERS,
        pricing: str = "uniform",
        min_rate: Any = None,
        max_investment: Any = None,
        max_rate: float = DEFAULT_MAX_RATE,
        reward: Any = None,
        weight: Any = DEFAULT_WEIGHT,
        valuation: Any = DEFAULT_VALUATION,
        target: Any = DEFAULT_TARGET,
        failure_utility: float = DEFAULT_FAILURE_UTILITY,
        max_cycles: int = DEFAULT_MAX_CYCLES,
        followers: str = "analytic",
        reward_scale: float = 1.0,
        reference: bool = False,
        ledger: Any = "instant",
        loan_term: int = 1,
        lender_budget: Any = None,
        borrower_balance: float = 0.0,
        data_price: float = 0.0,
        data_income: float | None = None,
        reward_type: str = "utility",
        observe_ledger: bool | None = None,
        num_instances: int = 1,
    ) -> None:
        if followers not in FOLLOWER_MODES:
            raise ValueError(
                f"invalid followers {followers!r}; expected one of {list(FOLLOWER_MODES)}"
            )
        if pricing not in investing.PRICINGS:
            raise ValueError(
                f"invalid pricing {pricing!r}; expected one of {list(investing.PRICINGS)}"
            )
        super().__init__(
            num_instances=num_instances,
            max_cycles=max_cycles,
            two_phase=followers == "learned",
            reward_scale=reward_scale,
        )
        self.n_lenders = n = integer_count(
            "n_lenders", n_lenders, minimum=1, maximum=MAX_AGENTS, unit="lenders"
        )
        if not isinstance(reference, (bool, np.bool_)):
            raise TypeError(f"reference must be True or False, got {reference!r}")
        self.pricing = pricing
        self.followers = followers
        self.reference = bool(reference)
        self.max_rate = positive_number("max_rate", max_rate)
        if self.max_rate > MAX_RATE_CAP:
            raise ValueError(f"invalid max_rate {max_rate!r}: expected at most {MAX_RATE_CAP}")
        check_maximum_above_default(
            "max_rate", self.max_rate, "min_rate", min_rate, DEFAULT_MIN_RATE
        )
        self.failure_utility = _finite_number("failure_utility", failure_utility)

        self.min_rate_spec = parse_param(
            "min_rate",
            DEFAULT_MIN_RATE if min_rate is None else min_rate,
            n,
            minimum=MIN_RATE_FLOOR,
            maximum=self.max_rate,
            strictly_below_maximum=True,
        )
        self.max_investment_spec = parse_param(
            "max_investment",
            DEFAULT_MAX_INVESTMENT if max_investment is None else max_investment,
            n,
            minimum=MIN_MAX_INVESTMENT,
            maximum=MAX_COINS,
        )
        reward_value = DEFAULT_REWARD if reward is None else reward
        self.instance_specs: dict[str, ParamSpec] = {
            "reward": _positive_param("reward", reward_value),
            "weight": _positive_param("weight", weight),
            "valuation": _positive_param("valuation", valuation),
            "target": parse_param("target", target, 1, minimum=0.0, maximum=MAX_COINS),
        }

        self.settings = settlement.parse_settings(
            n,
            ledger,
            loan_term,
            lender_budget,
            borrower_balance,
            data_price,
            data_income,
            reward_type,
            observe_ledger,
        )
        # Every lender can open a loan each round; a round submits at most N repayments, the
        # data purchase, the income and N principals.
        self.book = settlement.LendingLedger(
            self.settings,
            n,
            self.num_instances,
            submissions_per_round=2 * n + 2,
            loans_per_round=n,
            max_cycles=self.max_cycles,
        )
        ledger_lender = settlement.LENDER_LEDGER_OBSERVATION if self.settings.observe else ()
        ledger_borrower = settlement.BORROWER_LEDGER_OBSERVATION if self.settings.observe else ()
        rate_count = 1 if pricing == "uniform" else n
        roles = [
            Role(
                "borrower",
                1,
                box_from_table(BORROWER_HEADER, BORROWER_PER_LENDER * n, ledger_borrower),
                _unit_box(rate_count),
            )
        ]
        if self.two_phase:
            roles.append(
                Role("lender", n, box_from_table(LENDER_OBSERVATION, ledger_lender), _unit_box(1))
            )
        self._roles = tuple(roles)

        shape = (self.num_instances, n)
        ones = np.ones(self.num_instances)
        self.game = OneToManyGame(
            min_rate=np.full(shape, 0.5 * self.max_rate),
            max_investment=np.ones(shape),
            max_rate=np.full(self.num_instances, self.max_rate),
            reward=ones,
            weight=ones,
            valuation=ones,
            target=np.zeros(self.num_instances),
            failure_utility=self.failure_utility,
        )
        self._equilibrium: OneToManyEquilibrium | None = None
        # Values computed once per game, and the game they belong to.
        self._bounds_game: OneToManyGame | None = None
        self._bounds = (np.zeros(shape), np.zeros(shape))
        self._borrower_template_game: OneToManyGame | None = None
        self._borrower_template_array = np.zeros((0, 1, 0), dtype=np.float32)
        self._lender_template_game: OneToManyGame | None = None
        self._lender_template_array = np.zeros((0, n, 0), dtype=np.float32)
        self._clear_history()

    # ----------------------------------------------------------------------------------------

    @property
    def roles(self) -> tuple[Role, ...]:
        return self._roles

    def acting_roles(self) -> tuple[str, ...]:
        if self.two_phase and self.phase == keys.FOLLOWERS_PHASE:
            return ("lender",)
        return ("borrower",)

    @property
    def equilibrium(self) -> OneToManyEquilibrium:
        """The analytic equilibrium of every instance's current episode (solved on demand)."""
        if self._equilibrium is None:
            self._equilibrium = investing.solve(self.game, self.pricing)
        return self._equilibrium

    def solve(self, method: str = "reference") -> OneToManyEquilibrium:
        """Solve the current episode's game of every instance with the named leader method."""
        return investing.solve(self.game, self.pricing, method)

    def _clear_history(self) -> None:
        shape = (self.num_instances, self.n_lenders)
        self.has_history = False
        self.last_rates = np.zeros(shape)
        self.last_investments = np.zeros(shape)
        self.last_failed = np.zeros(self.num_instances, dtype=bool)
        self.posted_rates = np.zeros(shape)
        self.last_borrower_utility: np.ndarray | None = None
        self.last_lender_utilities: np.ndarray | None = None

    def _reset_episode(self, generators: Sequence[np.random.Generator]) -> None:
        # One draw per instance from its own generator, so instance b of a vector env matches
        # the PettingZoo env reset with b's seed. NOTE: a Python loop over instances, once per
        # episode (not per step).
        n = self.n_lenders
        # The budgets' draws come last, so the game's draws do not depend on the ledger.
        count = 2 * n + len(self.instance_specs) + self.book.budget_draw_count
        draws = np.empty((len(generators), count))
        for row, rng in zip(draws, generators, strict=True):
            rng.random(out=row)
        per_instance = {
            name: spec.sample(draws[:, 2 * n + k : 2 * n + k + 1])[:, 0]
            for k, (name, spec) in enumerate(self.instance_specs.items())
        }
        self.game = OneToManyGame(
            min_rate=self.min_rate_spec.sample(draws[:, :n]),
            max_investment=self.max_investment_spec.sample(draws[:, n : 2 * n]),
            max_rate=np.full(self.num_instances, self.max_rate),
            reward=per_instance["reward"],
            weight=per_instance["weight"],
            valuation=per_instance["valuation"],
            target=per_instance["target"],
            failure_utility=self.failure_utility,
        )
        self._equilibrium = investing.solve(self.game, self.pricing) if self.reference else None
        # Without a lender_budget every lender can invest x_max,i every round, and without a
        # data_income the borrower earns the data price plus the most it can owe in a round
        # (the reward R and r_max times every lender's x_max), so nothing ever binds.
        x_max = self.game.max_investment
        self.book.reset(
            draws[:, draws.shape[1] - n :],
            slack_budget=self.max_cycles * x_max,
            slack_income=self.settings.data_price
            + self.game.reward
            + self.max_rate * row_sum(x_max),
            generators=generators,
        )
        self._clear_history()

    # ----------------------------------------------------------------------------------------

    def rates_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map borrower actions (B, 1, k) in [0, 1] onto rates (B, N) in the pricing's interval."""
        low, high = self._rate_bounds()
        fraction = np.broadcast_to(actions[:, 0, :].astype(np.float64), low.shape)
        return low + fraction * (high - low)

    def _rate_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the game's rate bounds under the market's pricing, computed once per game."""
        if self._bounds_game is not self.game:
            self._bounds = self.game.rate_bounds(self.pricing)
            self._bounds_game = self.game
        return self._bounds

    def actions_from_rates(self, rates: np.ndarray) -> np.ndarray:
        """Invert :meth:`rates_from_actions`, (B, N) -> (B, 1, k) float32 in [0, 1]."""
        low, high = self._rate_bounds()
        fraction = np.clip((rates - low) / (high - low), 0.0, 1.0)
        if self.pricing == "uniform":
            fraction = fraction[:, :1]
        return fraction.astype(np.float32)[:, None, :]

    def _step_phase(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        if "borrower" in actions:
            rates = self.rates_from_actions(actions["borrower"])
            if self.two_phase:
                # Leaders' step: the rates are posted, and the lenders invest in the next step.
                self.posted_rates = rates
                return {}, {"borrower": {keys.RATES: rates[:, None, :]}}
            # Each lender's best response is capped by its budget (None while budgets are slack).
            budget = self.book.budgets() if self.settings.lender_budget is not None else None
            investments = investing.investor_equilibrium(
                rates, self.game, budget=budget
            ).investments
        else:
            rates = self.posted_rates
            investments = actions["lender"][..., 0].astype(np.float64) * self.game.max_investment
        return self._settle_round(rates, investments)

    def _settle_round(
        self, rates: np.ndarray, requested: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        game = self.game
        # A lender lends at most its budget.
        budgets = self.book.budgets()
        investments = np.minimum(requested, budgets)
        borrower_utility, feasible = raise_borrower_utility(
            investments, rates, game.target, game.reward, game.valuation, game.failure_utility
        )
        # A failed raise moves no coins. Otherwise each investor lends its investment, and its
        # repayment adds its share of the reward R, x_i (1 + r_i) + R x_i / sum_j x_j, which is
        # a loan at rate r_i + R / sum_j x_j.
        total = row_sum(investments)[:, None]
        with np.errstate(over="ignore"):
            share = np.divide(
                game.reward[:, None], total, out=np.zeros_like(total), where=total > 0.0
            )
        # Investments so small that R / sum_j x_j overflows cannot carry the reward as a rate.
        tradable = feasible[:, None] & np.isfinite(share)
        principal = np.where(tradable, investments, 0.0)
        settled = self.book.settle(
            np.broadcast_to(np.arange(self.n_lenders), investments.shape),
            principal,
            rates + np.where(tradable, share, 0.0),
        )
        ledger_lender, ledger_borrower = settlement.round_infos(
            settled, self.book.infos_view(), budgets, self.n_lenders
        )
        # A principal the ledger rejected (its queue was full) was not lent, so the round's
        # utilities count only what moved.
        rejected = settlement.rejected_loans(principal, settled.lent)
        if rejected.any():
            investments = np.where(rejected, 0.0, investments)
            borrower_utility, feasible = raise_borrower_utility(
                investments, rates, game.target, game.reward, game.valuation, game.failure_utility
            )
        others = row_sum(investments)[:, None] - investments
        lender_utilities = investing.investor_utility_against_game(investments, others, rates, game)
        welfare = row_sum(lender_utilities) + borrower_utility
        borrower_infos: dict[str, np.ndarray] = {
            # The mean as np.mean computes it: the sum divided by the count.
            keys.RATE: row_sum(rates)[:, None] / self.n_lenders,
            keys.RATES: rates[:, None, :],
            keys.INVESTMENTS: investments[:, None, :],
            keys.UTILITY: borrower_utility[:, None],
            keys.BORROWER_UTILITY: borrower_utility[:, None],
            keys.RAISE_FAILED: ~feasible[:, None],
            keys.WELFARE: welfare[:, None],
            **ledger_borrower,
        }
        cashflow = self.settings.reward_type == "cashflow"
        rewards = {
            "borrower": ledger_borrower[keys.CASHFLOW] if cashflow else borrower_utility[:, None]
        }
        infos = {"borrower": borrower_infos}
        if self.two_phase:
            n = self.n_lenders
            # Budgets bound the followers' deviations and equilibrium as they bound the round.
            budget = budgets if self.settings.lender_budget is not None else None
            response, best = investing.investor_best_response_utilities(
                investments, rates, game, budget
            )
            follower_equilibrium = investing.investor_equilibrium(
                rates, game, budget=budget
            ).investments
            infos["lender"] = {
                keys.RATE: rates,
                keys.INVESTMENT: investments,
                keys.UTILITY: lender_utilities,
                keys.BORROWER_UTILITY: np.repeat(borrower_utility[:, None], n, axis=1),
                keys.RAISE_FAILED: np.repeat(~feasible[:, None], n, axis=1),
                keys.WELFARE: np.repeat(welfare[:, None], n, axis=1),
                keys.FOLLOWER_RESPONSE: follower_equilibrium,
                keys.BEST_RESPONSE_INVESTMENT: response,
                keys.BEST_RESPONSE_UTILITY: best,
                **ledger_lender,
            }
            rewards["lender"] = ledger_lender[keys.CASHFLOW] if cashflow else lender_utilities
        if self.reference:
            self._add_reference(borrower_utility, infos)

        self.last_rates = rates
        self.last_investments = investments
        self.last_failed = ~feasible
        self.last_borrower_utility = borrower_utility
        self.last_lender_utilities = lender_utilities
        self.has_history = True
        return rewards, infos

    def _add_reference(
        self, borrower_utility: np.ndarray, infos: dict[str, dict[str, np.ndarray]]
    ) -> None:
        """Add the episode's Stackelberg equilibrium to the infos.

        The borrower's best-response utility is the leader's optimum BU* (the followers answer
        any rates with their equilibrium), or its actual utility where that is higher.
        """
        solution = self.equilibrium
        borrower = infos["borrower"]
        borrower[keys.BEST_RESPONSE_UTILITY] = np.maximum(
            solution.borrower_utility, borrower_utility
        )[:, None]
        for key, value in (
            (keys.RATE, row_sum(solution.rates)[:, None] / self.n_lenders),
            (keys.RATES, solution.rates[:, None, :]),
            (keys.INVESTMENTS, solution.investments[:, None, :]),
            (keys.UTILITY, solution.borrower_utility[:, None]),
            (keys.BORROWER_UTILITY, solution.borrower_utility[:, None]),
            (keys.RAISE_FAILED, ~solution.feasible[:, None]),
            (keys.WELFARE, solution.welfare[:, None]),
        ):
            borrower[f"{keys.REFERENCE}/{key}"] = value
        if "lender" in infos:
            n = self.n_lenders
            lender = infos["lender"]
            for key, value in (
                (keys.RATE, solution.rates),
                (keys.INVESTMENT, solution.investments),
                (keys.UTILITY, solution.lender_utilities),
                (keys.BORROWER_UTILITY, np.repeat(solution.borrower_utility[:, None], n, axis=1)),
                (keys.WELFARE, np.repeat(solution.welfare[:, None], n, axis=1)),
            ):
                lender[f"{keys.REFERENCE}/{key}"] = value

    # ----------------------------------------------------------------------------------------

    def observe(self) -> dict[str, np.ndarray]:
        observations = {"borrower": self._observe_borrower()}
        if self.two_phase:
            observations["lender"] = self._observe_lenders()
        return observations

    def _observe_borrower(self) -> np.ndarray:
        n = self.n_lenders
        space = self._roles[0].observation_space
        obs = self._borrower_template().copy()
        index = BORROWER_INDEX
        write_entry(obs, index["phase"], self.phase, space)
        write_entry(obs, index["round_progress"], self.round / self.max_cycles, space)
        write_entry(obs, index["has_history"], float(self.has_history), space)
        total = row_sum(self.last_investments)
        write_entry(obs, index["last_total_investment"], total[:, None], space)
        write_entry(obs, index["last_raise_failed"], self.last_failed[:, None], space)
        header, width = len(BORROWER_HEADER), len(BORROWER_PER_LENDER)
        rates = slice(header + 2, header + width * n, width)
        write_entry(obs, rates, (self.last_rates / self.max_rate)[:, None, :], space)
        investments = slice(header + 3, header + width * n, width)
        write_entry(obs, investments, self.last_investments[:, None, :], space)
        if self.settings.observe:
            entries = settlement.borrower_observation(self.book.view(), n)
            first = header + width * n
            write_entry(obs, slice(first, first + entries.shape[-1]), entries[:, None, :], space)
        return obs

    def _borrower_template(self) -> np.ndarray:
        """Borrower observations with the episode's constant entries set and the others 0.

        Built once per game and copied by every observation, so that a step writes only the
        entries that change.
        """
        if self._borrower_template_game is not self.game:
            game, n = self.game, self.n_lenders
            space = self._roles[0].observation_space
            template = np.zeros((self.num_instances, 1, space.shape[0]), dtype=np.float32)
            index = BORROWER_INDEX
            write_entry(template, index["n_lenders"], n, space)
            write_entry(template, index["max_rate"], self.max_rate, space)
            write_entry(template, index["reward"], game.reward[:, None], space)
            write_entry(template, index["weight"], game.weight[:, None], space)
            write_entry(template, index["valuation"], game.valuation[:, None], space)
            write_entry(template, index["target"], game.target[:, None], space)
            header, width = len(BORROWER_HEADER), len(BORROWER_PER_LENDER)
            min_rates = slice(header, header + width * n, width)
            write_entry(template, min_rates, (game.min_rate / self.max_rate)[:, None, :], space)
            max_investments = slice(header + 1, header + width * n, width)
            write_entry(template, max_investments, game.max_investment[:, None, :], space)
            self._borrower_template_array = template
            self._borrower_template_game = game
        return self._borrower_template_array

    def _observe_lenders(self) -> np.ndarray:
        space = self._roles[1].observation_space
        obs = self._lender_template().copy()
        index = LENDER_INDEX
        write_entry(obs, index["phase"], self.phase, space)
        write_entry(obs, index["round_progress"], self.round / self.max_cycles, space)
        write_entry(obs, index["has_history"], float(self.has_history), space)
        # In the lenders' own step they see this round's offer, else last round's.
        offered = self.posted_rates if self.phase == keys.FOLLOWERS_PHASE else self.last_rates
        write_entry(obs, index["offered_rate_ratio"], offered / self.max_rate, space)
        total = row_sum(self.last_investments)[:, None]
        others = total - self.last_investments
        write_entry(obs, index["others_last_investment"], others, space)
        write_entry(obs, index["last_investment"], self.last_investments, space)
        write_entry(obs, index["last_raise_failed"], self.last_failed[:, None], space)
        if self.settings.observe:
            entries = settlement.lender_observation(self.book.view(), self.n_lenders)
            first = len(LENDER_OBSERVATION)
            write_entry(obs, slice(first, first + entries.shape[-1]), entries, space)
        return obs

    def _lender_template(self) -> np.ndarray:
        """Lender observations with the episode's constant entries set (see _borrower_template)."""
        if self._lender_template_game is not self.game:
            game, n = self.game, self.n_lenders
            space = self._roles[1].observation_space
            template = np.zeros((self.num_instances, n, space.shape[0]), dtype=np.float32)
            index = LENDER_INDEX
            write_entry(template, index["n_lenders"], n, space)
            write_entry(template, index["max_rate"], self.max_rate, space)
            write_entry(template, index["min_rate_ratio"], game.min_rate / self.max_rate, space)
            write_entry(template, index["max_investment"], game.max_investment, space)
            write_entry(template, index["reward"], game.reward[:, None], space)
            write_entry(template, index["weight"], game.weight[:, None], space)
            self._lender_template_array = template
            self._lender_template_game = game
        return self._lender_template_array

    def equilibrium_actions(self) -> dict[str, np.ndarray]:
        actions = {"borrower": self.actions_from_rates(self.equilibrium.rates)}
        if self.two_phase:
            rates = (
                self.posted_rates if self.phase == keys.FOLLOWERS_PHASE else self.equilibrium.rates
            )
            investments = investing.investor_equilibrium(rates, self.game).investments
            actions["lender"] = _investment_actions(investments, self.game)
        return actions

    def best_response_actions(
        self, observations: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Compute best responses from observations.

        Lenders respond to the offered rate and the others' last investments with the closed
        form. The borrower, the leader, has no myopic best response apart from its optimum, so
        it plays the episode's equilibrium rates.
        """
        actions: dict[str, np.ndarray] = {}
        if "borrower" in observations:
            actions["borrower"] = self.actions_from_rates(self.equilibrium.rates)
        if "lender" in observations:
            obs = np.asarray(observations["lender"], dtype=np.float64)
            rates = obs[..., LENDER_INDEX["offered_rate_ratio"]] * self.max_rate
            others = obs[..., LENDER_INDEX["others_last_investment"]]
            # Before any investment is public, assume every rival starts like this lender.
            own_max = obs[..., LENDER_INDEX["max_investment"]]
            count = obs[..., LENDER_INDEX["n_lenders"]]
            guess = investing.START_INVESTMENT * own_max * np.maximum(count - 1.0, 1.0)
            others = np.where(others > 0.0, others, guess)
            response = investing.investor_best_response(others, rates, self.game)
            actions["lender"] = _investment_actions(response, self.game)
        return actions

    def render_text(self) -> str:
        """Format the last round of instance 0 as a text table."""
        lines = [
            f"{self.name} ({self.pricing} pricing)  round {self.round}/{self.max_cycles}  "
            f"phase {self.phase}",
            f"{'lender':<10}{'r_min':>8}{'x_max':>9}{'rate':>9}{'invested':>10}{'utility':>10}",
        ]
        utilities = self.last_lender_utilities
        for i in range(self.n_lenders):
            rate = f"{self.last_rates[0, i]:9.4f}" if self.has_history else f"{'-':>9}"
            invested = f"{self.last_investments[0, i]:10.3f}" if self.has_history else f"{'-':>10}"
            utility = f"{utilities[0, i]:10.4f}" if utilities is not None else f"{'-':>10}"
            lines.append(
                f"{'lender_' + str(i):<10}{self.game.min_rate[0, i]:8.4f}"
                f"{self.game.max_investment[0, i]:9.2f}{rate}{invested}{utility}"
            )
        if self.last_borrower_utility is not None:
            status = "failed" if self.last_failed[0] else "succeeded"
            lines.append(
                f"borrower utility {self.last_borrower_utility[0]:.4f}  raise {status} "
                f"(total {self.last_investments[0].sum():.3f}, target {self.game.target[0]:.3f})"
            )
        return "\n".join(lines)


def _positive_param(name: str, value: Any) -> ParamSpec:
    """Parse a per-episode scalar that must be above 0 (a number or a {low, high} range)."""
    return parse_param(name, value, 1, minimum=0.0, strictly_above_minimum=True, maximum=MAX_COINS)


def _investment_actions(investments: np.ndarray, game: OneToManyGame) -> np.ndarray:
    return np.clip(investments / game.max_investment, 0.0, 1.0).astype(np.float32)[..., None]


def _unit_box(size: int) -> gymnasium.spaces.Box:
    return gymnasium.spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"invalid {name} {value!r}: expected a finite number")
    number = to_float(value)
    if not np.isfinite(number):
        raise ValueError(f"invalid {name} {describe_value(value)}: expected a finite number")
    return number


class LendingOneToManyEnv(MarketParallelEnv):
    """One borrower raises funds from N investing lenders: the borrower leads by setting rates.

    ## Description

    A borrower needs at least X coins. It offers interest rates to N lenders, one rate for all
    (``pricing="uniform"``) or one per lender (``pricing="differentiated"``), and shares a
    reward R among them in proportion to what they invest. Each lender then decides how much
    to invest, up to x_max,i. This is the one-to-many loan game of W. Chen's InPlus Lab (Sun
    Yat-sen University); the utilities are in :mod:`ledgerzoo.envs.lending.model` and
    docs/lending.md.

    With ``followers="analytic"`` (default) the lenders' Nash equilibrium given the rates is
    solved inside the step, one step is one round and the only agent is borrower_0. With
    ``followers="learned"`` the lenders are the agents lender_0..lender_{N-1} and a round is two
    steps. In the leaders' step (phase 0) only the borrower's action takes effect. In the
    followers' step (phase 1) only the lenders' actions take effect, after they observe the
    offered rates. Every live agent acts in every step.

    Every round settles on a ledger (:mod:`ledgerzoo.envs.lending.settlement`): a lender
    invests at most its budget (analytic lenders best-respond within it). Unless the raise
    fails, every investor lends its investment and is repaid x_i (1 + r_i) plus its share of R
    after ``loan_term`` rounds, or loses it if the borrower's spendable balance is short. With
    the default settings nothing binds and the rewards are the static game's.

    ## Action space

    Borrower: ``Box(0, 1, (k,), float32)`` with k = 1 under uniform pricing and k = N under
    differentiated pricing. Uniform: a maps onto r = r_lo + a (r_max - r_lo) with
    r_lo = max_i r_min,i. Differentiated: a_i maps onto r_i = r_min,i + a_i (r_max - r_min,i).

    Lender (learned followers only): ``Box(0, 1, (1,), float32)``; a maps onto the investment
    x_i = a x_max,i coins.

    Out-of-box actions are clipped and counted in ``info[agent]["clipped_actions"]``; NaN,
    infinite or wrongly shaped actions raise ValueError.

    ## Observation space

    Borrower, ``Box(float32)`` of 11 + 4N entries. "Last" is what the public ledger shows of
    the previous round (zeros before the first round).

    | index | meaning | unit | bounds |
    |---|---|---|---|
    | 0 | phase: 0 leaders' step, 1 followers' step | - | [0, 1] |
    | 1 | round / max_cycles | - | [0, 1] |
    | 2 | 1 once a round has been played in this episode | - | [0, 1] |
    | 3 | number of lenders N | - | [1, inf) |
    | 4 | rate cap r_max | rate | [0, inf) |
    | 5 | reward R | coins | [0, inf) |
    | 6 | willingness weight w | - | [0, inf) |
    | 7 | valuation eta | coins | [0, inf) |
    | 8 | target X | coins | [0, inf) |
    | 9 | last round's total investment | coins | [0, inf) |
    | 10 | 1 if last round's raise failed | - | [0, 1] |
    | 11 + 4i | lender i's r_min,i / r_max | - | [0, 1] |
    | 12 + 4i | lender i's x_max,i | coins | [0, inf) |
    | 13 + 4i | last rate offered to lender i / r_max | - | [0, 1] |
    | 14 + 4i | lender i's last investment | coins | [0, inf) |

    The leader observes its followers' parameters, as the Stackelberg model assumes.

    Lender (learned followers only), ``Box(float32)`` of 13 entries, whatever N is: phase,
    round / max_cycles, history flag, N, r_max, own r_min,i / r_max, own x_max,i, R, w, the rate
    offered to it / r_max (this round's in its own step, last round's otherwise), the others'
    last total investment, its own last investment, and whether last round's raise failed.

    With ``observe_ledger`` on, every observation ends with four ledger entries (coins, or a
    count): a lender's budget (its spendable balance), the coins on their way to it, the
    principal it has lent and not yet been repaid, and the borrower's defaults so far; the
    borrower's balance, the coins on their way to it, its outstanding debt, and its defaults.

    ## Rewards

    The borrower receives BU (coins), or ``failure_utility`` when the raise fails (total
    investment at most X - 1). Lender i receives LU_i (coins). Rewards are paid once per round
    and multiplied by ``reward_scale``; infos carry the unscaled utilities.
    With ``reward_type="cashflow"`` every agent is paid instead the coins it received minus
    the coins it paid in transactions that confirmed this round, so confirmation delays and
    defaults show in the returns.

    ## Starting state

    Each episode draws r_min,i and x_max,i per lender, and R, w, eta and X per episode, from
    the scenario with the env's generator, seeded by ``reset(seed)``.

    ## Episode end

    No termination. The episode is truncated after ``max_cycles`` rounds, for every agent.

    ## Info

    The borrower's info holds rate (the mean offered rate), rates, investments, utility,
    borrower_utility, raise_failed and welfare. With learned followers each lender's info
    holds its rate, investment, utility, borrower_utility, raise_failed, welfare,
    follower_response (its investment in the lenders' equilibrium for the offered rates),
    best_response_investment and best_response_utility.
    With ``reference=True`` the infos add, under ``reference``, the episode's Stackelberg
    equilibrium, and the borrower's best_response_utility is BU* (or its utility, if higher).

    Once a round settles, the infos also carry its ledger entries (coins): lenders get lent,
    budget, balance, pending_incoming, pending_outgoing, cashflow, repaid, lost_to_default and
    defaults (the borrower's count), and the borrower gets borrowed, balance, pending_incoming,
    pending_outgoing, cashflow, data_bought, defaulted and defaults.

    ## Arguments

    - ``n_lenders`` (int >= 1, default 5): N.
    - ``pricing`` ("uniform" or "differentiated", default "uniform").
    - ``min_rate`` (default {low: 0.01, high: 0.05}): r_min,i: a number, a {low, high} range
      drawn per episode, or a list of N numbers, in [1e-9, r_max).
    - ``max_investment`` (default {low: 10, high: 30}): x_max,i in coins, same forms, > 0.
    - ``max_rate`` (float, default 0.3): r_max, in (0, 1000].
    - ``reward`` (default {low: 2, high: 8}): R in coins, a number or a range, > 0.
    - ``weight`` (default 1), ``valuation`` (default 30 coins), ``target`` (default 20 coins):
      w, eta and X, each a number or a range (w and eta > 0, X >= 0).
    - ``failure_utility`` (float, default -50): the borrower's utility of a failed raise.
    - ``max_cycles`` (int, default 25): rounds per episode.
    - ``followers`` ("analytic" or "learned", default "analytic").
    - ``reward_scale`` (float > 0, default 1): factor on rewards only.
    - ``reference`` (bool, default False): add equilibrium values to the infos.
    - ``ledger`` (default "instant"): the ledger's mode, "instant", "chain" or "tangle", or a
      mapping of its settings (see docs/ledger.md), for example
      ``{mode: chain, block_interval: 2, confirmations: 1}``.
    - ``loan_term`` (int >= 1, default 1): rounds from a loan's opening to its repayment.
    - ``lender_budget`` (default None): each lender's starting balance in coins, in the forms
      of the scenario values; None gives a balance that no episode can exhaust.
    - ``borrower_balance`` (float >= 0, default 0): the borrower's starting balance; 0 is the
      cold start.
    - ``data_price`` (float >= 0, default 0): coins the borrower pays for each round's data.
    - ``data_income`` (float >= 0 or None, default None): coins the borrower earns for each
      round's data it buys, spendable once confirmed; None covers the data price and the
      most interest the borrower can owe in a round.
    - ``reward_type`` ("utility" or "cashflow", default "utility").
    - ``observe_ledger`` (bool or None, default None): add the ledger entries to the
      observations; None adds them unless every ledger setting is at its default.
    - ``render_mode`` (None, "ansi" or "human").

    ## Version history

    - v0: first release. The ledger arguments came later, with defaults that leave the
      spaces, rewards and dynamics of the first release unchanged.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human"],
        "name": NAME,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_lenders: int = DEFAULT_N_LENDERS,
        pricing: str = "uniform",
        min_rate: Any = None,
        max_investment: Any = None,
        max_rate: float = DEFAULT_MAX_RATE,
        reward: Any = None,
        weight: Any = DEFAULT_WEIGHT,
        valuation: Any = DEFAULT_VALUATION,
        target: Any = DEFAULT_TARGET,
        failure_utility: float = DEFAULT_FAILURE_UTILITY,
        max_cycles: int = DEFAULT_MAX_CYCLES,
        followers: str = "analytic",
        reward_scale: float = 1.0,
        reference: bool = False,
        ledger: Any = "instant",
        loan_term: int = 1,
        lender_budget: Any = None,
        borrower_balance: float = 0.0,
        data_price: float = 0.0,
        data_income: float | None = None,
        reward_type: str = "utility",
        observe_ledger: bool | None = None,
        render_mode: str | None = None,
    ) -> None:
        market = OneToManyMarket(
            n_lenders=n_lenders,
            pricing=pricing,
            min_rate=min_rate,
            max_investment=max_investment,
            max_rate=max_rate,
            reward=reward,
            weight=weight,
            valuation=valuation,
            target=target,
            failure_utility=failure_utility,
            max_cycles=max_cycles,
            followers=followers,
            reward_scale=reward_scale,
            reference=reference,
            ledger=ledger,
            loan_term=loan_term,
            lender_budget=lender_budget,
            borrower_balance=borrower_balance,
            data_price=data_price,
            data_income=data_income,
            reward_type=reward_type,
            observe_ledger=observe_ledger,
            num_instances=1,
        )
        super().__init__(market, render_mode=render_mode)
