"""The accuracy bars of SPEC section 8 on digits, mean of 3 seeds (about a minute; `make test-fast` skips them)."""

import statistics

import pytest

from eqprop import presets
from eqprop.train import train

SEEDS = (0, 1, 2)


def mean_test_accuracy(preset: str) -> float:
    cfg = presets.get(preset)
    return statistics.fmean(train(cfg.replace(training={"seed": s, "probe_samples": 0})).final["test_accuracy"] for s in SEEDS)


@pytest.mark.slow
def test_cep_reaches_97_percent_beside_the_bp_mlp():
    cep, mlp = mean_test_accuracy("digits-cep"), mean_test_accuracy("digits-mlp")
    assert cep >= 0.97, cep
    assert mlp >= 0.95, mlp


@pytest.mark.slow
def test_cvf_with_homeostasis_reaches_96_percent():
    assert mean_test_accuracy("digits-cvf-homeostasis") >= 0.96
