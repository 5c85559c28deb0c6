"""Names of the keys that every market writes into ``info[agent]``.

Each market's docs page lists the keys it fills. The evaluator reads the same names, so a
quantity has one key everywhere: in the round's values and, under ``REFERENCE``, in the
analytic equilibrium of the episode.
"""

from __future__ import annotations

# The round's economic quantities.
RATE = "rate"  # interest rate posted or paid (fraction of the principal per loan term)
PRICE = "price"  # price y = 1 / rate offered to the borrower
LOAN = "loan"  # loan amount (coins)
UTILITY = "utility"  # the agent's utility this round, before any reward scaling
BORROWER_UTILITY = "borrower_utility"  # the borrower's utility this round
IS_OPTIMAL_LENDER = "is_optimal_lender"  # whether the borrower takes its loan from this lender
OPTIMAL_LENDER = "optimal_lender"  # index of the lender the borrower takes its loan from
WELFARE = "welfare"  # sum of every agent's utility this round

# Bookkeeping.
ROUND = "round"  # index of the round that the step belongs to, from 0
PHASE = "phase"  # 0 for the leaders' step, 1 for the followers' step
ACTS = "acts"  # whether the agent's action took effect in this step
CLIPPED_ACTIONS = "clipped_actions"  # actions clipped into the action space so far this episode

# Analytic reference values, present only for envs built with reference=True.
REFERENCE = "reference"  # dict of equilibrium values of the episode under the keys above
BEST_RESPONSE_UTILITY = "best_response_utility"  # max over own action of U_i(a_i', a_-i)
BEST_RESPONSE_RATE = "best_response_rate"  # the rate that attains BEST_RESPONSE_UTILITY

LEADERS_PHASE = 0
FOLLOWERS_PHASE = 1
LOANS = "loans"  # the borrower's loan from every lender (coins), one entry per lender
RATES = "rates"  # the rate offered to every lender, one entry per lender
INVESTMENT = "investment"  # a lender's investment (coins)
INVESTMENTS = "investments"  # every lender's investment (coins), one entry per lender
RAISE_FAILED = "raise_failed"  # whether the borrower's raise failed (total at most X - 1)
FOLLOWER_RESPONSE = "follower_response"  # a follower's action in the followers' equilibrium
BEST_RESPONSE_INVESTMENT = "best_response_investment"  # investment attaining the best response

# Settlement on the ledger (coins unless stated).
LENT = "lent"  # principal a lender sent this round
BORROWED = "borrowed"  # principal the borrower received this round (submitted, maybe pending)
BUDGET = "budget"  # a lender's spendable balance when the round's loans were decided
BALANCE = "balance"  # the agent's spendable balance after the round
PENDING_INCOMING = "pending_incoming"  # coins on their way to the agent, not yet confirmed
PENDING_OUTGOING = "pending_outgoing"  # coins the agent sent that are not yet confirmed
CASHFLOW = "cashflow"  # coins received minus coins paid, as confirmed this round
REPAID = "repaid"  # repayments submitted to a lender this round
LOST_TO_DEFAULT = "lost_to_default"  # repayments a lender lost to defaults this round
DEFAULTED = "defaulted"  # repayments the borrower failed to pay this round
DEFAULTS = "defaults"  # the borrower's defaults so far this episode (a count, public)
DATA_BOUGHT = "data_bought"  # whether the borrower bought this round's data

# Computation offloading.
ACTION = "action"  # a device's choice: 0 local, 1 + k edge k, 1 + K + k the cloud via edge k
COST = "cost"  # a device's cost this round (coins)
TOTAL_COST = "total_cost"  # the sum of every device's cost this round (coins)
OPTIMUM_COST = "optimum_cost"  # the minimum total cost (coins), exact or a local-search bound
RELAY_INCOME = "relay_income"  # fees a device earned as a relay this round (coins)
TASK_FAILED = "task_failed"  # whether the edge failed the device's task this round
INTEREST = "interest"  # interest a device owes on this round's bank loans (coins)
TASKS = "tasks"  # tasks an edge ran this round
BEST_RESPONSE_ACTION = "best_response_action"  # the action attaining BEST_RESPONSE_UTILITY
OPTIMUM_EXACT = "optimum_exact"  # whether OPTIMUM_COST is the exact optimum (else a bound)
PAYMENT_REJECTED = "payment_rejected"  # whether the ledger rejected a payment of the agent

# Data market.
RECEIVED = "received"  # data a buyer received this round (data units)
PAYMENT = "payment"  # coins a buyer paid this round
BIDS = "bids"  # a buyer's bid to every seller (coins)
SUPPLY = "supply"  # data a seller sent this round (data units)
REVENUE = "revenue"  # coins a seller received this round
FORWARDED = "forwarded"  # whether a relay forwarded the messages it received
REPORTED = "reported"  # whether a relay reported receipts
MESSAGES = "messages"  # messages a relay received this round
TOTAL_PAYMENT = "total_payment"  # coins every buyer paid this round, in total
