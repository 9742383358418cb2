"""Learning on digits with the presets of SPEC section 8, one seed and fewer epochs (under a minute).

The SPEC's bars themselves (mean of 3 seeds, full presets: C-EP >= 97%, C-VF with homeostasis
>= 96%, fixed-point C-EP within 1.5 points of float) are measured by `eqprop bench`: its summary
says whether each is met. The bars here are lower, set from measured runs with a margin, and fail
when learning breaks.
"""

import pytest

from eqprop import presets
from eqprop.train import train

SEED = 0
#: Epochs of the float presets here (they train 30). Measured, seeds 0 / 1 / 2: C-EP 95.3 / 96.9 / 95.8%,
#: BP MLP 95.8 / 96.4 / 97.2%, C-VF with homeostasis 94.7 / 97.5 / 96.1%.
EPOCHS = 10
#: Epochs of digits-cep-chip here (it trains 10). Measured, seeds 0 / 1 / 2: fixed point 94.7 / 94.7 /
#: 92.8%, float 95.3 / 93.1 / 93.9%.
CHIP_EPOCHS = 2


def accuracy(preset: str, epochs: int = EPOCHS, arith: str = "float") -> float:
    cfg = presets.get(preset).replace(training={"seed": SEED, "epochs": epochs, "probe_samples": 0, "arith": arith})
    return train(cfg).final["test_accuracy"]


@pytest.mark.slow
def test_cep_and_the_bp_mlp_reach_94_percent_in_10_epochs():
    cep, mlp = accuracy("digits-cep"), accuracy("digits-mlp")
    assert cep >= 0.94, cep
    assert mlp >= 0.94, mlp


@pytest.mark.slow
def test_cvf_with_homeostasis_reaches_93_percent_in_10_epochs():
    assert accuracy("digits-cvf-homeostasis") >= 0.93


@pytest.mark.slow
def test_fixed_point_cep_from_scratch_learns_within_3_points_of_float():
    """The chip's arithmetic (16-bit states and weights, 8 learning bits) against float, same preset and seed.

    One seed's gap after 2 epochs varies by more than a point from seed to seed (-0.6, +1.7, -1.1
    points for seeds 0, 1, 2), hence 3 points here where the SPEC's mean of 3 full runs allows 1.5.
    """
    fixed, reference = accuracy("digits-cep-chip", CHIP_EPOCHS, "fixed"), accuracy("digits-cep-chip", CHIP_EPOCHS)
    assert fixed >= 0.92, fixed
    assert fixed >= reference - 0.03, (fixed, reference)
