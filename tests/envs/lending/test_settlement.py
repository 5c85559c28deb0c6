"""The lending markets on the ledger: the static games under the default settings, and the
cold start, budgets, delays, defaults and cashflow rewards once the ledger binds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledgerzoo
from ledgerzoo.envs.core import keys
from ledgerzoo.envs.lending import equilibrium, investing
from ledgerzoo.envs.lending.model import raise_borrower_utility
from ledgerzoo.envs.lending.one_to_many import OneToManyMarket
from ledgerzoo.envs.lending.one_to_one import LENDER_OBSERVATION, OneToOneMarket
from ledgerzoo.envs.lending.settlement import LENDER_LEDGER_OBSERVATION

MARKETS = {"lending_one_to_one_v0": OneToOneMarket, "lending_one_to_many_v0": OneToManyMarket}
CHAIN = {"mode": "chain", "block_interval": 2, "confirmations": 1}
BATCH = 8


def random_actions(market: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        role.name: rng.random((market.num_instances, role.count, *role.action_space.shape)).astype(
            np.float32
        )
        for role in market.roles
    }


def run_episode(market: Any, seed: int = 0) -> list[Any]:
    """Reset and step ``market`` with random actions to the end; return every step."""
    market.seed(list(range(seed, seed + market.num_instances)))
    market.reset()
    rng = np.random.default_rng(seed)
    steps = []
    while market.round < market.max_cycles:
        steps.append(market.step(random_actions(market, rng)))
    return steps


# --------------------------------------------------------------------------------------------
# The default settings are the static games.


def test_one_to_one_instant_rewards_are_static() -> None:
    market = OneToOneMarket(num_instances=BATCH, max_cycles=6, ledger="instant")
    market.seed(list(range(BATCH)))
    market.reset()
    rng = np.random.default_rng(1)
    for _ in range(6):
        actions = random_actions(market, rng)
        rates = market.rates_from_actions(actions["lender"][..., 0])
        loans = equilibrium.best_response_loans(rates, market.game)
        expected = equilibrium.outcome(rates, loans, market.game)["lender_utilities"]
        step = market.step(actions)
        np.testing.assert_array_equal(step.rewards["lender"], expected)
        np.testing.assert_array_equal(step.infos["lender"][keys.LOAN], loans)
        assert not np.any(step.infos["lender"][keys.DEFAULTS]), "a loan defaulted"
    assert np.all(market.book.ledger.conservation_error() < 1e-9)


def test_one_to_many_instant_rewards_are_static() -> None:
    market = OneToManyMarket(num_instances=BATCH, max_cycles=6, pricing="differentiated")
    market.seed(list(range(BATCH)))
    market.reset()
    rng = np.random.default_rng(2)
    for _ in range(6):
        actions = random_actions(market, rng)
        rates = market.rates_from_actions(actions["borrower"])
        investments = investing.investor_equilibrium(rates, market.game).investments
        game = market.game
        expected, _ = raise_borrower_utility(
            investments, rates, game.target, game.reward, game.valuation, game.failure_utility
        )
        step = market.step(actions)
        np.testing.assert_array_equal(step.rewards["borrower"][:, 0], expected)
        assert not np.any(step.infos["borrower"][keys.DEFAULTS]), "a loan defaulted"
    assert np.all(market.book.ledger.conservation_error() < 1e-9)


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_equilibrium_play_earns_reference(name: str) -> None:
    market = MARKETS[name](num_instances=4, max_cycles=4, reference=True)
    market.seed([10, 11, 12, 13])
    market.reset()
    for _ in range(4):
        step = market.step(market.equilibrium_actions())
        # Actions are float32, so the played rates match the equilibrium to about 1e-7.
        for infos in step.infos.values():
            np.testing.assert_allclose(
                infos[keys.UTILITY], infos[f"{keys.REFERENCE}/{keys.UTILITY}"], rtol=1e-6
            )


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_default_spaces_have_no_ledger_entries(name: str) -> None:
    static = MARKETS[name](num_instances=1, followers="learned")
    chain = MARKETS[name](num_instances=1, followers="learned", ledger=CHAIN)
    assert not static.settings.observe
    assert chain.settings.observe
    for plain, observed in zip(static.roles, chain.roles, strict=True):
        extra = observed.observation_space.shape[0] - plain.observation_space.shape[0]
        assert extra == len(LENDER_LEDGER_OBSERVATION), (plain.name, extra)


def test_slack_settings_match_explicit_instant() -> None:
    default = run_episode(OneToOneMarket(num_instances=3, max_cycles=5))
    explicit = run_episode(
        OneToOneMarket(num_instances=3, max_cycles=5, ledger={"mode": "instant"}, loan_term=3)
    )
    for a, b in zip(default, explicit, strict=True):
        np.testing.assert_array_equal(a.rewards["lender"], b.rewards["lender"])


# --------------------------------------------------------------------------------------------
# The ledger changes the dynamics.


def test_chain_cold_start_delays_data_and_defaults() -> None:
    market = OneToOneMarket(
        num_instances=1,
        max_cycles=8,
        followers="learned",
        ledger=CHAIN,
        loan_term=1,
        data_price=0.5,
        data_income=20.0,
    )
    market.seed([0])
    market.reset()
    bought, defaults, pending = [], [], []
    for _ in range(8):
        market.step(market.equilibrium_actions())
        step = market.step(market.equilibrium_actions())
        borrower = step.infos["borrower"]
        bought.append(bool(borrower[keys.DATA_BOUGHT][0, 0]))
        defaults.append(int(borrower[keys.DEFAULTS][0, 0]))
        pending.append(float(borrower[keys.PENDING_INCOMING][0, 0]))
    # A transaction of round t is in the block formed at the end of round t or t + 1 and is
    # confirmed one block later: nothing the borrower receives is spendable before round 3.
    assert bought[:3] == [False, False, False], bought
    assert any(bought[3:]), bought
    assert pending[0] > 0.0
    # A one-round loan matures before its own principal confirms, so the first ones default.
    assert defaults[1] >= 1, defaults
    assert defaults == sorted(defaults), "the default count fell"


def test_budget_caps_the_loan() -> None:
    market = OneToOneMarket(
        num_instances=BATCH, max_cycles=5, lender_budget=3.0, willingness=4.0, min_rate=0.05
    )
    steps = run_episode(market)
    for step in steps:
        infos = step.infos["lender"]
        assert np.all(infos[keys.LOAN] <= infos[keys.BUDGET] + 1e-12)
        assert np.all(infos[keys.LENT] <= infos[keys.BUDGET] + 1e-12)
        assert np.all(infos[keys.BALANCE] >= 0.0)
    # d / r >= 4 / 0.5 = 8 coins is above every starting budget, so it binds in round 0.
    np.testing.assert_allclose(steps[0].infos["lender"][keys.LOAN], 3.0)


def test_investors_best_respond_within_budgets() -> None:
    market = OneToManyMarket(num_instances=BATCH, max_cycles=3, lender_budget=[2.0, 50, 50, 5, 50])
    market.seed(list(range(BATCH)))
    market.reset()
    budgets = market.book.budgets()
    rates = market.rates_from_actions(np.full((BATCH, 1, 1), 0.5, dtype=np.float32))
    step = market.step({"borrower": np.full((BATCH, 1, 1), 0.5, dtype=np.float32)})
    invested = step.infos["borrower"][keys.INVESTMENTS][:, 0]
    assert np.all(invested <= budgets + 1e-12)
    # Each capped investment is the capped best response to the others: a Nash equilibrium.
    others = invested.sum(axis=1, keepdims=True) - invested
    response = investing.investor_best_response(others, rates, market.game, budgets)
    np.testing.assert_allclose(invested, response, rtol=1e-6, atol=1e-8)


def test_cashflow_rewards_are_confirmed_coins() -> None:
    market = OneToOneMarket(
        num_instances=BATCH, max_cycles=6, reward_type="cashflow", followers="learned"
    )
    market.seed(list(range(BATCH)))
    market.reset()
    ledger = market.book.ledger
    start = ledger.balances.copy()
    rng = np.random.default_rng(5)
    n = market.n_lenders
    lenders = np.zeros((BATCH, n))
    borrower = np.zeros(BATCH)
    while market.round < market.max_cycles:
        step = market.step(random_actions(market, rng))
        lenders += step.rewards["lender"]
        borrower += step.rewards["borrower"][:, 0]
    # On the instant ledger every transaction confirms in its round, so an agent's summed
    # cashflow is the change of its balance.
    change = ledger.balances - start
    np.testing.assert_allclose(lenders, change[:, :n], atol=1e-9)
    np.testing.assert_allclose(borrower, change[:, n], atol=1e-9)
    # The last round's loans are still out; every earlier one came back with its interest.
    interest = lenders + market.book.loans.outstanding_lent()[:, :n]
    assert np.all(interest >= -1e-9)
    assert np.all(interest.sum(axis=1) > 0.0), "lenders earned no interest"


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_audit_log_replays_balances(name: str) -> None:
    market = MARKETS[name](
        num_instances=1,
        max_cycles=6,
        ledger={**CHAIN, "audit": True},
        data_price=0.5,
        data_income=2.0,
        loan_term=2,
    )
    run_episode(market)
    ledger = market.book.ledger
    log = ledger.audit_logs[0]
    log.verify()
    # The log contains confirmed transactions. Pending ones are already debited from payers.
    np.testing.assert_allclose(
        log.replay(), ledger.balances[0] + ledger.pending_outgoing()[0], atol=1e-9
    )


@settings(max_examples=25, deadline=None)
@given(
    mode=st.sampled_from(["instant", "chain", "tangle"]),
    term=st.integers(1, 4),
    budget=st.one_of(st.none(), st.floats(0.0, 200.0)),
    price=st.floats(0.0, 5.0),
    income=st.one_of(st.none(), st.floats(0.0, 10.0)),
    start=st.floats(0.0, 50.0),
    seed=st.integers(0, 2**16),
    many=st.booleans(),
)
def test_ledger_invariants_hold(
    mode: str,
    term: int,
    budget: float | None,
    price: float,
    income: float | None,
    start: float,
    seed: int,
    many: bool,
) -> None:
    market_class = OneToManyMarket if many else OneToOneMarket
    market = market_class(
        n_lenders=3,
        num_instances=3,
        max_cycles=6,
        followers="learned",
        ledger=mode,
        loan_term=term,
        lender_budget=budget,
        data_price=price,
        data_income=income,
        borrower_balance=start,
    )
    steps = run_episode(market, seed)
    ledger = market.book.ledger
    assert np.all(ledger.conservation_error() < 1e-6)
    assert np.all(ledger.balances[:, : ledger.mint] >= -1e-9)
    for step in steps:
        for role in market.roles:
            assert np.all(np.isfinite(step.observations[role.name]))
            assert role.observation_space.contains(step.observations[role.name][0, 0])


# --------------------------------------------------------------------------------------------
# Arguments.


@pytest.mark.parametrize("name", sorted(MARKETS))
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"loan_term": 0}, ValueError, "loan_term 0"),
        ({"loan_term": 1.5}, TypeError, r"loan_term.*1\.5"),
        ({"reward_type": "profit"}, ValueError, "reward_type 'profit'"),
        ({"lender_budget": -1.0}, ValueError, r"lender_budget.*-1\.0"),
        ({"data_price": float("nan")}, ValueError, "data_price nan"),
        ({"data_income": -2.0}, ValueError, r"data_income -2\.0"),
        ({"borrower_balance": "lots"}, ValueError, "borrower_balance 'lots'"),
        ({"observe_ledger": "yes"}, TypeError, "observe_ledger.*'yes'"),
        ({"ledger": "blockchain"}, ValueError, "ledger mode 'blockchain'"),
        ({"ledger": {"mode": "chain", "blocks": 3}}, ValueError, "ledger setting 'blocks'"),
        ({"ledger": {"mode": "chain", "confirmations": -1}}, ValueError, "confirmations -1"),
    ],
)
def test_bad_ledger_arguments_raise(
    name: str, kwargs: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        ledgerzoo.make(name, **kwargs)


def test_observe_ledger_entries_match_ledger() -> None:
    market = OneToOneMarket(num_instances=2, max_cycles=3, observe_ledger=True)
    market.seed([0, 1])
    market.reset()
    step = market.step(random_actions(market, np.random.default_rng(0)))
    observed = step.observations["lender"][..., len(LENDER_OBSERVATION) :]
    infos = step.infos["lender"]
    np.testing.assert_allclose(observed[..., 0], infos[keys.BALANCE], rtol=1e-6)
    np.testing.assert_allclose(observed[..., 1], infos[keys.PENDING_INCOMING], rtol=1e-6)


def test_best_response_respects_budgets() -> None:
    market = OneToOneMarket(
        num_instances=2, max_cycles=2, lender_budget=[4.0, 30.0, 6.0, 30.0, 2.0], reference=True
    )
    market.seed([3, 4])
    market.reset()
    budgets = market.book.budgets()
    actions = {"lender": np.full((2, 5, 1), 0.3, dtype=np.float32)}
    rates = market.rates_from_actions(actions["lender"][..., 0])
    infos = market.step(actions).infos["lender"]

    # Brute force over each lender's rate, the others' rates held, every loan capped by its
    # lender's budget as the round caps it.
    game = market.game
    for i in range(5):
        grid = np.linspace(game.min_rate[:, i], market.max_rate, 4001).T  # (B, G)
        best = np.full(2, -np.inf)
        for column in range(grid.shape[1]):
            trial = rates.copy()
            trial[:, i] = grid[:, column]
            loans = np.minimum(equilibrium.best_response_loans(trial, game), budgets)
            utility = equilibrium.outcome(trial, loans, game)["lender_utilities"][:, i]
            best = np.maximum(best, utility)
        reported = infos[keys.BEST_RESPONSE_UTILITY][:, i]
        assert np.all(reported >= best - 1e-6 * np.abs(best)), (i, reported, best)
        assert np.all(reported <= best + 1e-3 * np.abs(best)), (i, reported, best)


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_rejected_loans_earn_nothing(name: str) -> None:
    # A queue of one slot is full after the first transaction of a round, so principals are
    # rejected. No utility may be paid for loans that never moved.
    market = MARKETS[name](
        num_instances=2, max_cycles=3, ledger={"mode": "chain", "queue_capacity": 1}
    )
    steps = run_episode(market)
    for step in steps:
        role = "lender" if name == "lending_one_to_one_v0" else "borrower"
        infos = step.infos[role]
        lent = infos[keys.LENT].sum(axis=1) if keys.LENT in infos else infos[keys.BORROWED][:, 0]
        if name == "lending_one_to_one_v0":
            no_loan = lent == 0.0
            assert np.all(step.rewards["lender"][no_loan] == 0.0), step.rewards["lender"]
        else:
            failed = infos[keys.RAISE_FAILED][:, 0]
            assert np.all(failed | (lent > 0.0)), (failed, lent)


def test_huge_settings_stay_bounded() -> None:
    market = OneToOneMarket(
        num_instances=2,
        max_cycles=4,
        loan_term=10**6,
        ledger={"mode": "chain", "block_interval": 10**6, "confirmations": 10**6},
    )
    run_episode(market)
    assert market.book.loans.status.shape[1] <= 4
    assert market.book.ledger.config.queue_capacity <= 4 * 5


@pytest.mark.parametrize(
    ("ledger", "pattern"),
    [
        ({"mode": "tangle", "tangle": {"alpah": 0.1}}, "unknown tangle setting 'alpah'"),
        ({"mode": "tangle", "tangle": 3}, "tangle 3"),
        ({"mode": "chain", "audit": "false"}, "audit 'false'"),
        ({"mode": "chain", "queue_capacity": 10**9}, "queue_capacity"),
    ],
)
def test_bad_ledger_settings_raise(ledger: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        OneToOneMarket(ledger=ledger)


def test_numpy_integers_accepted() -> None:
    market = OneToOneMarket(
        loan_term=np.int64(2), ledger={"mode": "chain", "block_interval": np.int64(2)}
    )
    assert market.book.ledger.config.block_interval == 2
