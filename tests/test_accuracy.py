"""The accuracy bars of SPEC section 8 on digits, mean of 3 seeds (several minutes; `make test-fast` skips them)."""

import statistics

import pytest

from eqprop import presets
from eqprop.train import train

SEEDS = (0, 1, 2)


def mean_test_accuracy(preset: str, **changes) -> float:
    cfg = presets.get(preset)
    runs = (train(cfg.replace(training={"seed": s, "probe_samples": 0, **changes})) for s in SEEDS)
    return statistics.fmean(run.final["test_accuracy"] for run in runs)


@pytest.mark.slow
def test_cep_reaches_97_percent_beside_the_bp_mlp():
    cep, mlp = mean_test_accuracy("digits-cep"), mean_test_accuracy("digits-mlp")
    assert cep >= 0.97, cep
    assert mlp >= 0.95, mlp


@pytest.mark.slow
def test_cvf_with_homeostasis_reaches_96_percent():
    assert mean_test_accuracy("digits-cvf-homeostasis") >= 0.96


@pytest.mark.slow
def test_fixed_point_cep_from_scratch_is_within_1_5_points_of_float():
    """The chip's arithmetic (16-bit states and weights, 8 learning bits) against float, same preset."""
    fixed, reference = mean_test_accuracy("digits-cep-chip", arith="fixed"), mean_test_accuracy("digits-cep-chip")
    assert fixed >= reference - 0.015, (fixed, reference)
