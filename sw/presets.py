"""Named configurations that reproduce the quality bars of SPEC section 8.

``eqprop train --dataset D --rule R`` starts from the preset ``D-R`` when there is one, else from
``digits-R`` with the dataset swapped (input and output sizes then follow the data).
"""

from __future__ import annotations

from .config import Config
from .errors import ConfigError

_UNTIED = {"tied": False, "untied_init": "independent"}
_HOMEOSTASIS = {"homeostasis": "local", "homeostasis_coef": 0.01, "homeostasis_period": 16}

#: name -> (description, changes to the default Config, which is ``digits-cep``).
PRESETS: dict[str, tuple[str, dict]] = {
    "digits-cep": ("C-EP, tied, symmetric nudging, 64-128-10 (the default)", {}),
    "digits-cep-chip": (
        "C-EP as the chip learns it: one sample at a time (batch 1), lr 0.01/0.005, 10 epochs; run it with --arith fixed",
        {"learning": {"lr": [0.01, 0.005]}, "training": {"batch_size": 1, "epochs": 10}},
    ),
    "digits-ep": ("plain EP, tied, update after the nudged phases", {"learning": {"rule": "ep"}}),
    "digits-cvf": ("C-VF, untied, independent initial B (random angle), no homeostasis", {"network": _UNTIED, "learning": {"rule": "cvf"}}),
    "digits-cvf-homeostasis": (
        "C-VF, untied, random initial angle, local Jacobian homeostasis",
        {"network": _UNTIED, "learning": {"rule": "cvf", **_HOMEOSTASIS}},
    ),
    "digits-bptt": ("baseline: BPTT through the free phase", {"learning": {"rule": "bptt", "lr": [0.2, 0.1]}}),
    "digits-rbp": ("baseline: implicit (recurrent backprop) gradients at the fixed point", {"learning": {"rule": "rbp", "lr": [0.2, 0.1]}}),
    "digits-mlp": ("baseline: backprop MLP of the same shape (linear output, cross-entropy)", {"learning": {"rule": "mlp", "lr": [0.2, 0.1]}}),
}


def get(name: str) -> Config:
    """The preset ``name`` as a validated :class:`Config`."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; `eqprop presets` lists them")
    return Config().replace(**PRESETS[name][1])


def for_dataset_rule(dataset: str, rule: str) -> Config:
    """The tuned starting point for a dataset and rule (see the module docstring)."""
    name = f"{dataset}-{rule}"
    return get(name if name in PRESETS else f"digits-{rule}")
