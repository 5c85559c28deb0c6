"""The offloading market as a repeated game: the batched core and its PettingZoo face.

The stage game, its costs and its solvers are in ``model.py``, ``equilibrium.py`` and
``pricing.py``. This module turns them into a market that B instances step together
(:class:`OffloadingMarket`) and its PettingZoo ParallelEnv (:class:`OffloadingEnv`).

Each episode draws the topology and every device's task. Every round repeats that stage
game, as the lending markets repeat theirs, so the reference equilibrium is solved once per
episode (every round when edges post prices). Payments settle on a ledger: each device pays its
provider (an edge, or the cloud through the ``clearing`` account) and its relays, and earns
its expected mining income as new value that is spendable once confirmed.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.market import BatchedMarket, Role
from ledgerzoo.envs.core.parallel import MarketParallelEnv
from ledgerzoo.envs.core.params import describe_value, to_float
from ledgerzoo.envs.core.spaces import box_from_table, index_of, to_space
from ledgerzoo.envs.offloading import baselines, equilibrium, model, pricing
from ledgerzoo.envs.offloading.game import (
    OffloadingGame,
    Tasks,
    build_game,
    draw_instances,
)
from ledgerzoo.envs.offloading.reputation import beta_reputation
from ledgerzoo.envs.offloading.scenario import OffloadingScenario, uniform_in_range
from ledgerzoo.envs.offloading.topology import LOCAL_ACTION, build_topology
from ledgerzoo.ledger import Kind, Ledger, LedgerConfig, LoanBook

NAME = "offloading_v0"
LEADER_MODES = ("fixed", "learned")
DEFAULT_N_DEVICES = 8
DEFAULT_N_EDGES = 2
DEFAULT_MAX_CYCLES = 25
DEFAULT_RELIABILITY = (0.7, 1.0)  # theta_k range, probability that edge k completes a task
DEFAULT_FAILURE_PENALTY = 0.5  # coins a device loses when its task fails on an edge
DEFAULT_BANK_RATE = 0.05  # interest per round of a bank loan
# Largest amount of coins (device_balance, failure_penalty) and bank rate the market accepts,
# so that balances and debts stay finite in float32 observations.
MAX_COINS = 1e12
MAX_BANK_RATE = 1e3  # fraction of the debt per round
# Exhaustive search for the social optimum runs at reset while the profiles number at most
# this many; beyond it the reference reports a local-search bound.
MAX_OPTIMUM_PROFILES = 200_000
GIGA = 1e9
MEGA = 1e6

DEVICE_HEADER = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("task_megabits", 0.0, np.inf),
    ("task_gigacycles", 0.0, np.inf),
    ("is_mining", 0.0, 1.0),
    ("hash_share", 0.0, 1.0),
    ("delay_value", 0.0, np.inf),
    ("cpu_gigahertz", 0.0, np.inf),
    ("mining_income", 0.0, np.inf),
)
DEVICE_PER_ACTION = (
    ("legal", 0.0, 1.0),
    ("private_cost", 0.0, np.inf),
    ("route_delay", 0.0, np.inf),
    ("chosen_last_round", 0.0, 1.0),
)
DEVICE_PER_EDGE = (
    ("price_per_gigacycle", 0.0, np.inf),
    ("reputation", 0.0, 1.0),
)
DEVICE_LEDGER = (
    ("balance", -np.inf, np.inf),
    ("pending_incoming", 0.0, np.inf),
)
EDGE_OBSERVATION = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("min_price", 0.0, np.inf),
    ("max_price", 0.0, np.inf),
    ("running_cost", 0.0, np.inf),
    ("last_price", 0.0, np.inf),
    ("others_mean_last_price", 0.0, np.inf),
    ("last_tasks", 0.0, np.inf),
    ("last_gigacycles", 0.0, np.inf),
    ("last_profit", -np.inf, np.inf),
    ("reputation", 0.0, 1.0),
    ("device_share", 0.0, 1.0),
)
HEADER_INDEX = index_of(DEVICE_HEADER)
EDGE_INDEX = index_of(EDGE_OBSERVATION)


class OffloadingMarket(BatchedMarket):
    """B instances of the offloading market, stepped on (B, N) and (B, K) arrays.

    Arguments are those of :class:`OffloadingEnv`, plus ``num_instances`` (B).
    """

    name = NAME
    masked_roles = ("device",)

    def __init__(
        self,
        n_devices: int = DEFAULT_N_DEVICES,
        n_edges: int = DEFAULT_N_EDGES,
        scenario: Mapping[str, Any] | None = None,
        leaders: str = "fixed",
        price_points: int = pricing.GRID_POINTS,
        reputation: bool = False,
        reliability: Sequence[float] = DEFAULT_RELIABILITY,
        failure_penalty: float = DEFAULT_FAILURE_PENALTY,
        ledger: Any = "instant",
        device_balance: float | None = None,
        loans: bool = False,
        bank_rate: float = DEFAULT_BANK_RATE,
        observe_ledger: bool | None = None,
        max_cycles: int = DEFAULT_MAX_CYCLES,
        reward_scale: float = 1.0,
        reference: bool = False,
        num_instances: int = 1,
    ) -> None:
        if leaders not in LEADER_MODES:
            raise ValueError(f"invalid leaders {leaders!r}; expected one of {list(LEADER_MODES)}")
        super().__init__(
            num_instances=num_instances,
            max_cycles=max_cycles,
            two_phase=leaders == "learned",
            reward_scale=reward_scale,
        )
        self.scenario = _parse_scenario(n_devices, n_edges, scenario)
        self.n_devices = self.scenario.n_devices
        self.n_edges = self.scenario.n_edges
        self.n_actions = self.scenario.n_actions
        self.leaders = leaders
        for name, flag in (("reference", reference), ("reputation", reputation), ("loans", loans)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if isinstance(price_points, bool) or not isinstance(price_points, (int, np.integer)):
            raise TypeError(f"price_points must be an int, got {price_points!r}")
        if price_points < 2:
            raise ValueError(f"invalid price_points {price_points}: expected at least 2")
        self.price_points = int(price_points)
        self.reference = bool(reference)
        self.reputation = bool(reputation)
        self.loans = bool(loans)
        self.reliability = _probability_range("reliability", reliability)
        self.failure_penalty = _coins("failure_penalty", failure_penalty)
        self.bank_rate = _coins("bank_rate", bank_rate, maximum=MAX_BANK_RATE)
        self.device_balance = (
            None if device_balance is None else _coins("device_balance", device_balance)
        )
        self.ledger_config = LedgerConfig.parse(ledger)
        if observe_ledger is not None and not isinstance(observe_ledger, (bool, np.bool_)):
            raise TypeError(f"observe_ledger must be True, False or None, got {observe_ledger!r}")
        static = self.ledger_config.mode == "instant" and self.device_balance is None
        self.observe_ledger = not static if observe_ledger is None else bool(observe_ledger)

        n, k, a = self.n_devices, self.n_edges, self.n_actions
        device_table = [DEVICE_HEADER, DEVICE_PER_ACTION * a, DEVICE_PER_EDGE * k]
        if self.observe_ledger:
            device_table.append(DEVICE_LEDGER)
        roles = [Role("device", n, box_from_table(*device_table), gymnasium.spaces.Discrete(a))]
        if self.two_phase:
            roles.append(
                Role(
                    "edge",
                    k,
                    box_from_table(EDGE_OBSERVATION),
                    gymnasium.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
                )
            )
        self._roles = tuple(roles)

        accounts = [f"device_{i}" for i in range(n)] + [f"edge_{j}" for j in range(k)] + ["bank"]
        self.bank = n + k
        self.ledger = Ledger(accounts, self.num_instances, self._sized(self.ledger_config))
        config = self.ledger_config
        if config.mode == "chain" and config.block_capacity < 2 * n * config.block_interval:
            # Each device pays its provider and is minted its income every round, so blocks
            # that carry fewer leave a growing backlog, and a full queue rejects payments.
            warnings.warn(
                f"the chain confirms at most {config.block_capacity} transactions every "
                f"{config.block_interval} rounds, but {n} devices submit at least {2 * n} per "
                "round; payments will back up and be rejected (info 'payment_rejected'). "
                "Raise block_capacity or lower block_interval",
                stacklevel=2,
            )
        self.book = LoanBook(self.ledger, capacity=n)  # resized at every reset
        self.game: OffloadingGame | None = None
        self._episode_tasks: Tasks | None = None
        self._clear_history()

    # ----------------------------------------------------------------------------------------

    @property
    def roles(self) -> tuple[Role, ...]:
        return self._roles

    def acting_roles(self) -> tuple[str, ...]:
        if self.two_phase and self.phase == keys.LEADERS_PHASE:
            return ("edge",)
        return ("device",)

    def _sized(self, config: LedgerConfig) -> LedgerConfig:
        """Size the queue unless the config sets it: a round's transactions times the rounds
        they can wait. Per device a round has a provider payment, at most N - 1 relay fees, a
        loan, a repayment and an income."""
        if config.queue_capacity != LedgerConfig().queue_capacity:
            return config
        n = self.scenario.n_devices
        per_round = n * (n + 4)
        if config.mode == "chain":
            rounds = config.block_interval * (config.confirmations + 1) + 1
        elif config.mode == "tangle":
            rounds = 2 * int(dict(config.tangle).get("milestone_interval", 5)) + 1
        else:
            rounds = 1
        # No transaction waits longer than the episode.
        rounds = min(rounds, self.max_cycles + 1)
        return dataclasses.replace(config, queue_capacity=per_round * rounds)

    def _clear_history(self) -> None:
        batch, n, k = self.num_instances, self.n_devices, self.n_edges
        self.has_history = False
        self.last_actions = np.full((batch, n), LOCAL_ACTION, dtype=np.int64)
        self.last_prices = np.broadcast_to(self.scenario.edge_prices, (batch, k)).copy()
        self.posted_prices = self.last_prices.copy()
        self.last_edge_tasks = np.zeros((batch, k))
        self.last_edge_cycles = np.zeros((batch, k))
        self.last_edge_profits = np.zeros((batch, k))
        self.successes = np.zeros((batch, k))
        self.failures = np.zeros((batch, k))
        self.last_costs: np.ndarray | None = None
        self.last_rewards: np.ndarray | None = None
        self._masks: tuple[OffloadingGame, np.ndarray] | None = None
        self._deviations: tuple[OffloadingGame, np.ndarray, np.ndarray] | None = None

    def _reset_episode(self, generators: Sequence[np.random.Generator]) -> None:
        # Each instance draws from its own generator, in one call (draw_instances): device
        # positions, its devices' tasks, then with reputation the edge reliabilities and the
        # task failure draws of every round.
        scenario = self.scenario
        n, k = self.n_devices, self.n_edges
        extra = k + self.max_cycles * n if self.reputation else 0
        positions, self._episode_tasks, extra_draws = draw_instances(scenario, generators, extra)
        topology = build_topology(
            positions,
            scenario.edge_position_array,
            scenario.radio_range,
            scenario.edge_range,
        )
        self.base_game = build_game(scenario, topology, self._episode_tasks)
        self.game = self.base_game
        self.reliabilities = self.failure_draws = None
        if self.reputation:
            self.reliabilities = uniform_in_range(extra_draws[:, :k], self.reliability)
            self.failure_draws = extra_draws[:, k:].reshape(-1, self.max_cycles, n)

        # The maximum the devices of an instance can pay in an episode is every device's
        # dearest bill, every round. It sizes the balances that never bind: the devices'
        # without a device_balance, and the bank's, so that it can lend whatever is asked.
        provider, relays = self.base_game.payments
        most = self.max_cycles * (provider + relays).max(axis=2).sum(axis=1) + 1.0
        balance = self.device_balance
        balance_per_device = (
            most[:, None] if balance is None else np.full((self.num_instances, 1), balance)
        )
        starts = np.concatenate(
            [
                np.broadcast_to(balance_per_device, (self.num_instances, self.n_devices)),
                np.zeros((self.num_instances, self.n_edges)),
                most[:, None],
            ],
            axis=1,
        )
        seeds = None
        if self.ledger_config.mode == "tangle":
            seeds = [int(rng.integers(2**63 - 1)) for rng in generators]
        self.ledger.reset(starts, seeds=seeds)
        # A short device borrows its provider's bill and one fee per relay of its route.
        relays = (self.base_game.topology.route_relays < self.n_devices).sum(axis=3)
        self.book = LoanBook(self.ledger, capacity=self.n_devices * (1 + int(relays.max())))
        self._clear_history()
        self._reference_episode()

    def _reference_episode(self) -> None:
        """Solve the episode's reference values (only with ``reference=True``)."""
        self.nash: equilibrium.NashEquilibrium | None = None
        self.optimum_cost: np.ndarray | None = None
        self.optimum_exact = False
        self.baseline_costs: dict[str, np.ndarray] = {}
        self.pricing: pricing.PricingResult | None = None
        if not self.reference:
            return
        game = self.base_game
        if self.two_phase:
            self.pricing = pricing.solve_edge_pricing(game, grid_points=self.price_points)
            game = game.with_edge_prices(self.pricing.prices)
        self.reference_game = game
        self.nash = equilibrium.solve_nash(game)
        if np.all(equilibrium.profiles_within(game, MAX_OPTIMUM_PROFILES)):
            self.optimum_cost = equilibrium.social_optimum(game).total_cost
            self.optimum_exact = True
        else:
            self.optimum_cost = equilibrium.improve_social_cost(game, self.nash.profile).total_cost
        self.baseline_costs = _baseline_costs(game)

    # ----------------------------------------------------------------------------------------
    # Masks and actions.

    def action_masks(self) -> dict[str, np.ndarray]:
        game = self._game()
        if self.device_balance is None or self.loans:
            return {"device": game.action_mask}
        # Without loans a device runs locally when it cannot pay for offloading. The mask
        # changes with the game and the balances, so it is kept until the round settles.
        if self._masks is None or self._masks[0] is not game:
            provider, relays = game.payments
            balance = self.ledger.balances[:, : self.n_devices, None]
            self._masks = (game, game.action_mask & ((provider + relays) <= balance + 1e-9))
        return {"device": self._masks[1]}

    def _deviation_costs(self, game: OffloadingGame, actions: np.ndarray) -> np.ndarray:
        """Compute :func:`model.deviation_costs` once for a game and an action profile.

        A round's infos (with ``reference=True``) and the next observations both need the
        deviation costs of the round's actions.
        """
        cached = self._deviations
        if cached is None or cached[0] is not game or cached[1] is not actions:
            cached = (game, actions, model.deviation_costs(game, actions))
            self._deviations = cached
        return cached[2]

    def _game(self) -> OffloadingGame:
        if self.game is None:
            raise RuntimeError("call reset() before using the market")
        return self.game

    def prices_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map edge actions (B, K, 1) in [0, 1] onto prices in [p_min, p_max] (coins per cycle)."""
        low, high = self.scenario.price_range
        return low + actions[..., 0].astype(np.float64) * (high - low)

    def actions_from_prices(self, prices: np.ndarray) -> np.ndarray:
        """Invert :meth:`prices_from_actions`, (B, K) -> (B, K, 1) float32."""
        low, high = self.scenario.price_range
        span = high - low if high > low else 1.0
        return np.clip((prices - low) / span, 0.0, 1.0).astype(np.float32)[..., None]

    # ----------------------------------------------------------------------------------------
    # Steps.

    def _step_phase(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        if "edge" in actions:
            # Leaders' step: the prices are posted, and the devices choose in the next step.
            self.posted_prices = self.prices_from_actions(actions["edge"])
            self.game = self.base_game.with_edge_prices(self.posted_prices)
            return {}, {"edge": {keys.PRICE: self.posted_prices}}
        return self._settle_round(actions["device"])

    def _settle_round(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        game = self._game()
        batch, n = self.num_instances, self.n_devices
        # The choices the devices had, before this round's payments change the balances.
        allowed = self.action_masks()["device"]
        # Each device's cost is the deviation cost of its own action, bit for bit (a test checks
        # it against model.device_costs), and the next observations need every deviation cost.
        deviations = self._deviation_costs(game, actions)
        costs = np.take_along_axis(deviations, actions[:, :, None], axis=2)[:, :, 0]
        relay_income = model.relay_income(game, actions)
        on_edge = model.edge_tasks(game, actions)  # (B, N, K)

        failed = np.zeros((batch, n), dtype=bool)
        if self.reputation:
            assert self.reliabilities is not None and self.failure_draws is not None
            theta = (on_edge * self.reliabilities[:, None, :]).sum(axis=2)
            failed = on_edge.any(axis=2) & (self.failure_draws[:, self.round] >= theta)
            self.successes += (on_edge & ~failed[:, :, None]).sum(axis=1)
            self.failures += (on_edge & failed[:, :, None]).sum(axis=1)
        penalty = np.where(failed, self.failure_penalty, 0.0)

        provider_bills, relay_fees = game.payments
        chosen_bill = np.take_along_axis(provider_bills, actions[:, :, None], axis=2)[:, :, 0]
        interest, rejected = self._settle_payments(game, actions, failed, chosen_bill, relay_fees)
        # A failed task mines no block and its edge is not paid: the device loses the mining
        # income and gets back the price in its cost, and still bears the delay and energy.
        refund = np.where(failed, chosen_bill, 0.0)
        income = np.where(failed, 0.0, game.mining_income)
        rewards = income - costs + refund + relay_income - penalty - interest

        cycles = game.tasks.task_cycles[:, :, None]
        done = on_edge & ~failed[:, :, None]
        lost = on_edge & failed[:, :, None]
        profits = ((game.edge_prices - game.running_costs) * (done * cycles).sum(axis=1)) - (
            game.running_costs * (lost * cycles).sum(axis=1)
        )

        infos = self._device_infos(
            game, actions, allowed, costs, rewards, relay_income, failed, interest
        )
        infos["device"][keys.PAYMENT_REJECTED] = rejected
        result_rewards = {"device": rewards}
        if self.two_phase:
            result_rewards["edge"] = profits
            infos["edge"] = self._edge_infos(game, actions, profits)

        self.last_actions = actions
        self.last_prices = game.edge_prices.copy()
        self.last_edge_tasks = on_edge.sum(axis=1).astype(np.float64)
        self.last_edge_cycles = (on_edge * cycles).sum(axis=1)
        self.last_edge_profits = profits
        self.last_costs = costs
        self.last_rewards = rewards
        self.has_history = True
        return result_rewards, infos

    def _settle_payments(
        self,
        game: OffloadingGame,
        actions: np.ndarray,
        failed: np.ndarray,
        chosen_bill: np.ndarray,
        relay_fees: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Settle the round's payments on the ledger.

        A device pays its provider (edge k, or the cloud through the clearing account) only for
        a task that did not fail, and pays each relay on its route its fee. For a task that did
        not fail it also earns its expected mining income as new value. A device that cannot
        pay borrows from the bank when loans are on: the bank pays the bills, and the device
        owes them with interest next round.

        Args:
            chosen_bill: The provider's bill of each device's chosen action (coins), (B, N).
            relay_fees: The relay fees of every action (coins), (B, N, A).

        Returns:
            Each device's interest on the loans that opened, (B, N) coins, and whether any of
            its payments or loans was rejected (a full queue or loan book), (B, N).
        """
        ledger, batch, n = self.ledger, self.num_instances, self.n_devices
        self.book.settle_due()

        chosen = actions[:, :, None]
        provider_bill = np.where(failed, 0.0, chosen_bill)
        relay_fee = np.take_along_axis(relay_fees, chosen, axis=2)[:, :, 0]
        relays = np.take_along_axis(game.topology.route_relays, chosen[..., None], axis=2)[:, :, 0]
        # Every relay on the route earns f B_i; the padding entries name device N.
        fee_each = self.scenario.relay_fee * game.tasks.task_bits

        # Edge k's account follows the devices'; the cloud is paid through the clearing account.
        to_cloud = actions >= 1 + self.n_edges
        payee = np.where(to_cloud, ledger.clearing, n + np.maximum(actions - 1, 0))
        bill = provider_bill + relay_fee
        balance = ledger.balances[:, :n]
        # Without loans the action masks keep bills within the balance, so only a device with
        # loans can be short.
        short = bill > balance + 1e-9

        devices = np.broadcast_to(np.arange(n), (batch, n))
        relay_valid = relays < n
        relay_payee = np.where(relay_valid, relays, 0)
        fee_matrix = np.broadcast_to(fee_each[:, :, None], relays.shape)
        payer_matrix = np.broadcast_to(devices[:, :, None], relays.shape)
        pays_provider = ~short & (provider_bill > 0.0)
        pays_fees = relay_valid & ~short[:, :, None] & (fee_matrix > 0.0)
        provider = ledger.submit(devices, payee, provider_bill, Kind.PAYMENT, where=pays_provider)
        fees = ledger.submit(
            payer_matrix.reshape(batch, -1),
            relay_payee.reshape(batch, -1),
            fee_matrix.reshape(batch, -1),
            Kind.PAYMENT,
            where=pays_fees.reshape(batch, -1),
        )
        rejected = pays_provider & ~provider.accepted
        rejected |= (pays_fees & ~fees.accepted.reshape(relays.shape)).any(axis=2)
        interest = np.zeros((batch, n))
        if self.loans and short.any():
            # The bank pays the provider and the relays on the device's behalf; the device owes
            # it next round.
            requested = short & (provider_bill > 0.0)
            slots = self.book.open(
                self.bank,
                devices,
                np.where(requested, provider_bill, 0.0),
                self.bank_rate,
                term=1,
                payee=payee,
            )
            borrowed = np.where(slots >= 0, provider_bill, 0.0)
            rejected |= requested & (slots < 0)
            fee_requests = relay_valid & short[:, :, None] & (fee_matrix > 0.0)
            loan_payer = np.broadcast_to(self.bank, relays.shape)
            fee_slots = self.book.open(
                loan_payer.reshape(batch, -1),
                payer_matrix.reshape(batch, -1),
                np.where(fee_requests, fee_matrix, 0.0).reshape(batch, -1),
                self.bank_rate,
                term=1,
                payee=relay_payee.reshape(batch, -1),
            ).reshape(relays.shape)
            borrowed += np.where(fee_slots >= 0, fee_matrix, 0.0).sum(axis=2)
            rejected |= (fee_requests & (fee_slots < 0)).any(axis=2)
            interest = self.bank_rate * borrowed
        income = np.where(failed, 0.0, game.mining_income)
        ledger.submit(ledger.mint, devices, income, Kind.MINT, where=income > 0.0)
        self._settlement = ledger.end_round()
        self._masks = None
        return interest, rejected

    # ----------------------------------------------------------------------------------------
    # Infos.

    def _device_infos(
        self,
        game: OffloadingGame,
        actions: np.ndarray,
        allowed: np.ndarray,
        costs: np.ndarray,
        rewards: np.ndarray,
        relay_income: np.ndarray,
        failed: np.ndarray,
        interest: np.ndarray,
    ) -> dict[str, dict[str, np.ndarray]]:
        n = self.n_devices
        total = costs.sum(axis=1, keepdims=True)
        settlement = self._settlement
        device: dict[str, np.ndarray] = {
            keys.ACTION: actions,
            keys.COST: costs,
            keys.UTILITY: rewards,
            keys.RELAY_INCOME: relay_income,
            keys.TASK_FAILED: failed,
            keys.INTEREST: interest,
            keys.TOTAL_COST: np.repeat(total, n, axis=1),
            keys.BALANCE: self.ledger.balances[:, :n].copy(),
            keys.PENDING_INCOMING: self.ledger.pending_incoming()[:, :n],
            keys.CASHFLOW: (settlement.received - settlement.paid)[:, :n],
        }
        if self.reference:
            # The exact best deviation of every device among the choices it had, the others'
            # actions held.
            deviations = np.where(allowed, self._deviation_costs(game, actions), np.inf)
            best_cost = deviations.min(axis=2)
            device[keys.BEST_RESPONSE_UTILITY] = rewards + np.maximum(costs - best_cost, 0.0)
            device[keys.BEST_RESPONSE_ACTION] = deviations.argmin(axis=2)
            self._add_reference(device, game)
        return {"device": device}

    def _add_reference(self, device: dict[str, np.ndarray], game: OffloadingGame) -> None:
        assert self.nash is not None and self.optimum_cost is not None
        n = self.n_devices
        nash_game = self.reference_game if not self.two_phase else game
        nash = self.nash
        optimum_cost, optimum_exact = self.optimum_cost, self.optimum_exact
        baseline_costs = self.baseline_costs
        if self.two_phase:
            # The devices' equilibrium, the optimum and the baselines are those of the prices
            # the edges actually posted. The optimum is the local-search bound from that
            # equilibrium, so it is never above it.
            nash = equilibrium.solve_nash(game)
            optimum_cost = equilibrium.improve_social_cost(game, nash.profile).total_cost
            optimum_exact = False
            baseline_costs = _baseline_costs(game)
        nash_rewards = model.rewards(nash_game, nash.profile)
        reference = {
            keys.ACTION: nash.profile,
            keys.COST: nash.costs,
            keys.UTILITY: nash_rewards,
            keys.TOTAL_COST: np.repeat(nash.total_cost[:, None], n, axis=1),
            keys.OPTIMUM_COST: np.repeat(optimum_cost[:, None], n, axis=1),
            keys.OPTIMUM_EXACT: np.full(nash.costs.shape, optimum_exact),
        }
        for name, cost in baseline_costs.items():
            reference[f"{name}_cost"] = np.repeat(cost[:, None], n, axis=1)
        for key, value in reference.items():
            device[f"{keys.REFERENCE}/{key}"] = value

    def _edge_infos(
        self, game: OffloadingGame, actions: np.ndarray, profits: np.ndarray
    ) -> dict[str, np.ndarray]:
        on_edge = model.edge_tasks(game, actions)
        infos = {
            keys.PRICE: game.edge_prices,
            keys.UTILITY: profits,
            keys.TASKS: on_edge.sum(axis=1).astype(np.int64),
        }
        if self.reference and self.pricing is not None:
            infos[f"{keys.REFERENCE}/{keys.PRICE}"] = self.pricing.prices
            infos[f"{keys.REFERENCE}/{keys.UTILITY}"] = self.pricing.profits
        return infos

    # ----------------------------------------------------------------------------------------
    # Observations and reference policies.

    def observe(self) -> dict[str, np.ndarray]:
        observations = {"device": self._observe_devices()}
        if self.two_phase:
            observations["edge"] = self._observe_edges()
        return observations

    def route_delays(self) -> np.ndarray:
        """Delay of every action's route at last round's loads, plus the device itself (s),
        (B, N, A): what the device would wait if it alone changed its choice. 0 where illegal."""
        game = self._game()
        deviations = self._deviation_costs(game, self.last_actions)
        delay = (deviations - game.private_costs) / game.weights[:, :, None]
        return np.where(game.action_mask, delay, 0.0)

    def _observe_devices(self) -> np.ndarray:
        game = self._game()
        batch, n = self.num_instances, self.n_devices
        tasks = game.tasks
        header = np.zeros((batch, n, len(DEVICE_HEADER)))
        header[..., HEADER_INDEX["phase"]] = self.phase
        header[..., HEADER_INDEX["round_progress"]] = self.round / self.max_cycles
        header[..., HEADER_INDEX["has_history"]] = float(self.has_history)
        header[..., HEADER_INDEX["task_megabits"]] = tasks.task_bits / MEGA
        header[..., HEADER_INDEX["task_gigacycles"]] = tasks.task_cycles / GIGA
        header[..., HEADER_INDEX["is_mining"]] = tasks.is_mining
        header[..., HEADER_INDEX["hash_share"]] = tasks.hash_share
        header[..., HEADER_INDEX["delay_value"]] = game.weights
        header[..., HEADER_INDEX["cpu_gigahertz"]] = tasks.device_cpu_speed / GIGA
        header[..., HEADER_INDEX["mining_income"]] = game.mining_income
        mask = self.action_masks()["device"]
        chosen = np.zeros(mask.shape)
        if self.has_history:
            np.put_along_axis(chosen, self.last_actions[..., None], 1.0, axis=2)
        per_action = np.stack(
            [
                mask.astype(np.float64),
                np.where(mask, game.private_costs, 0.0),
                self.route_delays(),
                chosen,
            ],
            axis=-1,
        ).reshape(batch, n, -1)
        per_edge = np.stack([game.edge_prices * GIGA, self.reputation_scores()], axis=-1).reshape(
            batch, 1, -1
        )
        parts = [header, per_action, np.broadcast_to(per_edge, (batch, n, per_edge.shape[-1]))]
        if self.observe_ledger:
            ledger_part = np.stack(
                [
                    self.ledger.balances[:, :n],
                    self.ledger.pending_incoming()[:, :n],
                ],
                axis=-1,
            )
            parts.append(ledger_part)
        observation = np.concatenate(parts, axis=-1)
        return to_space(observation, self._roles[0].observation_space)

    def reputation_scores(self) -> np.ndarray:
        """Beta reputation of every edge, (successes + 1) / (successes + failures + 2), (B, K)."""
        return beta_reputation(self.successes, self.failures)

    def _observe_edges(self) -> np.ndarray:
        batch, k = self.num_instances, self.n_edges
        low, high = self.scenario.price_range
        obs = np.zeros((batch, k, len(EDGE_OBSERVATION)))
        obs[..., EDGE_INDEX["phase"]] = self.phase
        obs[..., EDGE_INDEX["round_progress"]] = self.round / self.max_cycles
        obs[..., EDGE_INDEX["has_history"]] = float(self.has_history)
        obs[..., EDGE_INDEX["min_price"]] = low * GIGA
        obs[..., EDGE_INDEX["max_price"]] = high * GIGA
        obs[..., EDGE_INDEX["running_cost"]] = self._game().running_costs * GIGA
        obs[..., EDGE_INDEX["last_price"]] = self.last_prices * GIGA
        if k > 1:
            total = self.last_prices.sum(axis=1, keepdims=True)
            obs[..., EDGE_INDEX["others_mean_last_price"]] = (
                (total - self.last_prices) / (k - 1) * GIGA
            )
        obs[..., EDGE_INDEX["last_tasks"]] = self.last_edge_tasks
        obs[..., EDGE_INDEX["last_gigacycles"]] = self.last_edge_cycles / GIGA
        obs[..., EDGE_INDEX["last_profit"]] = self.last_edge_profits
        obs[..., EDGE_INDEX["reputation"]] = self.reputation_scores()
        obs[..., EDGE_INDEX["device_share"]] = self.last_edge_tasks / self.n_devices
        return to_space(obs, self._roles[1].observation_space)

    def equilibrium_actions(self) -> dict[str, np.ndarray]:
        """Return the reference equilibrium's actions: the devices' Nash equilibrium for the
        current prices (solved on demand) and, with learned leaders, the edges' pricing
        equilibrium."""
        game = self._game()
        actions: dict[str, np.ndarray] = {}
        if self.two_phase:
            result = self.pricing or pricing.solve_edge_pricing(
                self.base_game, grid_points=self.price_points
            )
            self.pricing = result
            actions["edge"] = self.actions_from_prices(result.prices)
            if self.phase == keys.LEADERS_PHASE:
                game = self.base_game.with_edge_prices(result.prices)
        if self.nash is not None and not self.two_phase:
            profile = self.nash.profile
        else:
            profile = equilibrium.solve_nash(game).profile
        actions["device"] = self._legal(profile)
        return actions

    def best_response_actions(
        self, observations: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Myopic best responses from observations: each device picks the legal action of the
        lowest private cost plus delay value times route delay at last round's loads. Edges
        keep last round's price (they have no myopic best response short of the grid search)."""
        actions: dict[str, np.ndarray] = {}
        if "device" in observations:
            obs = np.asarray(observations["device"], dtype=np.float64)
            a = self.n_actions
            start = len(DEVICE_HEADER)
            width = len(DEVICE_PER_ACTION)
            per_action = obs[..., start : start + width * a].reshape(*obs.shape[:-1], a, width)
            legal = per_action[..., 0] > 0.5
            weight = obs[..., HEADER_INDEX["delay_value"]][..., None]
            estimate = per_action[..., 1] + weight * per_action[..., 2]
            actions["device"] = np.argmin(np.where(legal, estimate, np.inf), axis=-1)
        if "edge" in observations:
            obs = np.asarray(observations["edge"], dtype=np.float64)
            prices = obs[..., EDGE_INDEX["last_price"]] / GIGA
            actions["edge"] = self.actions_from_prices(prices)
        return actions

    def _legal(self, profile: np.ndarray) -> np.ndarray:
        """Replace masked-off choices (unaffordable ones) with local execution."""
        mask = self.action_masks()["device"]
        allowed = np.take_along_axis(mask, profile[:, :, None], axis=2)[:, :, 0]
        return np.where(allowed, profile, LOCAL_ACTION)

    def describe_game(self, instance: int = 0) -> dict[str, Any]:
        """Describe one instance's drawn game as plain values (for ``ledgerzoo solve``)."""
        game = self._game()
        topology, tasks = game.topology, game.tasks
        return {
            "n_devices": self.n_devices,
            "n_edges": self.n_edges,
            "device_positions_m": topology.device_positions[instance].tolist(),
            "edge_positions_m": self.scenario.edge_position_array.tolist(),
            "relay_hops": topology.relay_hops[instance].tolist(),
            "task_bits": tasks.task_bits[instance].tolist(),
            "task_cycles": tasks.task_cycles[instance].tolist(),
            "is_mining": tasks.is_mining[instance].tolist(),
            "delay_values": game.weights[instance].tolist(),
            "edge_prices": game.edge_prices[instance].tolist(),
            "action_mask": game.action_mask[instance].astype(int).tolist(),
        }

    def solve(self, method: str = "best_response") -> dict[str, Any]:
        """Solve instance 0's stage game: the reference equilibrium, optimum and baselines."""
        if method != "best_response":
            raise ValueError(
                f"unknown method {method!r}; the offloading market has 'best_response'"
            )
        game = self._game().take(np.array([0]))
        result: dict[str, Any] = {"method": method}
        if self.two_phase:
            priced = pricing.solve_edge_pricing(game, grid_points=self.price_points)
            result["pricing"] = {
                "prices": priced.prices[0].tolist(),
                "profits": priced.profits[0].tolist(),
                "converged": bool(priced.converged[0]),
            }
            game = game.with_edge_prices(priced.prices)
        nash = equilibrium.solve_nash(game)
        result.update(nash.to_dict(0))
        if equilibrium.profiles_within(game, equilibrium.MAX_PROFILES)[0]:
            optimum = equilibrium.social_optimum(game)
            result["social_optimum"] = {
                "profile": optimum.profile[0].tolist(),
                "total_cost": float(optimum.total_cost[0]),
                "exact": True,
            }
            result["price_of_anarchy"] = float(
                equilibrium.price_of_anarchy(nash.total_cost, optimum.total_cost)[0]
            )
        else:
            bound = equilibrium.improve_social_cost(game, nash.profile)
            result["social_optimum"] = {
                "profile": bound.profile[0].tolist(),
                "total_cost": float(bound.total_cost[0]),
                "exact": False,
            }
            result["price_of_anarchy_at_least"] = float(
                equilibrium.price_of_anarchy(nash.total_cost, bound.total_cost)[0]
            )
        result["baselines"] = {
            "all_local": float(model.total_cost(game, baselines.all_local_profile(game))[0]),
            "nearest_edge": float(model.total_cost(game, baselines.nearest_edge_profile(game))[0]),
            "random": float(model.total_cost(game, baselines.random_profile(game, seed=0))[0]),
        }
        return result

    # ----------------------------------------------------------------------------------------

    def render_text(self) -> str:
        """Format the last round of instance 0 as a text table."""
        lines = [f"{self.name}  round {self.round}/{self.max_cycles}  phase {self.phase}"]
        if self.game is None:
            return lines[0]
        k = self.n_edges
        lines.append(f"{'device':<10}{'action':>14}{'cost':>10}{'reward':>10}")
        for i in range(self.n_devices):
            action = _action_name(int(self.last_actions[0, i]), k) if self.has_history else "-"
            cost = f"{self.last_costs[0, i]:10.4f}" if self.last_costs is not None else f"{'-':>10}"
            reward = (
                f"{self.last_rewards[0, i]:10.4f}"
                if self.last_rewards is not None
                else f"{'-':>10}"
            )
            lines.append(f"{'device_' + str(i):<10}{action:>14}{cost}{reward}")
        prices = ", ".join(f"{p * GIGA:.3f}" for p in self.last_prices[0])
        tasks = ", ".join(str(int(t)) for t in self.last_edge_tasks[0])
        lines.append(f"edge prices (coins per gigacycle): {prices}   tasks per edge: {tasks}")
        return "\n".join(lines)


def _baseline_costs(game: OffloadingGame) -> dict[str, np.ndarray]:
    """Total costs of the all-local, nearest-edge and random (seed 0) profiles, (B,) each."""
    return {
        "all_local": model.total_cost(game, baselines.all_local_profile(game)),
        "nearest_edge": model.total_cost(game, baselines.nearest_edge_profile(game)),
        "random": model.total_cost(game, baselines.random_profile(game, seed=0)),
    }


def _action_name(action: int, n_edges: int) -> str:
    if action == LOCAL_ACTION:
        return "local"
    if action <= n_edges:
        return f"edge {action - 1}"
    return f"cloud via {action - 1 - n_edges}"


def _parse_scenario(
    n_devices: Any, n_edges: Any, overrides: Mapping[str, Any] | None
) -> OffloadingScenario:
    values: dict[str, Any] = {}
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ValueError(
                f"invalid scenario {overrides!r}: expected a mapping of OffloadingScenario fields"
            )
        fields = {field.name for field in dataclasses.fields(OffloadingScenario)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(
                f"unknown scenario field {unknown[0]!r}; the fields are {sorted(fields)}"
            )
        for name in ("n_devices", "n_edges"):
            if name in overrides:
                raise ValueError(
                    f"set {name} as the env argument, not inside scenario (got {overrides[name]!r})"
                )
        values.update(overrides)
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return OffloadingScenario(n_devices=n_devices, n_edges=n_edges, **values)


def _probability_range(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"invalid {name} {value!r}: expected a (low, high) pair in [0, 1]")
    if not all(_is_number(v) for v in value):
        raise ValueError(f"invalid {name} {value!r}: expected a (low, high) pair of numbers")
    low, high = (to_float(v) for v in value)
    if not (0.0 <= low <= high <= 1.0):
        raise ValueError(f"invalid {name} {value!r}: expected 0 <= low <= high <= 1")
    return low, high


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _coins(name: str, value: Any, maximum: float = MAX_COINS) -> float:
    if not _is_number(value):
        raise ValueError(f"invalid {name} {value!r}: expected a number >= 0")
    # to_float turns a Python int beyond the float range into inf, rejected here.
    number = to_float(value)
    if not 0.0 <= number <= maximum:
        raise ValueError(
            f"invalid {name} {describe_value(value)}: expected a number in [0, {maximum:g}]"
        )
    return number


class OffloadingEnv(MarketParallelEnv):
    """IIoT devices offload data and mining tasks to edge servers or the cloud.

    ## Description

    N devices lie in a square with K edge servers. A device reaches an edge within radio range
    over the minimum-hop route through other devices, and the cloud through an edge's
    backhaul. Every round each device has one task (data or mining) and runs it locally, on
    an edge, or in the cloud. Devices that share a link, an edge CPU or a backhaul slow each
    other down, so the game is a weighted congestion (potential) game, after the multi-hop
    offloading models of W. Chen's group (IEEE IoT Journal 6(5), 2019; IEEE TPDS 30(12),
    2019). The costs and solvers are in :mod:`ledgerzoo.envs.offloading.model`,
    :mod:`~ledgerzoo.envs.offloading.equilibrium` and docs/offloading.md.

    With ``leaders="fixed"`` (default) the edges' prices are the scenario's, one step is one
    round, and the agents are device_0..device_{N-1}. With ``leaders="learned"`` the agents
    edge_0..edge_{K-1} post prices per cycle in the round's first step (phase 0); the devices
    choose in the second step (phase 1), having observed the prices.

    Every round settles on a ledger: a device pays its provider (edge k, or the cloud through
    the clearing account) for a task that did not fail, pays each relay of its route, and
    earns its expected mining income as new value, spendable once confirmed. With a finite
    ``device_balance`` a device that cannot pay must run locally (its offloading choices are
    masked off), unless ``loans=True``: then the bank pays its bills and it owes them with
    interest (``bank_rate``) the next round, and the interest is part of its cost.

    ## Action space

    Device: ``Discrete(1 + 2K)``: 0 runs locally, 1 + k on edge k, 1 + K + k in the cloud
    through edge k. Choices through an unreachable edge (and unaffordable ones, see above)
    are masked off in the observation's ``action_mask``; a masked-off or out-of-range action
    raises ValueError.

    Edge (learned leaders only): ``Box(0, 1, (1,), float32)``; a maps onto the price
    p_k = p_min + a (p_max - p_min) coins per cycle, with [p_min, p_max] the scenario's
    ``price_range``.

    ## Observation space

    Device: ``Dict(observation=Box(float32), action_mask=Box(0, 1, (1 + 2K,), int8))``. The
    vector has 10 + 4 (1 + 2K) + 2K entries (2 more with ledger entries), whatever N is:

    | entries | meaning | unit |
    |---|---|---|
    | 0-2 | phase, round / max_cycles, 1 once a round has been played | - |
    | 3-4 | task size B_i, task cycles C_i | megabits, gigacycles |
    | 5-6 | 1 for a mining task, hash share s_i | - |
    | 7 | delay value w_i | coins per second |
    | 8 | CPU speed F_i | GHz |
    | 9 | expected mining income R_block s_i | coins |
    | then per action | allowed (0/1), own private cost h_i(a), route delay at last round's loads with the device itself, 1 if chosen last round | -, coins, seconds, - |
    | then per edge | price p_k, beta reputation score | coins per gigacycle, - |
    | with ledger entries | spendable balance, coins on their way | coins |

    A device observes its own task and costs, and only public aggregates of the others: the
    loads of last round's routes enter the route delays.

    Edge (learned leaders only): Box(float32) of 13 entries: phase, round progress, history
    flag, p_min, p_max, own running cost c_k (coins per gigacycle), own last price, the
    others' mean last price, own last tasks, own last gigacycles, own last profit, own
    reputation score, and its share of the devices last round.

    ## Rewards

    Device: R_block s_i - cost_i(a) + relay income, minus ``failure_penalty`` for a task an
    edge failed and the interest on bank loans (coins). Edge: its profit,
    (p_k - c_k) C_i summed over the tasks it completed, minus c_k C_i for failed ones.
    Rewards are paid at the round's last step and multiplied by ``reward_scale``.

    ## Starting state and episode end

    Each episode draws the device positions and tasks (and the edges' hidden reliabilities
    with ``reputation=True``) from the scenario with the env's generator, seeded by
    ``reset(seed)``. Every round repeats that stage game. No termination; the episode is
    truncated after ``max_cycles`` rounds.

    ## Info

    Device: action, cost, utility (the reward before scaling), relay_income, task_failed,
    interest, total_cost, balance, pending_incoming, cashflow, round, phase, acts and
    clipped_actions. With ``reference=True`` also best_response_utility and
    best_response_action (the best deviation, every action enumerated) and, under
    ``reference``, the reference equilibrium's action, cost, utility and total_cost, the
    minimum total cost ``optimum_cost`` and the baselines' ``all_local_cost``,
    ``nearest_edge_cost`` and ``random_cost``. Edge: price, utility and tasks, and with
    ``reference=True`` the pricing equilibrium's price and utility.

    ## Arguments

    - ``n_devices`` (int >= 1, default 8) and ``n_edges`` (int >= 1, default 2): N and K.
    - ``scenario`` (mapping, default None): fields of
      :class:`~ledgerzoo.envs.offloading.scenario.OffloadingScenario` to override (ranges as
      [low, high] lists); see docs/offloading.md for every field, unit and default.
    - ``leaders`` ("fixed" or "learned", default "fixed"); ``price_points`` (int >= 2, default
      21): grid of the reference pricing equilibrium. With ``reference=True`` its grid search
      runs at every reset, which takes tens of seconds for hundreds of devices.
    - ``reputation`` (bool, default False), ``reliability`` ([low, high] in [0, 1], default
      [0.7, 1.0]): each edge completes a task with a hidden probability drawn from it;
      ``failure_penalty`` (coins, default 0.5).
    - ``ledger`` (default "instant"): the ledger's mode or settings (docs/ledger.md).
    - ``device_balance`` (coins or None, default None: a balance no episode exhausts),
      ``loans`` (bool, default False), ``bank_rate`` (default 0.05 per round).
    - ``observe_ledger`` (bool or None): add the balance and pending coins to the device
      observation; None adds them unless the ledger is instant and balances never bind.
    - ``max_cycles`` (int, default 25), ``reward_scale`` (float > 0, default 1),
      ``reference`` (bool, default False), ``render_mode`` (None, "ansi", "human" or
      "rgb_array").

    ## Version history

    - v0: first release.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human", "rgb_array"],
        "name": NAME,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_devices: int = DEFAULT_N_DEVICES,
        n_edges: int = DEFAULT_N_EDGES,
        scenario: Mapping[str, Any] | None = None,
        leaders: str = "fixed",
        price_points: int = pricing.GRID_POINTS,
        reputation: bool = False,
        reliability: Sequence[float] = DEFAULT_RELIABILITY,
        failure_penalty: float = DEFAULT_FAILURE_PENALTY,
        ledger: Any = "instant",
        device_balance: float | None = None,
        loans: bool = False,
        bank_rate: float = DEFAULT_BANK_RATE,
        observe_ledger: bool | None = None,
        max_cycles: int = DEFAULT_MAX_CYCLES,
        reward_scale: float = 1.0,
        reference: bool = False,
        render_mode: str | None = None,
    ) -> None:
        market = OffloadingMarket(
            n_devices=n_devices,
            n_edges=n_edges,
            scenario=scenario,
            leaders=leaders,
            price_points=price_points,
            reputation=reputation,
            reliability=reliability,
            failure_penalty=failure_penalty,
            ledger=ledger,
            device_balance=device_balance,
            loans=loans,
            bank_rate=bank_rate,
            observe_ledger=observe_ledger,
            max_cycles=max_cycles,
            reward_scale=reward_scale,
            reference=reference,
            num_instances=1,
        )
        super().__init__(market, render_mode=render_mode)

    def render(self) -> Any:
        """Return an RGB frame of the topology and the last round's routes ("rgb_array"), or
        the round's table as text ("ansi"; "human" prints it)."""
        if self.render_mode == "rgb_array":
            from ledgerzoo.envs.offloading.render import render_frame

            market = self.market
            assert isinstance(market, OffloadingMarket)
            game = market.game
            if game is None:
                raise RuntimeError("call reset() before render()")
            actions = market.last_actions if market.has_history else None
            return render_frame(game, actions)
        return super().render()
