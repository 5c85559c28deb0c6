"""Edge and cloud computation offloading for blockchain IIoT: the model and its solvers.

Modules: ``scenario`` (constants and ranges), ``topology`` (links, routes, resources and the
action layout), ``game`` (batched game instances), ``model`` (costs, potential, rewards),
``equilibrium`` (Nash equilibrium, social optimum), ``baselines``, ``pricing`` (edge servers
as pricing leaders) and ``reputation``. None of them imports PettingZoo.
"""
