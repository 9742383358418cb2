"""The accuracy bars of SPEC section 8 on digits, mean of 3 seeds (several minutes; `make test-fast` skips them)."""

import statistics
from concurrent.futures import ProcessPoolExecutor

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


def _chip_run(job: tuple[str, int]) -> float:
    arith, seed = job
    cfg = presets.get("digits-cep-chip").replace(training={"seed": seed, "probe_samples": 0, "arith": arith})
    return train(cfg).final["test_accuracy"]


@pytest.mark.slow
def test_fixed_point_cep_from_scratch_is_within_1_5_points_of_float():
    """The chip's arithmetic (16-bit states and weights, 8 learning bits) against float, same preset.

    Six runs of a few minutes each, spread over two processes so the test does not hold one
    pytest worker for the whole suite.
    """
    jobs = [(arith, seed) for arith in ("fixed", "float") for seed in SEEDS]
    with ProcessPoolExecutor(2) as pool:
        results = dict(zip(jobs, pool.map(_chip_run, jobs)))
    fixed = statistics.fmean(results["fixed", s] for s in SEEDS)
    reference = statistics.fmean(results["float", s] for s in SEEDS)
    assert fixed >= reference - 0.015, (fixed, reference)
