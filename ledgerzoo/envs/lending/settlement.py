"""The lending markets on the ledger: data purchases, income, loans, repayment and defaults.

The stage games of :mod:`ledgerzoo.envs.lending.model` are static. On a ledger they become a
dynamic market, settled once per round in this order:

1. Loans that mature this round are repaid, principal (1 + rate), from the borrower's
   spendable balance. A repayment the balance cannot cover defaults: nothing moves, and the
   default is recorded on the ledger, public to every lender.
2. The borrower buys the round's data for ``data_price`` coins from its spendable balance
   (paid to the ``clearing`` account, which stands for the data sellers). If the balance is
   short, it buys nothing this round.
3. For data it bought, the borrower earns ``data_income`` coins (data resale, task rewards),
   new value minted to it that becomes spendable only when it confirms: the long return.
4. The round's loans open: each principal moves lender -> borrower and becomes spendable
   when it confirms. A lender lends at most its spendable balance, its budget.
5. The ledger confirms what its mode confirms this round.

A new borrower starts with ``borrower_balance`` coins (0 by default: the cold start), so a
loan is what pays for its first data. With the default settings (``instant`` ledger, budgets
and income that never bind, free data) nothing is ever short, no loan defaults, and the
markets' rewards are exactly the static games' utilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.params import ParamSpec, describe_value, parse_param, to_float
from ledgerzoo.envs.core.rows import row_sum
from ledgerzoo.ledger import Kind, Ledger, LedgerConfig, LoanBook
from ledgerzoo.ledger.tangle import TangleConfig

REWARD_TYPES = ("utility", "cashflow")
BORROWER = "borrower_0"
# Magnitude the settings accept (coins), so that balances stay finite in float32 observations.
MAX_COINS = 1e15
# Maximum loan term the settings accept (rounds). A term past the episode never matures.
MAX_LOAN_TERM = 1_000_000
# Observation entries that observe_ledger adds: (name, low, high), in order, coins or counts.
LENDER_LEDGER_OBSERVATION: tuple[tuple[str, float, float], ...] = (
    ("budget", 0.0, np.inf),
    ("pending_incoming", 0.0, np.inf),
    ("outstanding_lent", 0.0, np.inf),
    ("borrower_defaults", 0.0, np.inf),
)
BORROWER_LEDGER_OBSERVATION: tuple[tuple[str, float, float], ...] = (
    ("balance", 0.0, np.inf),
    ("pending_incoming", 0.0, np.inf),
    ("outstanding_debt", 0.0, np.inf),
    ("defaults", 0.0, np.inf),
)


@dataclass(frozen=True)
class LedgerSettings:
    """Settings of a lending market's settlement on the ledger.

    Attributes:
        ledger: The ledger's mode and settings.
        queue_given: Whether the user set ``queue_capacity`` (else the market sizes the queue).
        loan_term: Rounds from a loan's opening to its repayment (>= 1).
        lender_budget: Each lender's starting balance (coins), or None: a balance that the
            lender's largest possible loans can never exhaust within an episode.
        borrower_balance: The borrower's starting balance (coins); 0 is the cold start.
        data_price: Coins the borrower pays for each round's data (>= 0).
        data_income: Coins the borrower earns for each round's data, or None: enough to cover
            the data and the largest interest it can owe in a round.
        reward_type: ``utility`` (the stage game's utilities on the amounts actually lent) or
            ``cashflow`` (the coins an agent receives minus those it pays, when they confirm).
        observe: Whether observations carry the ledger entries.
    """

    ledger: LedgerConfig
    queue_given: bool
    loan_term: int
    lender_budget: ParamSpec | None
    borrower_balance: float
    data_price: float
    data_income: float | None
    reward_type: str
    observe: bool

    @property
    def is_static(self) -> bool:
        """Whether the ledger can never change the stage game (nothing ever binds or waits)."""
        return (
            self.ledger.mode == "instant"
            and self.lender_budget is None
            and self.data_price == 0.0
            and self.data_income is None
            and self.reward_type == "utility"
        )


def parse_settings(
    n_lenders: int,
    ledger: Any,
    loan_term: Any,
    lender_budget: Any,
    borrower_balance: Any,
    data_price: Any,
    data_income: Any,
    reward_type: Any,
    observe_ledger: Any,
) -> LedgerSettings:
    """Check a lending market's ledger arguments and return them as :class:`LedgerSettings`.

    Raises:
        ValueError: For an invalid value, naming the argument, the value and what is allowed.
        TypeError: For an argument of the wrong type.
    """
    config = LedgerConfig.parse(ledger)
    queue_given = isinstance(ledger, LedgerConfig) or (
        isinstance(ledger, Mapping) and "queue_capacity" in ledger
    )
    if isinstance(loan_term, bool) or not isinstance(loan_term, (int, np.integer)):
        raise TypeError(f"loan_term must be an int (rounds), got {loan_term!r}")
    if not 1 <= loan_term <= MAX_LOAN_TERM:
        raise ValueError(
            f"invalid loan_term {loan_term}: expected an integer in [1, {MAX_LOAN_TERM}] rounds"
        )
    budget = None
    if lender_budget is not None:
        budget = parse_param(
            "lender_budget", lender_budget, n_lenders, minimum=0.0, maximum=MAX_COINS
        )
    if reward_type not in REWARD_TYPES:
        raise ValueError(
            f"invalid reward_type {reward_type!r}; expected one of {list(REWARD_TYPES)}"
        )
    if observe_ledger is not None and not isinstance(observe_ledger, (bool, np.bool_)):
        raise TypeError(f"observe_ledger must be True, False or None, got {observe_ledger!r}")
    income = None if data_income is None else _coins("data_income", data_income)
    settings = LedgerSettings(
        ledger=config,
        queue_given=queue_given,
        loan_term=int(loan_term),
        lender_budget=budget,
        borrower_balance=_coins("borrower_balance", borrower_balance),
        data_price=_coins("data_price", data_price),
        data_income=income,
        reward_type=str(reward_type),
        observe=False,
    )
    observe = not settings.is_static if observe_ledger is None else bool(observe_ledger)
    return LedgerSettings(**{**settings.__dict__, "observe": observe})


def _coins(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        hint = ""
        if isinstance(value, str):
            hint = " (YAML reads 1e15 as text; write 1.0e15)"
        raise ValueError(f"invalid {name} {value!r}: expected a number of coins >= 0{hint}")
    number = to_float(value)
    if not np.isfinite(number) or not 0.0 <= number <= MAX_COINS:
        raise ValueError(
            f"invalid {name} {describe_value(value)}: expected a number of coins in "
            f"[0, {MAX_COINS:g}]"
        )
    return number


@dataclass(frozen=True)
class RoundSettlement:
    """Outcome of one round on the ledger, per instance.

    Lender arrays are (B, N); borrower arrays are (B,). Coins throughout.

    Attributes:
        lent: Principal each lender sent this round (0 where no loan opened).
        repaid: Repayments submitted to each lender this round.
        lost: Repayments each lender lost to defaults this round.
        defaulted: Repayments the borrower failed to pay this round.
        data_bought: Whether the borrower bought this round's data.
        received: Coins credited to each account this round (confirmed), (B, A).
        paid: Coins of each account's transactions that confirmed this round, (B, A).
    """

    lent: np.ndarray
    repaid: np.ndarray
    lost: np.ndarray
    defaulted: np.ndarray
    data_bought: np.ndarray
    received: np.ndarray
    paid: np.ndarray

    @property
    def cashflow(self) -> np.ndarray:
        """Coins received minus coins paid, as confirmed this round, per account, (B, A)."""
        return self.received - self.paid


class LendingLedger:
    """The ledger and loan book under B instances of a lending market.

    Accounts are lender_0..lender_{N-1}, then borrower_0, then the ledger's system accounts.

    Args:
        settings: The market's ledger settings.
        n_lenders: N.
        num_instances: B.
        submissions_per_round: Most transactions an instance submits in one round; with the
            ledger's latency it sizes the queue when the user did not set ``queue_capacity``.
        loans_per_round: Most loans an instance opens in one round.
        max_cycles: Rounds per episode, which bound how long transactions and loans wait.
    """

    def __init__(
        self,
        settings: LedgerSettings,
        n_lenders: int,
        num_instances: int,
        submissions_per_round: int,
        loans_per_round: int,
        max_cycles: int,
    ) -> None:
        self.settings = settings
        self.n_lenders = n_lenders
        self.num_instances = num_instances
        config = settings.ledger
        if not settings.queue_given:
            # No transaction waits longer than the episode.
            rounds = min(_latency_bound(config), max_cycles) + 1
            config = LedgerConfig(
                **{**config.__dict__, "queue_capacity": submissions_per_round * rounds}
            )
        accounts = [f"lender_{i}" for i in range(n_lenders)] + [BORROWER]
        self.ledger = Ledger(accounts, num_instances, config)
        self.borrower = self.ledger.account(BORROWER)
        # A loan is active for exactly loan_term rounds: it is settled, repaid or defaulted, at
        # the start of its maturity round, before that round's loans open. A loan whose term
        # outlasts the episode stays active to its end.
        active_rounds = min(settings.loan_term, max_cycles)
        self.loans = LoanBook(self.ledger, capacity=loans_per_round * active_rounds)
        self.income = np.zeros(num_instances)

    @property
    def budget_draw_count(self) -> int:
        """Uniform draws per instance that :meth:`reset` needs for the lenders' budgets."""
        return self.n_lenders if self.settings.lender_budget is not None else 0

    def reset(
        self,
        budget_draws: np.ndarray,
        slack_budget: np.ndarray,
        slack_income: np.ndarray,
        generators: Sequence[np.random.Generator],
    ) -> None:
        """Start an episode: empty the ledger and the loan book and set the starting balances.

        Args:
            budget_draws: Uniform draws (B, N) for the budgets (ignored without a budget).
            slack_budget: Budget that no episode can exhaust, (B, N), used without a budget.
            slack_income: Income that covers the data and the largest interest, (B,), used
                without a data_income.
            generators: The instances' generators; tangle mode draws the walks' seeds from them.
        """
        settings = self.settings
        if settings.lender_budget is None:
            budgets = slack_budget
        else:
            budgets = settings.lender_budget.sample(budget_draws)
        balances = np.concatenate(
            [budgets, np.full((self.num_instances, 1), settings.borrower_balance)], axis=1
        )
        seeds = None
        if settings.ledger.mode == "tangle":
            seeds = [int(rng.integers(2**63 - 1)) for rng in generators]
        self.ledger.reset(balances, seeds=seeds)
        self.loans = LoanBook(self.ledger, capacity=self.loans.status.shape[1])
        self.income = (
            slack_income
            if settings.data_income is None
            else np.full(self.num_instances, settings.data_income)
        )

    def budgets(self) -> np.ndarray:
        """Return each lender's spendable balance, the most it can lend now, (B, N)."""
        return self.ledger.balances[:, : self.n_lenders].copy()

    def settle(
        self, lenders: np.ndarray, principal: np.ndarray, rates: np.ndarray
    ) -> RoundSettlement:
        """Settle one round: repayments, the data purchase, income, new loans, confirmation.

        Args:
            lenders: Lender index of each loan to open, (B, K).
            principal: Each loan's principal (coins), (B, K); 0 opens nothing. A principal
                above the lender's budget is rejected by the ledger, so callers cap it first.
            rates: Each loan's rate per term, (B, K): repayment is principal (1 + rate).
        """
        settings = self.settings
        ledger, n = self.ledger, self.n_lenders
        events = self.loans.settle_due()
        repaid = ledger.sum_by_account(self.loans.lender, events.repayment)[:, :n]
        unpaid = np.where(events.defaulted, self.loans.principal * (1.0 + self.loans.rate), 0.0)
        if events.defaulted.any():
            lost = ledger.sum_by_account(self.loans.lender, unpaid)[:, :n]
        else:
            # Every unpaid amount is +0.0, and np.bincount sums them to +0.0 too.
            lost = np.zeros((self.num_instances, n))

        batch = self.num_instances
        if settings.data_price == 0.0:
            # With free data every borrower has the data. The ledger would skip every purchase
            # and change nothing, so none is submitted.
            data_bought = np.ones(batch, dtype=bool)
        else:
            price = np.full((batch, 1), settings.data_price)
            purchase = ledger.submit(
                self.borrower, ledger.clearing, price, Kind.DATA_PURCHASE, where=price > 0.0
            )
            data_bought = purchase.accepted[:, 0]
        income = self.income[:, None]
        ledger.submit(
            ledger.mint,
            self.borrower,
            income,
            Kind.MINT,
            where=data_bought[:, None] & (income > 0.0),
        )

        slots = self.loans.open(lenders, self.borrower, principal, rates, settings.loan_term)
        lent = ledger.sum_by_account(lenders, np.where(slots >= 0, principal, 0.0))[:, :n]
        confirmed = ledger.end_round()
        return RoundSettlement(
            lent=lent,
            repaid=repaid,
            lost=lost,
            defaulted=row_sum(unpaid),
            data_bought=data_bought,
            received=confirmed.received,
            paid=confirmed.paid,
        )

    def view(self) -> dict[str, np.ndarray]:
        """Ledger state the agents may observe or read in infos, per account (B, A), coins.

        ``balance`` (spendable), ``pending_incoming``, ``pending_outgoing``, ``outstanding_lent``
        and ``outstanding_debt`` (principal of active loans), and ``defaults`` (count of each
        account's defaults as borrower, public).
        """
        view = self.infos_view()
        view["outstanding_lent"] = self.loans.outstanding_lent()
        view["outstanding_debt"] = self.loans.outstanding()
        return view

    def infos_view(self) -> dict[str, np.ndarray]:
        """Return the entries of :meth:`view` that :func:`round_infos` reads.

        These are all but the outstanding principals, which cost a sum over the loan book each.
        """
        ledger = self.ledger
        return {
            "balance": ledger.balances,
            "pending_incoming": ledger.pending_incoming(),
            "pending_outgoing": ledger.pending_outgoing(),
            "defaults": self.loans.defaults.astype(np.float64),
        }


def rejected_loans(principal: np.ndarray, lent: np.ndarray) -> np.ndarray:
    """Return whether the ledger rejected each requested principal (above 0), same shape."""
    return (principal > 0.0) & (lent < principal * (1.0 - 1e-12))


def lender_observation(view: Mapping[str, np.ndarray], n_lenders: int) -> np.ndarray:
    """Build the lenders' ledger entries (LENDER_LEDGER_OBSERVATION), (B, N, 4)."""
    n = n_lenders
    defaults = np.broadcast_to(view["defaults"][:, n : n + 1], view["balance"][:, :n].shape)
    return np.stack(
        [
            view["balance"][:, :n],
            view["pending_incoming"][:, :n],
            view["outstanding_lent"][:, :n],
            defaults,
        ],
        axis=-1,
    )


def borrower_observation(view: Mapping[str, np.ndarray], n_lenders: int) -> np.ndarray:
    """Build the borrower's ledger entries (BORROWER_LEDGER_OBSERVATION), (B, 4)."""
    n = n_lenders
    return np.stack(
        [
            view["balance"][:, n],
            view["pending_incoming"][:, n],
            view["outstanding_debt"][:, n],
            view["defaults"][:, n],
        ],
        axis=-1,
    )


def round_infos(
    settled: RoundSettlement,
    view: Mapping[str, np.ndarray],
    budgets: np.ndarray,
    n_lenders: int,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Build the ledger entries of the round's infos: lenders' (B, N) and borrower's (B, 1).

    Args:
        settled: The round's settlement.
        view: :meth:`LendingLedger.view` or :meth:`LendingLedger.infos_view` after the round.
        budgets: The lenders' budgets when the round's loans were decided, (B, N).
        n_lenders: N.
    """
    n = n_lenders
    cashflow = settled.cashflow
    borrower_defaults = view["defaults"][:, n]
    lender = {
        keys.LENT: settled.lent,
        keys.BUDGET: budgets,
        keys.BALANCE: view["balance"][:, :n].copy(),
        keys.PENDING_INCOMING: view["pending_incoming"][:, :n],
        keys.PENDING_OUTGOING: view["pending_outgoing"][:, :n],
        keys.CASHFLOW: cashflow[:, :n],
        keys.REPAID: settled.repaid,
        keys.LOST_TO_DEFAULT: settled.lost,
        keys.DEFAULTS: np.repeat(borrower_defaults[:, None], n, axis=1),
    }
    borrower = {
        keys.BORROWED: settled.lent.sum(axis=1, keepdims=True),
        keys.BALANCE: view["balance"][:, n : n + 1].copy(),
        keys.PENDING_INCOMING: view["pending_incoming"][:, n : n + 1],
        keys.PENDING_OUTGOING: view["pending_outgoing"][:, n : n + 1],
        keys.CASHFLOW: cashflow[:, n : n + 1],
        keys.DATA_BOUGHT: settled.data_bought[:, None],
        keys.DEFAULTED: settled.defaulted[:, None],
        keys.DEFAULTS: borrower_defaults[:, None],
    }
    return lender, borrower


def _latency_bound(config: LedgerConfig) -> int:
    """Rounds a transaction can wait before it confirms, when blocks have room for it."""
    if config.mode == "chain":
        return config.block_interval * (config.confirmations + 1)
    if config.mode == "tangle":
        tangle = TangleConfig(**dict(config.tangle))
        # A milestone approves the tips left from the previous one, so two intervals suffice.
        return 2 * tangle.milestone_interval
    return 1
