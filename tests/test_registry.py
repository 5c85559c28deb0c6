"""The env registry: lookups, construction, user registration and its error messages."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import parallel_api_test

import ledgerzoo
from ledgerzoo import registry

USER_MODULE = """
from pettingzoo.utils.conversions import parallel_to_aec

from ledgerzoo.envs.lending.one_to_one import LendingOneToOneEnv

raw_env = LendingOneToOneEnv


def parallel_env(**kwargs):
    return LendingOneToOneEnv(**{"n_lenders": 2, "max_cycles": 3, **kwargs})


def env(**kwargs):
    return parallel_to_aec(parallel_env(**kwargs))
"""


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that the test may change; the original comes back afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write an importable user env module and return its import name."""
    name = "ledgerzoo_user_market_for_tests"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_list_envs_sorted_and_versioned():
    names = ledgerzoo.list_envs()
    assert names, "the registry is empty"
    assert names == sorted(names)
    for name in names:
        assert re.fullmatch(r"[a-z0-9_]+_v\d+", name), f"{name!r} has no version suffix"


def test_every_entry_loads(env_name):
    entry = registry.spec(env_name)
    assert entry.name == env_name
    assert entry.summary.strip(), f"{env_name} has no summary"
    module = entry.load()
    for attribute in ("env", "parallel_env", "raw_env"):
        assert hasattr(module, attribute), f"{entry.module} lacks {attribute}"


def test_make_returns_parallel_env(env_name):
    env = ledgerzoo.make(env_name)
    assert isinstance(env, ParallelEnv)
    assert isinstance(env, registry.spec(env_name).load().raw_env)


def test_make_aec_returns_aec_env(env_name):
    env = ledgerzoo.make_aec(env_name)
    assert isinstance(env, AECEnv)
    env.reset(seed=0)
    assert env.agents == env.possible_agents


def test_make_passes_kwargs(env_name):
    env = ledgerzoo.make(env_name, max_cycles=2)
    observations, _ = env.reset(seed=0)
    steps = 0
    while env.agents:
        actions = {}
        for agent in env.agents:
            observation = observations[agent]
            mask = observation.get("action_mask") if isinstance(observation, dict) else None
            actions[agent] = env.action_space(agent).sample(mask)
        observations = env.step(actions)[0]
        steps += 1
    assert steps == 2, f"max_cycles=2 gave {steps} steps"
    aec = ledgerzoo.make_aec(env_name, render_mode="ansi")
    assert aec.unwrapped.render_mode == "ansi"


def test_unknown_name_suggests_close_match():
    name = ledgerzoo.list_envs()[0]
    typo = re.sub(r"_v\d+$", "_v9", name)
    with pytest.raises(KeyError) as error:
        ledgerzoo.make(typo)
    message = str(error.value)
    assert typo in message, message
    assert f"Did you mean {name!r}?" in message, message
    for registered in ledgerzoo.list_envs():
        assert registered in message, f"{registered} not listed in {message!r}"


def test_unknown_name_lists_envs():
    for lookup in (ledgerzoo.make, ledgerzoo.make_aec, registry.spec, registry.market_class):
        with pytest.raises(KeyError) as error:
            lookup("zzzz")
        message = str(error.value)
        assert "Did you mean" not in message, message
        for registered in ledgerzoo.list_envs():
            assert registered in message, f"{lookup.__name__}: {registered} not in {message!r}"


@pytest.mark.usefixtures("scratch_registry")
def test_register_user_env(user_module):
    entry = ledgerzoo.register("user_market_v0", user_module, "A user's market for the tests.")
    assert entry == registry.spec("user_market_v0")
    assert "user_market_v0" in ledgerzoo.list_envs()
    env = ledgerzoo.make("user_market_v0")
    assert env.possible_agents == ["lender_0", "lender_1"]
    parallel_api_test(env, num_cycles=10)
    aec = ledgerzoo.make_aec("user_market_v0", n_lenders=3)
    aec.reset(seed=1)
    assert aec.agents == ["lender_0", "lender_1", "lender_2"]


@pytest.mark.usefixtures("scratch_registry")
def test_registration_restored_after_test():
    # Runs after test_register_user_env in file order: its entry must be gone.
    assert "user_market_v0" not in ledgerzoo.list_envs()


@pytest.mark.usefixtures("scratch_registry")
def test_register_duplicate_raises(user_module):
    name = ledgerzoo.list_envs()[0]
    with pytest.raises(ValueError, match=f"{name}.*overwrite=True"):
        ledgerzoo.register(name, user_module, "duplicate")
    ledgerzoo.register(name, user_module, "replacement", overwrite=True)
    assert registry.spec(name).module == user_module


@pytest.mark.parametrize("name", ["", None, 3])
@pytest.mark.usefixtures("scratch_registry")
def test_register_invalid_name_raises(name):
    with pytest.raises(ValueError, match="invalid env name"):
        ledgerzoo.register(name, "some.module", "summary")  # type: ignore[arg-type]


@pytest.mark.usefixtures("scratch_registry")
def test_missing_module_fails_on_make():
    ledgerzoo.register("missing_module_v0", "ledgerzoo_no_such_module", "never importable")
    with pytest.raises(ModuleNotFoundError, match="ledgerzoo_no_such_module"):
        ledgerzoo.make("missing_module_v0")


def test_market_class_of_vector_env(vector_env_name):
    module = registry.spec(vector_env_name).load()
    assert registry.market_class(vector_env_name) is module.market_class


@pytest.mark.usefixtures("scratch_registry")
def test_market_class_missing_raises(user_module):
    ledgerzoo.register("user_market_v0", user_module, "no vector face")
    with pytest.raises(ValueError, match=f"user_market_v0.*{user_module}.*market_class"):
        registry.market_class("user_market_v0")


def test_spec_is_frozen(env_name):
    entry = registry.spec(env_name)
    with pytest.raises(AttributeError):
        entry.name = "other"  # type: ignore[misc]


def test_package_exports_registry_api():
    for name in ("make", "make_aec", "list_envs", "register", "spec", "EnvSpec", "__version__"):
        assert name in ledgerzoo.__all__, name
        assert hasattr(ledgerzoo, name), name


def test_make_rejects_unknown_argument() -> None:
    with pytest.raises(TypeError, match=r"'n_lender'.*n_lenders"):
        ledgerzoo.make("lending_one_to_one_v0", n_lender=3)
