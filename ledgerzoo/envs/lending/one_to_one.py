"""Lending market with one borrower and N competing lenders (lenders lead).

The stage game and its equilibrium are in :mod:`ledgerzoo.envs.lending.model` and
:mod:`ledgerzoo.envs.lending.equilibrium`; this module turns them into a repeated market: the
batched core :class:`OneToOneMarket` (B instances, the math on (B, N) arrays) and its
PettingZoo face :class:`LendingOneToOneEnv`.
"""

from __future__ import annotations

import dataclasses
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
from ledgerzoo.envs.core.spaces import box_from_table
from ledgerzoo.envs.lending import equilibrium, settlement
from ledgerzoo.envs.lending.equilibrium import OneToOneEquilibrium, OneToOneGame
from ledgerzoo.envs.lending.model import prices_from_rates

NAME = "lending_one_to_one_v0"

# Defaults of the scenario (see docs/lending.md for units).
DEFAULT_N_LENDERS = 5
DEFAULT_WILLINGNESS = {"low": 1.0, "high": 5.0}  # d_i, coins x rate
DEFAULT_MIN_RATE = {"low": 0.02, "high": 0.10}  # r_min,i, fraction per loan term
DEFAULT_MAX_RATE = 0.5  # r_max, fraction per loan term
DEFAULT_MAX_CYCLES = 25  # rounds per episode
# Without a max_loan, a learned borrower's action maps onto [min_loan, LOAN_CAP_FACTOR * d_i /
# r_min,i]: twice the largest loan d_i y_i that a best response can ask for.
LOAN_CAP_FACTOR = 2.0
# Magnitudes the env accepts. Loans reach d / r_min, up to 1e18 coins here, so every
# observation stays finite in float32 (whose largest value is about 3.4e38).
MAX_WILLINGNESS = 1e9  # coins x rate
# The competition index r_min,i sum_j x_j / d_i divides by d_i: with this floor it stays below
# 1e3 * 1e6 lenders * 2e18 coins / 1e-9 = 2e36, inside float32.
MIN_WILLINGNESS = 1e-9  # coins x rate
MIN_RATE_FLOOR = 1e-9  # fraction per loan term
MAX_RATE_CAP = 1e3  # fraction per loan term
MAX_LOAN_CAP = 1e18  # coins

# Lender observation: (name, low, high), in order.
LENDER_OBSERVATION: tuple[tuple[str, float, float], ...] = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("n_lenders", 1.0, np.inf),
    ("willingness", 0.0, np.inf),
    ("max_rate", 0.0, np.inf),
    ("min_rate_ratio", 0.0, 1.0),
    ("last_rate_ratio", 0.0, 1.0),
    ("others_mean_rate_ratio", 0.0, 1.0),
    ("others_min_rate_ratio", 0.0, 1.0),
    ("others_max_rate_ratio", 0.0, 1.0),
    ("last_loan_share", 0.0, 1.0),
    ("competition_index", 0.0, np.inf),
    ("was_optimal_lender", 0.0, 1.0),
)
LENDER_INDEX = {name: index for index, (name, _, _) in enumerate(LENDER_OBSERVATION)}
# Borrower observation: these entries, then (willingness, rate_ratio, max_loan) per lender.
BORROWER_HEADER: tuple[tuple[str, float, float], ...] = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("max_rate", 0.0, np.inf),
    ("min_loan", 0.0, np.inf),
)
BORROWER_PER_LENDER: tuple[tuple[str, float, float], ...] = (
    ("willingness", 0.0, np.inf),
    ("rate_ratio", 0.0, 1.0),
    ("max_loan", 0.0, np.inf),
)


class OneToOneMarket(BatchedMarket):
    """B instances of the one-to-one lending market, stepped on (B, N) arrays.

    Arguments are those of :class:`LendingOneToOneEnv`, plus ``num_instances`` (B).
    """

    name = NAME
    rate_roles = ("lender",)

    def __init__(
        self,
        n_lenders: int = DEFAULT_N_LENDERS,
        willingness: Any = None,
        min_rate: Any = None,
        max_rate: float = DEFAULT_MAX_RATE,
        min_loan: float = 0.0,
        max_loan: Any = None,
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
        super().__init__(
            num_instances=num_instances,
            max_cycles=max_cycles,
            two_phase=followers == "learned",
            reward_scale=reward_scale,
        )
        self.n_lenders = integer_count(
            "n_lenders", n_lenders, minimum=1, maximum=MAX_AGENTS, unit="lenders"
        )
        self.followers = followers
        if not isinstance(reference, (bool, np.bool_)):
            raise TypeError(f"reference must be True or False, got {reference!r}")
        self.reference = bool(reference)
        self.max_rate = positive_number("max_rate", max_rate)
        if self.max_rate > MAX_RATE_CAP:
            raise ValueError(
                f"invalid max_rate {max_rate!r}: expected at most {MAX_RATE_CAP} (a fraction of "
                "the principal per loan term)"
            )
        check_maximum_above_default(
            "max_rate", self.max_rate, "min_rate", min_rate, DEFAULT_MIN_RATE
        )
        if isinstance(min_loan, bool) or not isinstance(
            min_loan, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"invalid min_loan {min_loan!r}: expected a finite number >= 0")
        self.min_loan = to_float(min_loan)
        if not 0.0 <= self.min_loan <= MAX_LOAN_CAP:
            raise ValueError(
                f"invalid min_loan {describe_value(min_loan)}: expected a number of coins in "
                f"[0, {MAX_LOAN_CAP:g}]"
            )
        n = self.n_lenders
        self.willingness_spec = parse_param(
            "willingness",
            DEFAULT_WILLINGNESS if willingness is None else willingness,
            n,
            minimum=MIN_WILLINGNESS,
            maximum=MAX_WILLINGNESS,
        )
        self.min_rate_spec = parse_param(
            "min_rate",
            DEFAULT_MIN_RATE if min_rate is None else min_rate,
            n,
            minimum=MIN_RATE_FLOOR,
            maximum=self.max_rate,
            strictly_below_maximum=True,
        )
        self.max_loan_spec: ParamSpec | None = None
        if max_loan is not None:
            self.max_loan_spec = parse_param(
                "max_loan",
                max_loan,
                n,
                minimum=self.min_loan,
                strictly_above_minimum=True,
                maximum=MAX_LOAN_CAP,
            )

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
        # One loan opens per round; a round submits at most one repayment, the data purchase,
        # the income and the principal.
        self.book = settlement.LendingLedger(
            self.settings,
            n,
            self.num_instances,
            submissions_per_round=4,
            loans_per_round=1,
            max_cycles=self.max_cycles,
        )
        ledger_lender = settlement.LENDER_LEDGER_OBSERVATION if self.settings.observe else ()
        ledger_borrower = settlement.BORROWER_LEDGER_OBSERVATION if self.settings.observe else ()
        roles = [
            Role(
                "lender",
                n,
                box_from_table(LENDER_OBSERVATION, ledger_lender),
                gymnasium.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            )
        ]
        if self.two_phase:
            roles.append(
                Role(
                    "borrower",
                    1,
                    box_from_table(BORROWER_HEADER, BORROWER_PER_LENDER * n, ledger_borrower),
                    gymnasium.spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32),
                )
            )
        self._roles = tuple(roles)

        shape = (self.num_instances, n)
        self.game = OneToOneGame(
            willingness=np.ones(shape),
            min_rate=np.full(shape, 0.5 * self.max_rate),
            max_rate=np.full(self.num_instances, self.max_rate),
            min_loan=np.full(self.num_instances, self.min_loan),
            max_loan=np.full(shape, np.inf),
        )
        self._loan_upper = np.ones(shape)
        self._equilibrium: OneToOneEquilibrium | None = None
        # Observation templates and the game they were built for (see _lender_template).
        self._template_game: OneToOneGame | None = None
        self._lender_template_array = np.zeros((0, n, 0), dtype=np.float32)
        self._borrower_template_game: OneToOneGame | None = None
        self._borrower_template_array = np.zeros((0, 1, 0), dtype=np.float32)
        self._clear_history()

    # ----------------------------------------------------------------------------------------

    @property
    def roles(self) -> tuple[Role, ...]:
        return self._roles

    def acting_roles(self) -> tuple[str, ...]:
        if self.two_phase and self.phase == keys.FOLLOWERS_PHASE:
            return ("borrower",)
        return ("lender",)

    @property
    def equilibrium(self) -> OneToOneEquilibrium:
        """The analytic equilibrium of every instance's current episode (solved on demand)."""
        if self._equilibrium is None:
            self._equilibrium = equilibrium.solve(self.game)
        return self._equilibrium

    def solve(self, method: str = "best_response") -> OneToOneEquilibrium:
        """Solve the current episode's game of every instance with the named method.

        Args:
            method: ``"best_response"`` or ``"gradient"`` (see
                :func:`ledgerzoo.envs.lending.equilibrium.solve`).
        """
        return equilibrium.solve(self.game, method)  # type: ignore[arg-type]

    def _clear_history(self) -> None:
        shape = (self.num_instances, self.n_lenders)
        self.has_history = False
        self.last_rates = np.zeros(shape)
        self.last_loans = np.zeros(shape)
        self.last_optimal = np.zeros(self.num_instances, dtype=np.int64)
        self.posted_rates = np.zeros(shape)
        self.last_outcome: dict[str, np.ndarray] | None = None

    def _reset_episode(self, generators: Sequence[np.random.Generator]) -> None:
        # One draw per instance and parameter, each instance from its own generator, so that
        # instance b of a vector env matches the PettingZoo env reset with b's seed.
        # NOTE: this is a Python loop over instances, once per episode (not per step), with one
        # generator call per instance.
        n = self.n_lenders
        specs = [self.willingness_spec, self.min_rate_spec]
        if self.max_loan_spec is not None:
            specs.append(self.max_loan_spec)
        # The budgets' draws come last, so the game's draws do not depend on the ledger.
        rows = len(specs) + (1 if self.book.budget_draw_count else 0)
        uniforms = np.empty((len(generators), rows, n))  # (B, P, N)
        for draws, rng in zip(uniforms, generators, strict=True):
            rng.random(out=draws)
        willingness = self.willingness_spec.sample(uniforms[:, 0])
        min_rate = self.min_rate_spec.sample(uniforms[:, 1])
        shape = (self.num_instances, n)
        max_loan = (
            np.full(shape, np.inf)
            if self.max_loan_spec is None
            else self.max_loan_spec.sample(uniforms[:, 2])
        )
        self.game = OneToOneGame(
            willingness=willingness,
            min_rate=min_rate,
            max_rate=np.full(self.num_instances, self.max_rate),
            min_loan=np.full(self.num_instances, self.min_loan),
            max_loan=max_loan,
        )
        self._loan_upper = np.where(
            np.isfinite(max_loan), max_loan, LOAN_CAP_FACTOR * willingness / min_rate
        )
        self._equilibrium = equilibrium.solve(self.game) if self.reference else None
        # Without a lender_budget every lender can lend its largest loan every round, and
        # without a data_income the borrower earns the data price plus the most interest one
        # round's loan can carry (r_max times the largest loan), so nothing ever binds.
        self.book.reset(
            uniforms[:, -1] if self.book.budget_draw_count else uniforms[:, 0],
            slack_budget=self.max_cycles * self._loan_upper,
            slack_income=self.settings.data_price + self.max_rate * self._loan_upper.max(axis=1),
            generators=generators,
        )
        self._clear_history()

    def _step_phase(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        if "lender" in actions:
            rates = self.rates_from_actions(actions["lender"][..., 0])
            if self.two_phase:
                # Leaders' step: the rates are posted, and the borrower responds in the next step.
                self.posted_rates = rates
                return {}, {"lender": {keys.RATE: rates, keys.PRICE: prices_from_rates(rates)}}
            loans = equilibrium.best_response_loans(rates, self.game)
        else:
            rates = self.posted_rates
            loans = self.loans_from_actions(actions["borrower"][:, 0])
        return self._settle_round(rates, loans)

    def _settle_round(
        self, rates: np.ndarray, requested: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        # A lender lends at most its budget, so the loans are the requested ones capped by it.
        budgets = self.book.budgets()
        loans = np.minimum(requested, budgets)
        result = equilibrium.outcome(rates, loans, self.game)
        n = self.n_lenders
        is_optimal = np.arange(n)[None, :] == result["optimal_lender"][:, None]
        optimal = result["optimal_lender"][:, None]
        # The optimal lender's entries, read through flat indices (faster than take_along_axis).
        chosen = np.arange(self.num_instances) * n + result["optimal_lender"]
        optimal_loans = loans.reshape(-1)[chosen][:, None]
        optimal_rates = rates.reshape(-1)[chosen][:, None]
        # Only the optimal lender's principal moves.
        settled = self.book.settle(optimal, optimal_loans, optimal_rates)
        ledger_lender, ledger_borrower = settlement.round_infos(
            settled, self.book.infos_view(), budgets, n
        )
        # A principal the ledger rejected (its queue was full) was not lent: the round had no
        # loan, and every utility is 0.
        failed = settlement.rejected_loans(optimal_loans, row_sum(settled.lent)[:, None])[:, 0]
        if failed.any():
            result = _without_loan(result, failed)
        lender_infos: dict[str, np.ndarray] = {
            keys.RATE: rates,
            keys.PRICE: prices_from_rates(rates),
            keys.LOAN: loans,
            keys.UTILITY: result["lender_utilities"],
            keys.IS_OPTIMAL_LENDER: is_optimal,
            keys.BORROWER_UTILITY: np.repeat(result["borrower_utility"][:, None], n, axis=1),
            keys.WELFARE: np.repeat(result["welfare"][:, None], n, axis=1),
        }
        lender_infos.update(ledger_lender)
        infos = {"lender": lender_infos}
        borrower_infos: dict[str, np.ndarray] = {
            keys.RATE: optimal_rates,
            keys.LOAN: optimal_loans,
            keys.LOANS: loans[:, None, :],
            keys.UTILITY: result["borrower_utility"][:, None],
            keys.OPTIMAL_LENDER: optimal,
            keys.WELFARE: result["welfare"][:, None],
            **ledger_borrower,
        }
        if self.settings.reward_type == "cashflow":
            rewards = {"lender": ledger_lender[keys.CASHFLOW]}
            borrower_reward = ledger_borrower[keys.CASHFLOW]
        else:
            rewards = {"lender": result["lender_utilities"]}
            borrower_reward = result["borrower_utility"][:, None]
        if self.two_phase:
            rewards["borrower"] = borrower_reward
            infos["borrower"] = borrower_infos
        if self.reference:
            self._add_reference(rates, result, infos, borrower_infos, self._budget_game(budgets))

        self.last_rates = rates
        self.last_loans = loans
        self.last_optimal = result["optimal_lender"]
        self.last_outcome = result
        self.has_history = True
        return rewards, infos

    def _budget_game(self, budgets: np.ndarray) -> OneToOneGame:
        """Return the round's game with each loan also bounded by its lender's budget.

        With slack budgets it is the episode's game itself, so the closed-form best response
        applies. A finite bound would send it to the numeric search.
        """
        if self.settings.lender_budget is None:
            return self.game
        return dataclasses.replace(self.game, max_loan=np.minimum(self.game.max_loan, budgets))

    def _add_reference(
        self,
        rates: np.ndarray,
        result: Mapping[str, np.ndarray],
        infos: dict[str, dict[str, np.ndarray]],
        borrower_infos: dict[str, np.ndarray],
        game: OneToOneGame,
    ) -> None:
        """Add the episode's equilibrium and each agent's best-response utility to the infos.

        A lender's best response is taken against the others' actual offers, with the borrower
        responding to the deviating lender with its own best response (for a learned borrower too);
        keeping the actual rate, with its actual outcome, is always one of the options. The
        best responses are those of ``game``, the round's game under the lenders' budgets; the
        reference values are the static game's equilibrium.
        """
        solution = self.equilibrium
        n = self.n_lenders
        borrower_all = result["borrower_utilities"]
        others = borrower_all.sum(axis=1, keepdims=True) - borrower_all
        best_prices, best_utilities = equilibrium.best_response(others, game)
        # Keeping the own action is one of the options, with its actual outcome. A learned
        # borrower can make that outcome better than any deviation it responds to with its best response.
        actual = result["lender_utilities"]
        keep = actual > best_utilities
        best_prices = np.where(keep, 1.0 / rates, best_prices)
        best_utilities = np.where(keep, actual, best_utilities)
        is_optimal = np.arange(n)[None, :] == solution.optimal_lender[:, None]
        lender_infos = infos["lender"]
        lender_infos[keys.BEST_RESPONSE_UTILITY] = best_utilities
        lender_infos[keys.BEST_RESPONSE_RATE] = 1.0 / best_prices
        for key, value in (
            (keys.RATE, solution.rates),
            (keys.PRICE, solution.prices),
            (keys.LOAN, solution.loans),
            (keys.UTILITY, solution.lender_utilities),
            (keys.IS_OPTIMAL_LENDER, is_optimal),
            (keys.BORROWER_UTILITY, np.repeat(solution.borrower_utility[:, None], n, axis=1)),
            (keys.WELFARE, np.repeat(solution.welfare[:, None], n, axis=1)),
        ):
            lender_infos[f"{keys.REFERENCE}/{key}"] = value

        optimal = solution.optimal_lender[:, None]
        best_loans = equilibrium.best_response_loans(rates, game)
        best_borrower = equilibrium.outcome(rates, best_loans, game)["borrower_utility"]
        borrower_infos[keys.BEST_RESPONSE_UTILITY] = best_borrower[:, None]
        for key, value in (
            (keys.RATE, np.take_along_axis(solution.rates, optimal, axis=1)),
            (keys.LOAN, np.take_along_axis(solution.loans, optimal, axis=1)),
            (keys.LOANS, solution.loans[:, None, :]),
            (keys.UTILITY, solution.borrower_utility[:, None]),
            (keys.OPTIMAL_LENDER, optimal),
            (keys.WELFARE, solution.welfare[:, None]),
        ):
            borrower_infos[f"{keys.REFERENCE}/{key}"] = value

    # ----------------------------------------------------------------------------------------
    # Action maps.

    def rates_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map lender actions in [0, 1], (B, N), onto rates r_min,i + a (r_max - r_min,i)."""
        min_rate = self.game.min_rate
        return min_rate + actions.astype(np.float64) * (self.max_rate - min_rate)

    def actions_from_rates(self, rates: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`rates_from_actions`, (B, N) -> (B, N, 1) float32 in [0, 1]."""
        min_rate = self.game.min_rate
        fraction = (rates - min_rate) / (self.max_rate - min_rate)
        return np.clip(fraction, 0.0, 1.0).astype(np.float32)[..., None]

    def loans_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map borrower actions in [0, 1], (B, N), onto loans in [x_min, loan upper bound]."""
        return self.min_loan + actions.astype(np.float64) * (self._loan_upper - self.min_loan)

    def actions_from_loans(self, loans: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`loans_from_actions`, (B, N) -> (B, 1, N) float32 in [0, 1]."""
        fraction = (loans - self.min_loan) / (self._loan_upper - self.min_loan)
        return np.clip(fraction, 0.0, 1.0).astype(np.float32)[:, None, :]

    # ----------------------------------------------------------------------------------------
    # Observations and reference policies.

    def observe(self) -> dict[str, np.ndarray]:
        observations = {"lender": self._observe_lenders()}
        if self.two_phase:
            observations["borrower"] = self._observe_borrower()
        return observations

    def _observe_lenders(self) -> np.ndarray:
        n = self.n_lenders
        space = self._roles[0].observation_space
        obs = self._lender_template().copy()
        index = LENDER_INDEX
        write_entry(obs, index["phase"], self.phase, space)
        write_entry(obs, index["round_progress"], self.round / self.max_cycles, space)
        write_entry(obs, index["has_history"], float(self.has_history), space)
        if self.has_history:
            game = self.game
            r_max = self.max_rate
            rates = self.last_rates
            loans = self.last_loans
            write_entry(obs, index["last_rate_ratio"], rates / r_max, space)
            if n > 1:
                total = row_sum(rates)[:, None]
                write_entry(
                    obs, index["others_mean_rate_ratio"], (total - rates) / (n - 1) / r_max, space
                )
                low, high = _others_extremes(rates)
                write_entry(obs, index["others_min_rate_ratio"], low / r_max, space)
                write_entry(obs, index["others_max_rate_ratio"], high / r_max, space)
            loan_total = row_sum(loans)[:, None]
            share = np.divide(loans, loan_total, out=np.zeros_like(loans), where=loan_total > 0.0)
            write_entry(obs, index["last_loan_share"], share, space)
            # u_i = r_min,i sum_{j != i} x_j / d_i: equals r_min,i beta_i when the borrower
            # responds with its best response, which is what a best response needs.
            competition = game.min_rate * (loan_total - loans) / game.willingness
            write_entry(obs, index["competition_index"], competition, space)
            was_optimal = np.arange(n)[None, :] == self.last_optimal[:, None]
            write_entry(obs, index["was_optimal_lender"], was_optimal, space)
        if self.settings.observe:
            ledger_entries = settlement.lender_observation(self.book.view(), n)
            first = len(LENDER_OBSERVATION)
            write_entry(obs, slice(first, first + ledger_entries.shape[-1]), ledger_entries, space)
        return obs

    def _lender_template(self) -> np.ndarray:
        """Lender observations with the episode's constant entries set and the others 0.

        Built once per game and copied by every observation, so that a step writes only the
        entries that change.
        """
        if self._template_game is not self.game:
            game = self.game
            batch, n = self.num_instances, self.n_lenders
            space = self._roles[0].observation_space
            template = np.zeros((batch, n, space.shape[0]), dtype=np.float32)
            write_entry(template, LENDER_INDEX["n_lenders"], n, space)
            write_entry(template, LENDER_INDEX["willingness"], game.willingness, space)
            write_entry(template, LENDER_INDEX["max_rate"], self.max_rate, space)
            write_entry(
                template, LENDER_INDEX["min_rate_ratio"], game.min_rate / self.max_rate, space
            )
            self._lender_template_array = template
            self._template_game = game
        return self._lender_template_array

    def _observe_borrower(self) -> np.ndarray:
        n = self.n_lenders
        space = self._roles[1].observation_space
        obs = self._borrower_template().copy()
        header = len(BORROWER_HEADER)
        write_entry(obs, 0, self.phase, space)
        write_entry(obs, 1, self.round / self.max_cycles, space)
        write_entry(obs, 2, float(self.has_history), space)
        # The rates the borrower observes: this round's posted rates in its own step, else last round's.
        rates = self.posted_rates if self.phase == keys.FOLLOWERS_PHASE else self.last_rates
        rate_entries = slice(header + 1, header + 3 * n, 3)
        write_entry(obs, rate_entries, (rates / self.max_rate)[:, None, :], space)
        if self.settings.observe:
            ledger_entries = settlement.borrower_observation(self.book.view(), n)
            first = header + 3 * n
            write_entry(
                obs,
                slice(first, first + ledger_entries.shape[-1]),
                ledger_entries[:, None, :],
                space,
            )
        return obs

    def _borrower_template(self) -> np.ndarray:
        """Borrower observations with the episode's constant entries set (see _lender_template)."""
        if self._borrower_template_game is not self.game:
            n = self.n_lenders
            space = self._roles[1].observation_space
            template = np.zeros((self.num_instances, 1, space.shape[0]), dtype=np.float32)
            header = len(BORROWER_HEADER)
            write_entry(template, 3, self.max_rate, space)
            write_entry(template, 4, self.min_loan, space)
            willingness = slice(header, header + 3 * n, 3)
            write_entry(template, willingness, self.game.willingness[:, None, :], space)
            upper = slice(header + 2, header + 3 * n, 3)
            write_entry(template, upper, self._loan_upper[:, None, :], space)
            self._borrower_template_array = template
            self._borrower_template_game = self.game
        return self._borrower_template_array

    def equilibrium_actions(self) -> dict[str, np.ndarray]:
        actions = {"lender": self.actions_from_rates(self.equilibrium.rates)}
        if self.two_phase:
            rates = (
                self.posted_rates if self.phase == keys.FOLLOWERS_PHASE else self.equilibrium.rates
            )
            actions["borrower"] = self.actions_from_loans(
                equilibrium.best_response_loans(rates, self.game)
            )
        return actions

    def best_response_actions(
        self, observations: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Myopic best responses computed from observations alone.

        A lender answers last round's public data with the closed-form best response (slack
        loan bounds assumed). In round 0, with no history, it posts the rate of the symmetric
        equilibrium r_min,i (2N - 1) / (N - 1) (r_max when N = 1). The borrower responds to the
        posted rates with x_i = d_i / r_i, clipped to its loan bounds. Only the roles present
        in ``observations`` get actions.
        """
        actions: dict[str, np.ndarray] = {}
        if "lender" in observations:
            lender_obs = np.asarray(observations["lender"], dtype=np.float64)
            actions["lender"] = lender_best_response_actions(lender_obs)
        if "borrower" in observations:
            borrower_obs = np.asarray(observations["borrower"], dtype=np.float64)[:, 0]
            n = self.n_lenders
            header = len(BORROWER_HEADER)
            # The ledger entries, when observed, follow the per-lender entries.
            per_lender = borrower_obs[:, header : header + 3 * n].reshape(-1, n, 3)
            min_loan = borrower_obs[:, 4:5]
            rates = np.maximum(per_lender[..., 1] * borrower_obs[:, 3:4], 1e-12)
            upper = per_lender[..., 2]
            loans = np.clip(per_lender[..., 0] / rates, min_loan, upper)
            span = np.maximum(upper - min_loan, 1e-12)
            actions["borrower"] = np.clip((loans - min_loan) / span, 0.0, 1.0).astype(np.float32)[
                :, None, :
            ]
        return actions

    # ----------------------------------------------------------------------------------------

    def render_text(self) -> str:
        """Format the last round of instance 0 as a text table."""
        lines = [f"{self.name}  round {self.round}/{self.max_cycles}  phase {self.phase}"]
        header = f"{'lender':<10}{'r_min':>8}{'rate':>9}{'loan':>11}{'utility':>11}"
        if self.reference:
            header += f"{'eq. rate':>10}"
        lines.append(header + "  optimal")
        result = self.last_outcome
        for i in range(self.n_lenders):
            rate = f"{self.last_rates[0, i]:9.4f}" if self.has_history else f"{'-':>9}"
            loan = f"{self.last_loans[0, i]:11.3f}" if self.has_history else f"{'-':>11}"
            utility = f"{result['lender_utilities'][0, i]:11.4f}" if result else f"{'-':>11}"
            row = f"{'lender_' + str(i):<10}{self.game.min_rate[0, i]:8.4f}{rate}{loan}{utility}"
            if self.reference:
                row += f"{self.equilibrium.rates[0, i]:10.4f}"
            marker = "  *" if result is not None and result["optimal_lender"][0] == i else ""
            lines.append(row + marker)
        if result is not None:
            lines.append(
                f"borrower utility {result['borrower_utility'][0]:.4f}  "
                f"welfare {result['welfare'][0]:.4f}"
            )
        return "\n".join(lines)


def lender_best_response_actions(observations: np.ndarray) -> np.ndarray:
    """Closed-form best responses of lenders to last round's public data, from observations.

    Args:
        observations: Lender observations, (..., len(LENDER_OBSERVATION)).

    Returns:
        Actions in [0, 1], (..., 1), float32.
    """
    obs = np.asarray(observations, dtype=np.float64)
    max_rate = obs[..., LENDER_INDEX["max_rate"]]
    min_rate = obs[..., LENDER_INDEX["min_rate_ratio"]] * max_rate
    n = obs[..., LENDER_INDEX["n_lenders"]]
    beta = obs[..., LENDER_INDEX["competition_index"]] / min_rate
    price = equilibrium.closed_form_best_response(beta, min_rate, max_rate)
    # No history yet: the symmetric equilibrium price (N - 1) / (r_min (2N - 1)).
    symmetric = np.clip((n - 1.0) / (min_rate * (2.0 * n - 1.0)), 1.0 / max_rate, 1.0 / min_rate)
    price = np.where(obs[..., LENDER_INDEX["has_history"]] > 0.5, price, symmetric)
    fraction = (1.0 / price - min_rate) / (max_rate - min_rate)
    return np.clip(fraction, 0.0, 1.0).astype(np.float32)[..., None]


def _without_loan(result: dict[str, np.ndarray], failed: np.ndarray) -> dict[str, np.ndarray]:
    """Zero every utility of the instances whose loan failed to open, (B,) ``failed``."""
    zeroed = dict(result)
    for key, value in result.items():
        if key == "optimal_lender":
            continue
        mask = failed.reshape(-1, *([1] * (np.ndim(value) - 1)))
        zeroed[key] = np.where(mask, 0.0, value)
    return zeroed


def _others_extremes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum over j != i of values[:, j], for every i; (B, N) each (N >= 2).

    Leaving out entry i changes the extreme only where entry i is the row's extreme, and then
    to the second smallest (or largest) value, which equals the extreme when it occurs twice.
    The work runs on the transposed (N, B) array, where a reduction over the lenders is a few
    whole-row operations instead of one call per instance.
    """
    columns = np.ascontiguousarray(values.T)
    low = _others_extreme(columns, np.minimum, np.inf)
    high = _others_extreme(columns, np.maximum, -np.inf)
    return low.T, high.T


def _others_extreme(columns: np.ndarray, extreme: np.ufunc, neutral: float) -> np.ndarray:
    """Extreme over j != i of columns[j], for every i, with ``extreme`` np.minimum or np.maximum."""
    best = extreme.reduce(columns, axis=0)
    is_best = columns == best
    ties = np.add.reduce(is_best, axis=0, dtype=np.int64) > 1
    runner_up = extreme.reduce(np.where(is_best, neutral, columns), axis=0)
    second = np.where(ties, best, runner_up)
    return np.where(is_best, second, best)


class LendingOneToOneEnv(MarketParallelEnv):
    """One borrower, N competing lenders: lenders lead by posting interest rates.

    ## Description

    A vehicle that buys data on a blockchain market has to wait for confirmation before coins
    it receives are spendable, and a new vehicle starts with none, so it borrows. N lenders
    compete for the loan: each round every lender posts an interest rate r_i, the borrower
    answers with a loan x_i from each lender, and takes its loan from the lender it values
    most. This is the loan-pricing Stackelberg game of W. Chen's InPlus Lab (Sun Yat-sen
    University); its utilities are in :mod:`ledgerzoo.envs.lending.model` and docs/lending.md.

    With ``followers="analytic"`` (default) the borrower responds with its closed-form best
    response x_i = d_i / r_i inside the step, so one step is one round and the agents are
    lender_0..lender_{N-1}. With ``followers="learned"`` the borrower is the agent borrower_0
    and a round is two steps: in the leaders' step (phase 0) only the lenders' actions take
    effect and the rates are posted; in the followers' step (phase 1) only the borrower's
    action takes effect, after observing the posted rates. Every live agent acts in every step.

    Every round settles on a ledger (:mod:`ledgerzoo.envs.lending.settlement`): a lender lends
    at most its budget, so each requested loan is capped by it, and only the optimal lender's
    principal moves. It is repaid with interest after ``loan_term`` rounds, or defaults if the
    borrower's spendable balance is short. With the default settings nothing binds and the
    rewards are the static game's; a chain or tangle ledger, budgets, data costs and the cold
    start change the dynamics.

    ## Action space

    Lender: ``Box(0, 1, (1,), float32)``. Action a maps onto the rate
    r_i = r_min,i + a (r_max - r_min,i) (fraction of the principal per loan term).

    Borrower (learned followers only): ``Box(0, 1, (N,), float32)``. Entry i maps onto the loan
    x_i = x_min + a_i (x_up,i - x_min) coins, where x_up,i is max_loan when set and otherwise
    2 d_i / r_min,i (twice the largest best-response loan).

    Actions outside the box are clipped and counted in ``info[agent]["clipped_actions"]``;
    float64 and integer actions are cast to float32. NaN, infinite or wrongly shaped actions
    raise ValueError; an unknown agent or a live agent without an action raises KeyError.

    ## Observation space

    Lender, ``Box(float32)`` of 14 entries; the size does not depend on N. "Last round" is
    what the public ledger shows of the previous round (zeros before the first round).

    | index | meaning | unit | bounds |
    |---|---|---|---|
    | 0 | phase: 0 leaders' step, 1 followers' step | - | [0, 1] |
    | 1 | round / max_cycles | - | [0, 1] |
    | 2 | 1 once a round has been played in this episode | - | [0, 1] |
    | 3 | number of lenders N | - | [1, inf) |
    | 4 | own willingness d_i | coins x rate | [0, inf) |
    | 5 | rate cap r_max | rate | [0, inf) |
    | 6 | own minimum rate r_min,i / r_max | - | [0, 1] |
    | 7 | own last rate / r_max | - | [0, 1] |
    | 8 | mean of the others' last rates / r_max | - | [0, 1] |
    | 9 | lowest of the others' last rates / r_max | - | [0, 1] |
    | 10 | highest of the others' last rates / r_max | - | [0, 1] |
    | 11 | own share of last round's loan demand x_i / sum_j x_j | - | [0, 1] |
    | 12 | competition index u_i = r_min,i sum_{j != i} x_j / d_i | - | [0, inf) |
    | 13 | 1 if the borrower took its loan from this lender last round | - | [0, 1] |

    A lender never observes another lender's r_min. Entry 12 is r_min,i beta_i when the
    borrower best-responds, which is all a best response needs.

    Borrower (learned followers only), ``Box(float32)`` of 5 + 3N entries: phase, round /
    max_cycles, history flag, r_max, x_min, then for each lender i: d_i, r_i / r_max (this
    round's posted rate in the followers' step, last round's otherwise) and x_up,i.

    With ``observe_ledger`` on, every observation ends with four ledger entries (coins, or a
    count): a lender's budget (its spendable balance), the coins on their way to it, the
    principal it has lent and not yet been repaid, and the borrower's defaults so far; the
    borrower's balance, the coins on their way to it, its outstanding debt, and its defaults.

    ## Rewards

    Lender i receives LU_i = rho_i phi_i (coins), the competitiveness-weighted profit, and the
    borrower (when learned) BU_l, its utility for the loan it takes. Rewards are paid once per
    round, at its last step, multiplied by ``reward_scale``; infos always carry the unscaled
    utilities.
    With ``reward_type="cashflow"`` every agent is paid instead the coins it received minus
    the coins it paid in transactions that confirmed this round, so confirmation delays and
    defaults show in the returns.

    ## Starting state

    Each episode draws d_i and r_min,i (and max_loan, when given as a range) from the scenario
    with the env's generator, seeded by ``reset(seed)``. Nothing has been posted yet.

    ## Episode end

    No termination. The episode is truncated after ``max_cycles`` rounds, for every agent.

    ## Info

    ``info[agent]`` holds the round's rate, price, loan, utility, is_optimal_lender,
    borrower_utility, welfare, round, phase, acts and clipped_actions (keys in
    :mod:`ledgerzoo.envs.core.keys`). With ``reference=True`` it also holds
    ``best_response_utility`` and ``best_response_rate`` (the best unilateral deviation
    against the others' actual actions) and, under ``reference``, the same keys for the
    episode's analytic equilibrium.

    Once a round settles, the infos also carry its ledger entries (coins): lenders get lent,
    budget, balance, pending_incoming, pending_outgoing, cashflow, repaid, lost_to_default and
    defaults (the borrower's count), and the borrower gets borrowed, balance, pending_incoming,
    pending_outgoing, cashflow, data_bought, defaulted and defaults.

    ## Arguments

    - ``n_lenders`` (int, >= 1, default 5): N. With N = 1 there is no competition and the
      equilibrium rate sits at r_max; an interior equilibrium needs N >= 2.
    - ``willingness`` (default {low: 1, high: 5}): d_i in coins x rate, in (0, 1e9]: a
      number, a {low, high} range drawn per episode, or a list of N numbers.
    - ``min_rate`` (default {low: 0.02, high: 0.1}): r_min,i, in [1e-9, r_max), same forms.
    - ``max_rate`` (float, default 0.5): r_max, in (0, 1000]. If it is too low for an
      interior equilibrium the equilibrium rates sit at r_max, which is legal.
    - ``min_loan`` (float >= 0, default 0) and ``max_loan`` (default None: no cap; same forms
      as willingness, at most 1e18): loan bounds in coins. Slack by default; when they bind, the reference
      solver maximizes the clipped utility numerically.
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
        willingness: Any = None,
        min_rate: Any = None,
        max_rate: float = DEFAULT_MAX_RATE,
        min_loan: float = 0.0,
        max_loan: Any = None,
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
        market = OneToOneMarket(
            n_lenders=n_lenders,
            willingness=willingness,
            min_rate=min_rate,
            max_rate=max_rate,
            min_loan=min_loan,
            max_loan=max_loan,
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
