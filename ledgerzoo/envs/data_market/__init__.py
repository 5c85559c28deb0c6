"""The data market among robots: valuation, the edge server's double auction, and relays.

- ``scenario``: the scenario's parameters, presets and per-episode sampling.
- ``model``: buyers' utilities, sellers' costs and social welfare.
- ``auctioneer``: the auctioneer's allocation problem, solved exactly for a batch.
- ``auction``: truthful bids and asks, and the iterative auction to its fixed point.
- ``welfare``: the welfare optimum by scipy, the reference for the auction.
- ``relays``: Sprite's credits for the relays that carry the data.
"""
