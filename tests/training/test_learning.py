"""Short real training runs: PPO lenders and MaskablePPO devices must end far closer to the
equilibrium than random play. Each takes about half a minute on 2 cores, so they are slow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ledgerzoo.training.config import config_from_dict
from ledgerzoo.training.evaluate import evaluate_config
from ledgerzoo.training.train import train

pytest.importorskip("stable_baselines3")

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lending" / "one_to_one.yaml"
TRAINING_STEPS = 600_000


@pytest.mark.slow
def test_ppo_lenders_approach_equilibrium(tmp_path: Path) -> None:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data["train"].update(total_timesteps=TRAINING_STEPS, checkpoint_every=0)
    data["eval"].update(episodes=5)
    config = config_from_dict(data, source="shortened shipped config")

    trained = train(config, tmp_path / "run", progress_bar=False).evaluation
    random = evaluate_config(config, "random")

    assert trained is not None
    learned_error = trained.metrics["rate_error"].mean
    random_error = random.metrics["rate_error"].mean
    learned_nash_conv = trained.metrics["normalized_nash_conv"].mean
    random_nash_conv = random.metrics["normalized_nash_conv"].mean
    assert learned_error < 0.5 * random_error, (
        f"rate error after {TRAINING_STEPS} steps: learned {learned_error}, random {random_error}"
    )
    assert learned_nash_conv < 0.25 * random_nash_conv, (
        f"normalized NashConv: learned {learned_nash_conv}, random {random_nash_conv}"
    )


OFFLOADING_CONFIG = SHIPPED_CONFIG.parents[1] / "offloading" / "small.yaml"
OFFLOADING_STEPS = 300_000


@pytest.mark.slow
def test_maskable_devices_approach_equilibrium(tmp_path: Path) -> None:
    data = yaml.safe_load(OFFLOADING_CONFIG.read_text())
    data["train"].update(total_timesteps=OFFLOADING_STEPS, checkpoint_every=0)
    data["eval"].update(episodes=5)
    config = config_from_dict(data, source="shortened offloading config")

    trained = train(config, tmp_path / "run", progress_bar=False).evaluation
    random = evaluate_config(config, "random")

    assert trained is not None
    learned_gap = trained.metrics["total_cost_gap"].mean
    random_gap = random.metrics["total_cost_gap"].mean
    learned_nash_conv = trained.metrics["normalized_nash_conv"].mean
    random_nash_conv = random.metrics["normalized_nash_conv"].mean
    assert learned_gap < 0.25 * random_gap, (
        f"total cost gap after {OFFLOADING_STEPS} steps: learned {learned_gap}, random {random_gap}"
    )
    assert learned_nash_conv < 0.25 * random_nash_conv, (
        f"normalized NashConv: learned {learned_nash_conv}, random {random_nash_conv}"
    )
