"""The single list of ledgerzoo environments.

Tests, docs and the command line enumerate :func:`list_envs`; there is no second list. A
registry entry names a module that follows the PettingZoo layout (``env()``,
``parallel_env()``, ``raw_env``) and, for markets with a vector face, exposes
``market_class``, the :class:`~ledgerzoo.envs.core.market.BatchedMarket` both faces step.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pettingzoo import AECEnv, ParallelEnv


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment.

    Attributes:
        name: Registry name with its version suffix, for example ``lending_one_to_one_v0``.
        module: Import path of the env module (``env``, ``parallel_env``, ``raw_env``).
        summary: One line for ``ledgerzoo list`` and the docs.
    """

    name: str
    module: str
    summary: str

    def load(self) -> ModuleType:
        """Import the env module."""
        return importlib.import_module(self.module)


_REGISTRY: dict[str, EnvSpec] = {}


def register(name: str, module: str, summary: str, *, overwrite: bool = False) -> EnvSpec:
    """Add an environment to the registry.

    Args:
        name: Registry name; it should carry a version suffix such as ``_v0``.
        module: Import path of a module exposing ``parallel_env(**kwargs)`` and
            ``env(**kwargs)`` (and ``market_class`` to get a vector face).
        summary: One line describing the market.
        overwrite: Whether to replace an existing entry of the same name.

    Returns:
        The new entry.

    Raises:
        ValueError: If the name is taken and ``overwrite`` is False, or the name is empty.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"invalid env name {name!r}: expected a non-empty string")
    if name in _REGISTRY and not overwrite:
        raise ValueError(
            f"an env named {name!r} is already registered; pass overwrite=True to replace it"
        )
    spec = EnvSpec(name=name, module=module, summary=summary)
    _REGISTRY[name] = spec
    return spec


def spec(name: str) -> EnvSpec:
    """Look up a registered environment.

    Raises:
        KeyError: If no env has that name; the message lists the registered names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"unknown env {name!r}.{hint} Registered envs: {', '.join(list_envs())}"
        ) from None


def list_envs() -> list[str]:
    """Names of every registered environment, sorted."""
    return sorted(_REGISTRY)


def check_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check that every keyword argument is a constructor argument of a registered env.

    Raises:
        TypeError: For an unknown argument; the message lists the env's arguments.
    """
    module = spec(name).load()
    parameters = inspect.signature(module.raw_env.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = sorted(parameter for parameter in parameters if parameter != "self")
    for key in kwargs:
        if key not in accepted:
            raise TypeError(
                f"unknown argument {key!r} for env {name!r}; its arguments are {accepted}"
            )


def make(name: str, **kwargs: Any) -> ParallelEnv:
    """Build a registered environment's PettingZoo ParallelEnv.

    Args:
        name: Registry name (see :func:`list_envs`).
        **kwargs: Constructor arguments of the env.

    Raises:
        KeyError: For an unknown env name.
        TypeError: For an unknown argument (the message lists the env's arguments).
    """
    check_kwargs(name, kwargs)
    return spec(name).load().parallel_env(**kwargs)


def make_aec(name: str, **kwargs: Any) -> AECEnv:
    """Build a registered environment's AEC form."""
    return spec(name).load().env(**kwargs)


def make_single_agent(name: str, **kwargs: Any) -> Any:
    """Build a registered market's single-agent ``gymnasium.Env`` (one acting agent, analytic
    followers), for training with any single-agent library.

    Args:
        name: Registry name (see :func:`list_envs`).
        **kwargs: Constructor arguments of the env; ``render_mode`` goes to the wrapper.

    Raises:
        ValueError: If the market, with these arguments, has more than one acting agent.
    """
    from ledgerzoo.envs.core.single_agent import SingleAgentMarketEnv

    check_kwargs(name, kwargs)
    render_mode = kwargs.pop("render_mode", None)
    market = market_class(name)(num_instances=1, **kwargs)
    return SingleAgentMarketEnv(market, render_mode=render_mode)


def market_class(name: str) -> Callable[..., Any]:
    """Return the batched market class behind a registered env (its vector face).

    Raises:
        ValueError: If the env module exposes no ``market_class``.
    """
    module = spec(name).load()
    cls = getattr(module, "market_class", None)
    if cls is None:
        raise ValueError(
            f"env {name!r} has no vector face: its module {module.__name__} defines no market_class"
        )
    return cls


register(
    "lending_one_to_one_v0",
    "ledgerzoo.envs.lending_one_to_one_v0",
    "One borrower, N competing lenders post interest rates (Stackelberg, lenders lead).",
)
register(
    "lending_one_to_many_v0",
    "ledgerzoo.envs.lending_one_to_many_v0",
    "One borrower sets rates, N lenders decide how much to invest (Stackelberg, borrower leads).",
)
register(
    "offloading_v0",
    "ledgerzoo.envs.offloading_v0",
    "IIoT devices offload tasks to edge servers or the cloud over multi-hop routes (potential game).",
)
register(
    "data_market_v0",
    "ledgerzoo.envs.data_market_v0",
    "Robots trade perishable data in an iterative double auction over relays paid by receipts.",
)
