"""The data market as a repeated game: the batched core and its PettingZoo face.

Each round is one iteration of the double auction, traded and settled; it is one env step,
or two with learned bidders and relays. Buyers bid, sellers ask, and the auctioneer allocates
(:mod:`ledgerzoo.envs.data_market.auctioneer`). The data travels over its relays, who forward
or drop it and report receipts or not (:mod:`ledgerzoo.envs.data_market.relays`). Buyers pay
sellers their bids for the data that arrived, and Sprite's credits clear on the ledger. The
data ages by one round every round, so its value falls at the perishability rate; each
episode draws new data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np

from ledgerzoo.envs.core import keys
from ledgerzoo.envs.core.market import BatchedMarket, Role
from ledgerzoo.envs.core.parallel import MarketParallelEnv
from ledgerzoo.envs.core.spaces import box_from_table, index_of, to_space
from ledgerzoo.envs.data_market import auction, model, relays
from ledgerzoo.envs.data_market.relays import RelayRoutes
from ledgerzoo.envs.data_market.scenario import DataMarket, DataMarketScenario, preset
from ledgerzoo.ledger import Kind, Ledger, LedgerConfig

NAME = "data_market_v0"
BIDDING_MODES = ("learned", "truthful")
DEFAULT_MAX_CYCLES = 25
# Relay choices, Discrete(4): bit 1 forwards, bit 0 reports.
DROP_SILENTLY, DROP_AND_REPORT, FORWARD_SILENTLY, FORWARD_AND_REPORT = 0, 1, 2, 3
# A learned ask maps onto [0, ASK_HEADROOM times the largest marginal cost 2 l1 d_max + l2].
ASK_HEADROOM = 2.0
INITIAL_BID = 1.0  # coins, the truthful auction's starting bid
INITIAL_ASK = 1.0  # coins per data unit, its starting ask

BUYER_HEADER = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("willingness", 0.0, np.inf),
    ("min_demand", 0.0, np.inf),
    ("max_demand", 0.0, np.inf),
    ("last_utility", 0.0, np.inf),
    ("last_payment", 0.0, np.inf),
)
BUYER_PER_SELLER = (
    ("value_factor", 0.0, 1.0),
    ("efficiency", 0.0, 1.0),
    ("last_received", 0.0, np.inf),
    ("last_bid", 0.0, np.inf),
    ("last_seller_price", 0.0, np.inf),
)
SELLER_HEADER = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("quadratic_cost", 0.0, np.inf),
    ("linear_cost", 0.0, np.inf),
    ("max_supply", 0.0, np.inf),
    ("value_factor", 0.0, 1.0),
    ("last_supply", 0.0, np.inf),
    ("last_revenue", 0.0, np.inf),
)
SELLER_PER_BUYER = (
    ("last_sent", 0.0, np.inf),
    ("last_bid", 0.0, np.inf),
    ("last_ask", 0.0, np.inf),
)
RELAY_OBSERVATION = (
    ("phase", 0.0, 1.0),
    ("round_progress", 0.0, 1.0),
    ("has_history", 0.0, 1.0),
    ("relay_credit", 0.0, np.inf),
    ("last_reporter_credit", 0.0, np.inf),
    ("forward_cost", 0.0, np.inf),
    ("receipt_cost", 0.0, np.inf),
    ("messages", 0.0, np.inf),
    ("last_messages", 0.0, np.inf),
    ("last_credits", 0.0, np.inf),
    ("last_utility", -np.inf, np.inf),
)
BUYER_INDEX = index_of(BUYER_HEADER)
SELLER_INDEX = index_of(SELLER_HEADER)
RELAY_INDEX = index_of(RELAY_OBSERVATION)


class DataMarketMarket(BatchedMarket):
    """B instances of the data market, stepped on (B, I, J) and (B, R) arrays.

    Arguments are those of :class:`DataMarketEnv`, plus ``num_instances`` (B).
    """

    name = NAME

    def __init__(
        self,
        scenario: str | Mapping[str, Any] | None = None,
        bidding: str = "truthful",
        relays: bool = True,
        ledger: Any = "instant",
        max_cycles: int = DEFAULT_MAX_CYCLES,
        reward_scale: float = 1.0,
        reference: bool = False,
        num_instances: int = 1,
    ) -> None:
        if bidding not in BIDDING_MODES:
            raise ValueError(f"invalid bidding {bidding!r}; expected one of {list(BIDDING_MODES)}")
        for name, flag in (("relays", relays), ("reference", reference)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.scenario = _parse_scenario(scenario)
        self.bidding = bidding
        self.has_relays = bool(relays) and self.scenario.n_relays > 0
        if bidding == "truthful" and not self.has_relays:
            raise ValueError(
                "with bidding='truthful' and no relays nothing is left to learn; use "
                "bidding='learned', or relays=True with a scenario of n_relays >= 1"
            )
        super().__init__(
            num_instances=num_instances,
            max_cycles=max_cycles,
            # Learned bidders move first; learned relays act on the allocation in a second step.
            two_phase=bidding == "learned" and self.has_relays,
            reward_scale=reward_scale,
        )
        self.reference = bool(reference)
        n_buyers, n_sellers = self.scenario.n_buyers, self.scenario.n_sellers
        self.n_buyers, self.n_sellers = n_buyers, n_sellers
        self.n_relays = self.scenario.n_relays if self.has_relays else 0
        unit = gymnasium.spaces.Box
        roles: list[Role] = []
        if bidding == "learned":
            roles.append(
                Role(
                    "buyer",
                    n_buyers,
                    box_from_table(BUYER_HEADER, BUYER_PER_SELLER * n_sellers),
                    unit(0.0, 1.0, shape=(n_sellers,), dtype=np.float32),
                )
            )
            roles.append(
                Role(
                    "seller",
                    n_sellers,
                    box_from_table(SELLER_HEADER, SELLER_PER_BUYER * n_buyers),
                    unit(0.0, 1.0, shape=(n_buyers,), dtype=np.float32),
                )
            )
        if self.has_relays:
            roles.append(
                Role(
                    "relay",
                    self.n_relays,
                    box_from_table(RELAY_OBSERVATION),
                    gymnasium.spaces.Discrete(4),
                )
            )
        self._roles = tuple(roles)
        accounts = (
            [f"buyer_{i}" for i in range(n_buyers)]
            + [f"seller_{j}" for j in range(n_sellers)]
            + [f"relay_{r}" for r in range(self.scenario.n_relays)]
        )
        self.ledger = Ledger(accounts, self.num_instances, self._sized(LedgerConfig.parse(ledger)))
        self.market: DataMarket | None = None
        self._aged: tuple[int, DataMarket] | None = None
        self._routes: RelayRoutes | None = None
        self._clear_history()

    # ----------------------------------------------------------------------------------------

    @property
    def roles(self) -> tuple[Role, ...]:
        return self._roles

    def acting_roles(self) -> tuple[str, ...]:
        if self.bidding == "truthful":
            return ("relay",)
        if self.two_phase and self.phase == keys.FOLLOWERS_PHASE:
            return ("relay",)
        return ("buyer", "seller")

    def _sized(self, config: LedgerConfig) -> LedgerConfig:
        """Shrink the ledger's queue to what an episode can fill, when that is smaller.

        A round submits at most one payment per buyer-seller pair, one Sprite charge per
        seller and one credit payout per relay, and the ledger is emptied every episode. A
        queue that fits an episode's transactions is never full and never wraps around. Its
        slots then follow the transaction ids as in the larger queue, so the ledger's sums
        add in the same order and give the same bits. The ledger's end of round takes time in
        proportion to the queue's size.
        """
        scenario = self.scenario
        per_round = scenario.n_buyers * scenario.n_sellers + scenario.n_sellers + self.n_relays
        capacity = min(config.queue_capacity, per_round * self.max_cycles)
        return dataclasses.replace(config, queue_capacity=capacity)

    def _data(self) -> DataMarket:
        if self.market is None:
            raise RuntimeError("call reset() before using the market")
        return self.market

    def _clear_history(self) -> None:
        batch, i, j = self.num_instances, self.scenario.n_buyers, self.scenario.n_sellers
        self.has_history = False
        self.age_offset = 0
        self.bids = np.full((batch, i, j), INITIAL_BID)
        self.asks = np.full((batch, i, j), INITIAL_ASK)
        self.last_delivered = np.zeros((batch, i, j))
        self.last_sent = np.zeros((batch, i, j))
        self.last_payments = np.zeros((batch, i, j))
        self.last_seller_prices = np.zeros((batch, j))
        self.last_buyer_utility = np.zeros((batch, i))
        self.last_messages = np.zeros((batch, self.n_relays))
        self.last_relay_credits = np.zeros((batch, self.n_relays))
        self.last_relay_utility = np.zeros((batch, self.n_relays))
        self.pending_credits = np.zeros((batch, self.n_relays))
        self.theta = np.ones(batch)
        self.previous_welfare = np.full(batch, np.nan)
        self.allocation: Any = None
        self._warm: tuple[np.ndarray, np.ndarray] | None = None

    def _reset_episode(self, generators: Sequence[np.random.Generator]) -> None:
        # NOTE: a Python loop over instances inside sample_instances, once per episode.
        self.market = self.scenario.sample_instances(generators)
        self._aged = None
        self._routes = relays.market_routes(self.market) if self.has_relays else None
        # The tangle's tip selection is random: seed it from each instance's generator, after
        # the scenario's draws, so that other modes keep their random streams.
        seeds = None
        if self.ledger.config.mode == "tangle":
            seeds = [int(rng.integers(2**63 - 1)) for rng in generators]
        self.ledger.reset(self._slack_balances(), seeds=seeds)
        self._clear_history()
        self.reference_result: auction.AuctionResult | None = None
        self._reference_age = 0
        if self.reference:
            self.reference_result = auction.run_truthful_auction(self._aged_market())
        self._prepare_round()

    def _prepare_round(self) -> None:
        """With truthful bidders, allocate the coming round now, so relays observe it."""
        if self.bidding == "truthful":
            self._allocate()

    def _slack_balances(self) -> np.ndarray:
        """Starting balances no episode exhausts: every buyer can pay its willingness and every
        seller the most its relays' credits can cost, every round."""
        data = self._data()
        rounds = self.max_cycles
        buyers = rounds * data.willingness * self.n_sellers + 1.0
        charges = rounds * data.relay_credit * (data.hops.sum(axis=1) + 1.0)
        relays_start = np.zeros((self.num_instances, self.scenario.n_relays))
        return np.concatenate(
            [buyers, charges + 1.0, relays_start],
            axis=1,
        )

    def _aged_market(self) -> DataMarket:
        """Return the episode's market with its data aged by the rounds played so far."""
        data = self._data()
        if self._aged is None or self._aged[0] != self.age_offset:
            # One copy per round, because every phase of a round reads it.
            self._aged = (self.age_offset, data.aged(self.age_offset))
        return self._aged[1]

    def _relay_routes(self) -> RelayRoutes:
        """Return the relays on every pair's path, p = i * J + j, indexed for this episode."""
        if self._routes is None:
            raise RuntimeError("call reset() before using the relays")
        return self._routes

    # ----------------------------------------------------------------------------------------
    # Action maps.

    def bids_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map buyer actions (B, I, J) in [0, 1] onto bids b_ij = a v_i (coins)."""
        return actions.astype(np.float64) * self._data().willingness[:, :, None]

    def max_asks(self) -> np.ndarray:
        """Return the largest ask of each seller (coins per data unit), (B, J)."""
        data = self._data()
        return ASK_HEADROOM * (2.0 * data.quadratic_cost * data.max_supply + data.linear_cost)

    def asks_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map seller actions (B, J, I) in [0, 1] onto asks s_ij (coins per data unit), (B, I, J)."""
        return (actions.astype(np.float64) * self.max_asks()[:, :, None]).transpose(0, 2, 1)

    def actions_from_bids(self, bids: np.ndarray) -> np.ndarray:
        """Invert :meth:`bids_from_actions`, (B, I, J) -> float32 in [0, 1]."""
        fraction = bids / self._data().willingness[:, :, None]
        return np.clip(fraction, 0.0, 1.0).astype(np.float32)

    def actions_from_asks(self, asks: np.ndarray) -> np.ndarray:
        """Invert :meth:`asks_from_actions`, (B, I, J) -> (B, J, I) float32 in [0, 1]."""
        fraction = asks.transpose(0, 2, 1) / self.max_asks()[:, :, None]
        return np.clip(fraction, 0.0, 1.0).astype(np.float32)

    # ----------------------------------------------------------------------------------------
    # Steps.

    def _step_phase(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        if "buyer" in actions:
            self.bids = self.bids_from_actions(actions["buyer"])
            self.asks = self.asks_from_actions(actions["seller"])
            self._allocate()
            if self.two_phase:
                # The allocation is published; the relays act in the next step.
                return {}, {}
            return self._settle_round(None)
        return self._settle_round(actions["relay"])

    def _allocate(self) -> None:
        data = self._aged_market()
        warm = self._warm
        self.allocation = auction.market_auctioneer(
            data,
            self.bids,
            self.asks,
            initial_seller_prices=None if warm is None else warm[0],
            initial_buyer_prices=None if warm is None else warm[1],
        )
        self._warm = (self.allocation.seller_prices, self.allocation.buyer_prices)

    def _settle_round(
        self, relay_actions: np.ndarray | None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        data = self._aged_market()
        solution = self.allocation
        assert solution is not None
        delivered_planned, sent = solution.delivered, solution.sent
        trades = delivered_planned > 0.0
        batch = self.num_instances

        # The data travels over the relays; a dropped message does not arrive.
        if self.has_relays:
            assert relay_actions is not None
            forward = relay_actions >= FORWARD_SILENTLY
            report = (relay_actions % 2) == 1
            routes = self._relay_routes()
            outcome = relays.market_relay_outcome(data, forward, report, trades, routes)
            arrived = outcome.delivered.reshape(trades.shape) | (data.hops == 0)
            relay_utility = relays.relay_utilities(outcome, routes, self.n_relays)
            relay_credit = routes.totals(outcome.credits)
            messages = routes.totals(outcome.received)
            charges = outcome.sender_charges.reshape(trades.shape).sum(axis=1)  # (B, J)
        else:
            arrived = np.ones_like(trades)
            relay_utility = relay_credit = messages = np.zeros((batch, 0))
            charges = np.zeros((batch, self.n_sellers))
            forward = report = np.zeros((batch, 0), dtype=bool)
        delivered = np.where(arrived, delivered_planned, 0.0)
        factors = data.value_factors
        buyer_utility = model.buyer_utilities(delivered, data.willingness, factors)
        # Buyer i pays seller j its bid for data that arrived.
        payments = np.where(trades & arrived, self.bids, 0.0)
        seller_cost = model.seller_costs(sent, data.quadratic_cost, data.linear_cost)
        buyer_reward = buyer_utility - payments.sum(axis=2)
        seller_reward = payments.sum(axis=1) - seller_cost - charges
        welfare = model.social_welfare(
            np.where(arrived, sent, 0.0),
            data.efficiency,
            data.willingness,
            factors,
            data.quadratic_cost,
            data.linear_cost,
        )

        self._settle_ledger(payments, charges, relay_credit)

        infos: dict[str, dict[str, np.ndarray]] = {}
        rewards: dict[str, np.ndarray] = {}
        n_buyers, n_sellers = self.n_buyers, self.n_sellers
        if self.bidding == "learned":
            rewards["buyer"] = buyer_reward
            rewards["seller"] = seller_reward
            infos["buyer"] = {
                keys.UTILITY: buyer_reward,
                keys.RECEIVED: delivered.sum(axis=2),
                keys.PAYMENT: payments.sum(axis=2),
                keys.BIDS: self.bids.copy(),
                keys.WELFARE: np.repeat(welfare[:, None], n_buyers, axis=1),
            }
            infos["seller"] = {
                keys.UTILITY: seller_reward,
                keys.SUPPLY: sent.sum(axis=1),
                keys.REVENUE: payments.sum(axis=1),
                keys.WELFARE: np.repeat(welfare[:, None], n_sellers, axis=1),
            }
        if self.has_relays:
            rewards["relay"] = relay_utility
            infos["relay"] = {
                keys.UTILITY: relay_utility,
                keys.FORWARDED: np.broadcast_to(forward, relay_utility.shape).astype(bool),
                keys.REPORTED: np.broadcast_to(report, relay_utility.shape).astype(bool),
                keys.MESSAGES: messages,
                keys.WELFARE: np.repeat(welfare[:, None], self.n_relays, axis=1),
            }
        if self.reference:
            self._add_reference(infos, welfare, payments, relay_actions, trades, relay_utility)

        self.last_delivered = delivered
        self.last_sent = sent
        self.last_payments = payments
        self.last_seller_prices = solution.seller_prices
        self.last_buyer_utility = buyer_utility
        self.last_messages = messages
        self.last_relay_credits = relay_credit
        self.last_relay_utility = relay_utility
        self.has_history = True
        self.allocation = None
        self.age_offset += 1
        if self.bidding == "truthful":
            # The truthful update follows the auctioneer's allocation, as in the auction; a
            # dropped message leaves the buyer's valuation of that seller's data unchanged.
            self._truthful_update(delivered_planned, sent)
            self._prepare_round()
        return rewards, infos

    def _truthful_update(self, delivered: np.ndarray, sent: np.ndarray) -> None:
        """Move the bids and asks towards their truthful updates for the next round, as one
        iteration of :func:`ledgerzoo.envs.data_market.auction.run_truthful_auction` does:
        a step theta that halves whenever the allocation's welfare falls."""
        data = self._aged_market()
        welfare = model.social_welfare(
            sent,
            data.efficiency,
            data.willingness,
            data.value_factors,
            data.quadratic_cost,
            data.linear_cost,
        )
        previous = self.previous_welfare
        fell = welfare < previous - auction.WELFARE_DROP_TOLERANCE * np.abs(previous)
        self.theta = np.where(fell, np.maximum(0.5 * self.theta, auction.MIN_DAMPING), self.theta)
        self.previous_welfare = welfare
        step = self.theta[:, None, None]
        target_bids = auction.truthful_bids(delivered, data.willingness, data.value_factors)
        target_asks = auction.truthful_asks(sent, data.quadratic_cost, data.linear_cost)
        self.bids = self.bids + step * (target_bids - self.bids)
        self.asks = self.asks + step * (target_asks - self.asks)

    def _settle_ledger(
        self, payments: np.ndarray, charges: np.ndarray, credits: np.ndarray
    ) -> None:
        """Settle the round: buyers pay sellers, sellers pay Sprite's charges to the clearing
        service, and the clearing service pays last round's credits, which have confirmed."""
        ledger, batch = self.ledger, self.num_instances
        n_buyers, n_sellers = self.n_buyers, self.n_sellers
        buyers = np.broadcast_to(np.arange(n_buyers)[None, :, None], payments.shape)
        sellers = np.broadcast_to(n_buyers + np.arange(n_sellers)[None, None, :], payments.shape)
        ledger.submit(
            buyers.reshape(batch, -1),
            sellers.reshape(batch, -1),
            payments.reshape(batch, -1),
            Kind.PAYMENT,
            where=(payments > 0.0).reshape(batch, -1),
        )
        seller_accounts = np.broadcast_to(n_buyers + np.arange(n_sellers), charges.shape)
        ledger.submit(
            seller_accounts, ledger.clearing, charges, Kind.CREDIT_CHARGE, where=charges > 0.0
        )
        if self.has_relays:
            relay_accounts = np.broadcast_to(
                n_buyers + n_sellers + np.arange(self.n_relays), credits.shape
            )
            payout = ledger.submit(
                ledger.clearing,
                relay_accounts,
                self.pending_credits,
                Kind.CREDIT_PAYOUT,
                where=self.pending_credits > 0.0,
            )
            # A payout the clearing account cannot cover yet (its charges are still pending on
            # a chain) waits for the next round.
            self.pending_credits = np.where(payout.accepted, 0.0, self.pending_credits) + credits
        ledger.end_round()

    def _add_reference(
        self,
        infos: dict[str, dict[str, np.ndarray]],
        welfare: np.ndarray,
        payments: np.ndarray,
        relay_actions: np.ndarray | None,
        trades: np.ndarray,
        relay_utility: np.ndarray,
    ) -> None:
        """Add the truthful auction's fixed point and the relays' best responses."""
        # The fixed point of the market as it is this round: aged data is worth less.
        if self._reference_age != self.age_offset and np.any(self._data().perishability > 0.0):
            self.reference_result = auction.run_truthful_auction(self._aged_market())
            self._reference_age = self.age_offset
        result = self.reference_result
        assert result is not None
        reference_payments = result.payments.sum(axis=(1, 2))
        for values in infos.values():
            count = values[keys.UTILITY].shape[1]
            values[f"{keys.REFERENCE}/{keys.WELFARE}"] = np.repeat(
                result.welfare[:, None], count, axis=1
            )
            values[f"{keys.REFERENCE}/{keys.TOTAL_PAYMENT}"] = np.repeat(
                reference_payments[:, None], count, axis=1
            )
            values[keys.TOTAL_PAYMENT] = np.repeat(
                payments.sum(axis=(1, 2))[:, None], count, axis=1
            )
        if self.has_relays and relay_actions is not None:
            best = self._relay_best_responses(relay_actions, trades)
            infos["relay"][keys.BEST_RESPONSE_UTILITY] = np.maximum(best, relay_utility)
            # Every relay's utility had they all forwarded and reported this round's messages.
            honest = np.full_like(relay_actions, FORWARD_AND_REPORT)
            routes = self._relay_routes()
            outcome = relays.market_relay_outcome(
                self._aged_market(), honest >= 2, honest % 2 == 1, trades, routes
            )
            infos["relay"][f"{keys.REFERENCE}/{keys.UTILITY}"] = relays.relay_utilities(
                outcome, routes, self.n_relays
            )
            # Forward and report is the reference choice when Sprite's condition holds.
            data = self._data()
            condition = relays.forward_and_report_is_equilibrium(
                data.relay_credit, data.last_reporter_credit, data.forward_cost, data.receipt_cost
            )
            infos["relay"][f"{keys.REFERENCE}/{keys.FORWARDED}"] = np.full(
                relay_utility.shape, condition
            )

    def _relay_best_responses(self, relay_actions: np.ndarray, trades: np.ndarray) -> np.ndarray:
        """Compute each relay's best utility over its four choices, the others' held, (B, R)."""
        data = self._aged_market()
        routes = self._relay_routes()
        best = np.full((self.num_instances, self.n_relays), -np.inf)
        # A loop over the R relays and their four choices, each step vectorized over instances.
        for relay in range(self.n_relays):
            for choice in range(4):
                trial = relay_actions.copy()
                trial[:, relay] = choice
                outcome = relays.market_relay_outcome(
                    data, trial >= FORWARD_SILENTLY, (trial % 2) == 1, trades, routes
                )
                utility = relays.relay_utilities(outcome, routes, self.n_relays)[:, relay]
                best[:, relay] = np.maximum(best[:, relay], utility)
        return best

    # ----------------------------------------------------------------------------------------
    # Observations and reference policies.

    def observe(self) -> dict[str, np.ndarray]:
        observations: dict[str, np.ndarray] = {}
        if self.bidding == "learned":
            observations["buyer"] = self._observe_buyers()
            observations["seller"] = self._observe_sellers()
        if self.has_relays:
            observations["relay"] = self._observe_relays()
        return observations

    def _observe_buyers(self) -> np.ndarray:
        data = self._aged_market()
        batch, i, j = self.num_instances, self.n_buyers, self.n_sellers
        header = np.zeros((batch, i, len(BUYER_HEADER)))
        header[..., BUYER_INDEX["phase"]] = self.phase
        header[..., BUYER_INDEX["round_progress"]] = self.round / self.max_cycles
        header[..., BUYER_INDEX["has_history"]] = float(self.has_history)
        header[..., BUYER_INDEX["willingness"]] = data.willingness
        header[..., BUYER_INDEX["min_demand"]] = data.min_demand
        header[..., BUYER_INDEX["max_demand"]] = data.max_demand
        header[..., BUYER_INDEX["last_utility"]] = self.last_buyer_utility
        header[..., BUYER_INDEX["last_payment"]] = self.last_payments.sum(axis=2)
        per_seller = np.stack(
            [
                np.broadcast_to(data.value_factors[:, None, :], (batch, i, j)),
                data.efficiency,
                self.last_delivered,
                self.bids if self.has_history else np.zeros((batch, i, j)),
                np.broadcast_to(self.last_seller_prices[:, None, :], (batch, i, j)),
            ],
            axis=-1,
        ).reshape(batch, i, -1)
        observation = np.concatenate([header, per_seller], axis=-1)
        return to_space(observation, self._roles[0].observation_space)

    def _observe_sellers(self) -> np.ndarray:
        data = self._aged_market()
        batch, j = self.num_instances, self.n_sellers
        header = np.zeros((batch, j, len(SELLER_HEADER)))
        header[..., SELLER_INDEX["phase"]] = self.phase
        header[..., SELLER_INDEX["round_progress"]] = self.round / self.max_cycles
        header[..., SELLER_INDEX["has_history"]] = float(self.has_history)
        header[..., SELLER_INDEX["quadratic_cost"]] = data.quadratic_cost
        header[..., SELLER_INDEX["linear_cost"]] = data.linear_cost
        header[..., SELLER_INDEX["max_supply"]] = data.max_supply
        header[..., SELLER_INDEX["value_factor"]] = data.value_factors
        header[..., SELLER_INDEX["last_supply"]] = self.last_sent.sum(axis=1)
        header[..., SELLER_INDEX["last_revenue"]] = self.last_payments.sum(axis=1)
        history = self.has_history
        per_buyer = np.stack(
            [
                self.last_sent.transpose(0, 2, 1),
                (self.bids if history else np.zeros_like(self.bids)).transpose(0, 2, 1),
                (self.asks if history else np.zeros_like(self.asks)).transpose(0, 2, 1),
            ],
            axis=-1,
        ).reshape(batch, j, -1)
        observation = np.concatenate([header, per_buyer], axis=-1)
        return to_space(observation, self._roles[1].observation_space)

    def _observe_relays(self) -> np.ndarray:
        data = self._data()
        batch, r = self.num_instances, self.n_relays
        obs = np.zeros((batch, r, len(RELAY_OBSERVATION)))
        obs[..., RELAY_INDEX["phase"]] = self.phase
        obs[..., RELAY_INDEX["round_progress"]] = self.round / self.max_cycles
        obs[..., RELAY_INDEX["has_history"]] = float(self.has_history)
        obs[..., RELAY_INDEX["relay_credit"]] = data.relay_credit
        obs[..., RELAY_INDEX["last_reporter_credit"]] = data.last_reporter_credit
        obs[..., RELAY_INDEX["forward_cost"]] = data.forward_cost
        obs[..., RELAY_INDEX["receipt_cost"]] = data.receipt_cost
        obs[..., RELAY_INDEX["messages"]] = self._upcoming_messages()
        obs[..., RELAY_INDEX["last_messages"]] = self.last_messages
        obs[..., RELAY_INDEX["last_credits"]] = self.last_relay_credits
        obs[..., RELAY_INDEX["last_utility"]] = self.last_relay_utility
        return to_space(obs, self._roles[-1].observation_space)

    def _upcoming_messages(self) -> np.ndarray:
        """Messages each relay is on the path of in the allocation about to travel, (B, R):
        the published allocation in the relays' step, else 0."""
        if self.allocation is None:
            return np.zeros((self.num_instances, self.n_relays))
        data = self._data()
        batch = self.num_instances
        trades = self.allocation.delivered > 0.0
        routes = self._relay_routes()
        on_path = routes.valid & trades.reshape(batch, -1)[:, :, None]
        positions = np.arange(routes.valid.shape[-1])[None, None, :]
        on_path &= positions < data.hops.reshape(batch, -1)[:, :, None]
        return routes.totals(on_path)

    def equilibrium_actions(self) -> dict[str, np.ndarray]:
        """Return the reference actions: the bids and asks of the truthful auction's fixed point,
        and forward and report for every relay."""
        actions: dict[str, np.ndarray] = {}
        if self.bidding == "learned":
            result = self.reference_result or auction.run_truthful_auction(self._aged_market())
            self.reference_result = result
            actions["buyer"] = self.actions_from_bids(result.bids)
            actions["seller"] = self.actions_from_asks(result.asks)
        if self.has_relays:
            actions["relay"] = np.full(
                (self.num_instances, self.n_relays), FORWARD_AND_REPORT, dtype=np.int64
            )
        return actions

    def best_response_actions(
        self, observations: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Compute myopic best responses from observations. Buyers and sellers bid and ask
        truthfully for last round's allocation. Relays forward and report when Sprite's
        condition holds for the credits they observe, and drop silently otherwise."""
        actions: dict[str, np.ndarray] = {}
        data = self._aged_market()
        if "buyer" in observations:
            bids = auction.truthful_bids(self.last_delivered, data.willingness, data.value_factors)
            if not self.has_history:
                bids = np.full_like(bids, INITIAL_BID)
            actions["buyer"] = self.actions_from_bids(bids)
        if "seller" in observations:
            asks = auction.truthful_asks(self.last_sent, data.quadratic_cost, data.linear_cost)
            if not self.has_history:
                asks = np.full_like(asks, INITIAL_ASK)
            actions["seller"] = self.actions_from_asks(asks)
        if "relay" in observations:
            obs = np.asarray(observations["relay"], dtype=np.float64)
            alpha = obs[..., RELAY_INDEX["relay_credit"]]
            beta = obs[..., RELAY_INDEX["last_reporter_credit"]]
            forward_cost = obs[..., RELAY_INDEX["forward_cost"]]
            receipt_cost = obs[..., RELAY_INDEX["receipt_cost"]]
            good = (beta > receipt_cost) & (alpha - beta > forward_cost)
            actions["relay"] = np.where(good, FORWARD_AND_REPORT, DROP_SILENTLY).astype(np.int64)
        return actions

    def describe_game(self, instance: int = 0) -> dict[str, Any]:
        """Describe one instance's drawn parameters as plain values (for ``ledgerzoo solve``)."""
        data = self._aged_market()
        return {
            "n_buyers": self.n_buyers,
            "n_sellers": self.n_sellers,
            "n_relays": self.scenario.n_relays,
            "willingness": data.willingness[instance].tolist(),
            "value_factors": data.value_factors[instance].tolist(),
            "hops": data.hops[instance].tolist(),
            "min_demand": data.min_demand[instance].tolist(),
            "max_demand": data.max_demand[instance].tolist(),
            "max_supply": data.max_supply[instance].tolist(),
            "quadratic_cost": data.quadratic_cost[instance].tolist(),
            "linear_cost": data.linear_cost[instance].tolist(),
        }

    def solve(self, method: str = "truthful_auction") -> dict[str, Any]:
        """Run instance 0's truthful auction to its fixed point and the welfare optimum."""
        from ledgerzoo.envs.data_market.welfare import solve_welfare

        if method != "truthful_auction":
            raise ValueError(f"unknown method {method!r}; the data market has 'truthful_auction'")
        data = self._aged_market().instance(0)
        result = auction.run_truthful_auction(data)
        optimum = solve_welfare(data)
        return {
            "method": method,
            "allocation": result.delivered[0].tolist(),
            "welfare": float(result.welfare[0]),
            "optimum_welfare": float(optimum.welfare[0]),
            "iterations": int(result.iterations[0]),
            "converged": str(result.stop_reason[0]) != "max_iterations",
            "payments": result.payments[0].tolist(),
            "bids": result.bids[0].tolist(),
            "asks": result.asks[0].tolist(),
        }

    def render_text(self) -> str:
        """Format the last round of instance 0 as a text table."""
        lines = [f"{self.name}  round {self.round}/{self.max_cycles}  phase {self.phase}"]
        if self.market is None:
            return lines[0]
        lines.append(f"{'buyer':<10}{'received':>11}{'paid':>10}{'utility':>10}")
        for i in range(self.n_buyers):
            lines.append(
                f"{'buyer_' + str(i):<10}{self.last_delivered[0, i].sum():11.3f}"
                f"{self.last_payments[0, i].sum():10.3f}{self.last_buyer_utility[0, i]:10.3f}"
            )
        for r in range(self.n_relays):
            lines.append(
                f"relay_{r}: messages {int(self.last_messages[0, r])}, "
                f"credits {self.last_relay_credits[0, r]:.3f}"
            )
        return "\n".join(lines)


def _parse_scenario(value: str | Mapping[str, Any] | None) -> DataMarketScenario:
    if value is None:
        return DataMarketScenario()
    if isinstance(value, str):
        try:
            return preset(value)
        except KeyError as error:
            raise ValueError(str(error.args[0])) from None
    if isinstance(value, Mapping):
        return DataMarketScenario.from_dict(value)
    raise ValueError(
        f"invalid scenario {value!r}: expected a preset name or a mapping of scenario fields"
    )


class DataMarketEnv(MarketParallelEnv):
    """Robots trade perishable data through an iterative double auction, over paid relays.

    ## Description

    Buyer robots bid for data that seller robots offer, and an edge server runs the iterative
    double auction of J. Kang et al. (IEEE TII 13(6), 2017) between them: each round is one
    iteration of the auction, traded and settled. Data travels from seller to buyer over relay
    robots, which the credit clearance service of Sprite (S. Zhong et al., INFOCOM 2003) pays
    for forwarding it, through receipts on the ledger. Data ages by one round every round and
    loses value at the perishability rate. The model, solvers and symbols are in
    docs/data_market.md.

    With ``bidding="truthful"`` (default) buyers and sellers follow the truthful update of
    the auction, one iteration per round, and the relays relay_0..relay_{R-1} are the only
    agents: one step is one round. With ``bidding="learned"`` buyer_0..buyer_{I-1} and
    seller_0..seller_{J-1} are agents too, and a round with relays is two steps: the bids and
    asks in the first (phase 0), the relays' choices in the second (phase 1), after the
    allocation is published. With ``relays=False`` every message arrives and no credits are
    paid (this needs learned bidders).

    ## Action space

    - Buyer: ``Box(0, 1, (J,), float32)``; entry j maps onto the bid b_ij = a_j v_i coins.
    - Seller: ``Box(0, 1, (I,), float32)``; entry i maps onto the ask
      s_ij = a_i 2 (2 l1_j d_j^max + l2_j) coins per data unit (twice the largest marginal cost).
    - Relay: ``Discrete(4)``: 0 drops silently, 1 drops and reports, 2 forwards silently, 3
      forwards and reports, for every message it receives this round.

    ## Observation space

    - Buyer: Box(float32) of 8 + 5J entries: phase, round / max_cycles, history flag, v_i,
      c_i^min, c_i^max, last utility, last payment, then per seller its value factor
      q_j exp(-delta a_j), the path efficiency rho_ij, what the buyer received from it last
      round, its own last bid and the seller's last price (the auctioneer's dual price).
    - Seller: Box(float32) of 9 + 3I entries: phase, round / max_cycles, history flag, l1,
      l2, d_j^max, its value factor, last supply, last revenue, then per buyer what it sent,
      the buyer's bid and its own ask last round.
    - Relay: Box(float32) of 11 entries: phase, round / max_cycles, history flag, alpha, beta,
      c_fwd, c_rcpt, the messages it is on the path of this round (in its own step), last
      round's messages, credits and utility.

    No agent observes another agent's private valuation or cost.

    ## Rewards

    Buyer: U_i of the data that arrived minus its bids for it. Seller: the bids it received
    minus its cost L_j minus Sprite's charge (alpha per relay on each path it sends over).
    Relay: its credits minus its forwarding and reporting costs. Rewards are paid at the
    round's last step and multiplied by ``reward_scale``.

    ## Starting state and episode end

    Each episode draws the scenario's parameters and the relay paths with the env's
    generator, seeded by ``reset(seed)``. Bids and asks start at 1. No termination; the
    episode is truncated after ``max_cycles`` rounds.

    ## Info

    Buyer: utility, received, payment, bids, welfare. Seller: utility, supply, revenue,
    welfare. Relay: utility, forwarded, reported, messages, welfare. With ``reference=True``
    every agent also gets total_payment and, under ``reference``, the welfare and total
    payment of the truthful auction's fixed point for the data as aged this round; relays get best_response_utility (their best of
    four choices, the others' held) and ``reference/forwarded`` (whether forward and report
    is the equilibrium choice).

    ## Arguments

    - ``scenario`` (default None, the small market): a preset name (``"small"`` or
      ``"kang2017"``) or a mapping of ``DataMarketScenario`` fields (docs/data_market.md).
    - ``bidding`` ("truthful" or "learned", default "truthful"); ``relays`` (bool, default
      True).
    - ``ledger`` (default "instant"): the ledger's mode or settings (docs/ledger.md).
    - ``max_cycles`` (int, default 25), ``reward_scale`` (float > 0, default 1),
      ``reference`` (bool, default False), ``render_mode`` (None, "ansi" or "human").

    ## Version history

    - v0: first release.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human"],
        "name": NAME,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: str | Mapping[str, Any] | None = None,
        bidding: str = "truthful",
        relays: bool = True,
        ledger: Any = "instant",
        max_cycles: int = DEFAULT_MAX_CYCLES,
        reward_scale: float = 1.0,
        reference: bool = False,
        render_mode: str | None = None,
    ) -> None:
        market = DataMarketMarket(
            scenario=scenario,
            bidding=bidding,
            relays=relays,
            ledger=ledger,
            max_cycles=max_cycles,
            reward_scale=reward_scale,
            reference=reference,
            num_instances=1,
        )
        super().__init__(market, render_mode=render_mode)
