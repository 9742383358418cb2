"""Randomized configurations for co-simulation sweeps (``eqprop cosim --random N --seed S``).

Each draw varies what the core is parameterized by: layer sizes (including layers narrower than
P and sizes P does not divide), tied (C-EP) or untied (C-VF), nudging mode, homeostasis and its
period, T1/T2, beta, learning rates, P, weight/state widths, learning bits, stochastic rounding
and the rounding modes of the state, update and weight formats, and the weights in block RAM or
in the iCE40UP5K's SPRAM. Draws the chip cannot be built
for (a format that cannot hold its values) are redrawn, so every seed gives a buildable design.
"""

from __future__ import annotations

import numpy as np
import torch

from eqprop import network
from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.fixed import ROUNDING_MODES
from eqprop.golden import GoldenModel
from eqprop.hw.core import check_buildable
from eqprop.quantize import resize, with_format

ATTEMPTS = 200


def _draw(rng: np.random.Generator) -> Config:
    layers = int(rng.integers(1, 4))
    sizes = [int(rng.integers(2, 10))] + [int(rng.integers(1, 10)) for _ in range(layers - 1)] + [int(rng.integers(2, 7))]
    tied = bool(rng.integers(2))
    homeostasis = not tied and layers >= 2 and rng.random() < 0.7
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    cfg = Config().replace(
        network={"sizes": sizes, "tied": tied, "init_gain": float(rng.uniform(1.0, 2.5))},
        learning={
            "rule": "cep" if tied else "cvf",
            "nudging": pick(["one-sided", "symmetric", "random-sign"]),
            "T1": int(rng.integers(2, 6)),
            "T2": int(rng.integers(1, 4)),
            "beta": pick([0.25, 0.5, 1.0]),
            "lr": [pick([0.02, 0.05, 0.1, 0.2]) for _ in range(layers)],
            "homeostasis": "local" if homeostasis else "off",
            "homeostasis_coef": pick([0.05, 0.1, 0.25]) if homeostasis else 0.0,
            "homeostasis_period": int(rng.integers(1, 4)),
        },
        # a quarter on the iCE40UP5K: W_l in SPRAM parity stores (redrawn when they do not fit)
        # and a quarter with literal (per-step) input-layer updates
        hardware={
            "lanes": int(rng.integers(1, 9)), "fpga": "ice40up5k" if rng.random() < 0.25 else "generic",
            "defer_input_updates": rng.random() >= 0.25,
        },
    )
    cfg = resize(cfg, weight_bits=int(rng.integers(8, 17)), state_bits=int(rng.integers(8, 17)))
    fx = cfg.fixed
    cfg = cfg.replace(fixed={
        "learn_bits": int(rng.integers(0, 9)),
        "stochastic_rounding": bool(rng.integers(2)),
        "state": with_format(fx.state) | {"rounding": pick(ROUNDING_MODES)},
        "update": with_format(fx.update) | {"rounding": pick(ROUNDING_MODES)},
        "weight": with_format(fx.weight) | {"rounding": pick(ROUNDING_MODES)},
    })
    return cfg.replace(training={"arith": "fixed"})


def random_config(seed: int) -> Config:
    """A buildable configuration drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(ATTEMPTS):
        try:
            cfg = _draw(rng)
            check_buildable(cfg)
            return cfg
        except ConfigError:
            continue
    raise RuntimeError(f"no buildable configuration in {ATTEMPTS} draws from seed {seed}")


def random_job(seed: int, samples: int) -> tuple[Config, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A configuration, initial stored parameters, and ``samples`` random inputs and labels, all from ``seed``."""
    cfg = random_config(seed)
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(seed), torch.float64))
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(0, cfg.fixed.input.max_int + 1, (samples, cfg.network.sizes[0]))
    labels = rng.integers(0, cfg.network.sizes[-1], samples)
    return cfg, golden.params, x, labels
