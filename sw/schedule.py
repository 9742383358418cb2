"""How many clock cycles the chip takes per sample, per phase, the lower bound it is held to, and
which memory word it writes in which cycle (:func:`inference_writes`).

The datapath is time-multiplexed over P MAC lanes. A *beat* is one clock in which the P lanes
each handle one synapse of the same row: a row of n synapses takes ``ceil(n / P)`` beats (the
last beat of a row idles ``P - n mod P`` lanes; a row narrower than P takes one beat). Weights
are stored so that a row of ``W_l`` and a row of ``B_l = W_l^T`` are both read P words per beat.

Per sample (training), in order:

* ``input_drive``: ``W_0 x`` for every neuron of layer 1, once (x is static).
* ``free``: T1 relaxation steps. A step computes every neuron of layers 1..L: layer 1 from the
  cached ``W_0 x`` plus its ``B_1`` row, deeper layers from their ``W_{l-1}`` and ``B_l`` rows;
  at least one beat per neuron (to apply rho to a cached drive).
* ``nudged``: ``phases * T2`` relaxation steps, the same cost as free ones.
* ``updates``: after each nudged step, one read-modify-write beat per P weights of every ``W_l``
  (and ``B_l`` when untied) and per P biases. The ``W_0`` pass also refreshes ``W_0 x`` from the
  new weights (each lane has x_j in hand), so it is never recomputed separately.
* ``homeostasis``: when due (every ``homeostasis_period`` samples), one beat per P reciprocal
  pairs ``(W_l[i,j], B_l[j,i])``; the per-sample figure is that pass divided by the period.

Every pass (a step, an update pass, the input drive, a homeostasis pass) ends with
:data:`PASS_LATENCY` cycles to drain the pipeline, because the next pass reads what it wrote.
The row factors of the updates (``eta/beta * s``) are computed by the neuron unit as it writes
each new state, without beats of their own.

The lower bound counts the work a sample needs, divided by P: multiply-accumulates
(``W_0 x`` once, then ``W_l s_l`` and ``B_l s_{l+1}`` for l >= 1 at every step) and parameter
read-modify-writes (every weight and bias at every nudged step, every reciprocal pair per
homeostasis pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import CONTINUAL_RULES, Config
from .errors import ConfigError
from .golden import phase_count

#: Cycles from a pass's last beat to its last write: the memories answer and the lanes
#: accumulate (stage 1), then rho is applied and the state written (stage 2). See eqprop.hw.core.
PASS_LATENCY = 2


def neuron_beats(sizes: list[int], l: int, lanes: int) -> int:
    """Beats one neuron of layer l takes in a relaxation step: its ``W_{l-1}`` row (layer 1 reuses
    the cached ``W_0 x``) and its ``B_l`` row, at least one beat to apply rho."""
    L = len(sizes) - 1
    forward = math.ceil(sizes[l - 1] / lanes) if l >= 2 else 0
    backward = math.ceil(sizes[l + 1] / lanes) if l < L else 0
    return max(1, forward + backward)


@dataclass(frozen=True)
class CycleCount:
    """Cycles per sample of one configuration at P lanes, by phase, and the work behind the bound."""

    lanes: int
    #: Cycles per training sample by phase (``homeostasis`` averaged over its period).
    phases: dict[str, float]
    #: Cycles of one inference (input drive and free phase).
    inference: int
    macs: int
    rmws: float
    #: Cycles of one homeostasis pass (0 when homeostasis is off); it follows every
    #: ``homeostasis_period``-th training sample.
    homeostasis_pass: int = 0

    @property
    def total(self) -> float:
        return sum(self.phases.values())

    @property
    def bound(self) -> float:
        """``(multiply-accumulates + read-modify-writes) / P`` per training sample."""
        return (self.macs + self.rmws) / self.lanes

    @property
    def ratio(self) -> float:
        return self.total / self.bound

    def to_dict(self) -> dict:
        return {
            "lanes": self.lanes,
            "phases": self.phases,
            "total": self.total,
            "inference": self.inference,
            "macs": self.macs,
            "rmws": self.rmws,
            "homeostasis_pass": self.homeostasis_pass,
            "bound": self.bound,
            "ratio": self.ratio,
        }


def cycle_count(cfg: Config, lanes: int | None = None) -> CycleCount:
    """The cycle-count formula for ``cfg`` at ``lanes`` MAC lanes (default ``hardware.lanes``)."""
    P = cfg.hardware.lanes if lanes is None else lanes
    if not isinstance(P, int) or P < 1:
        raise ConfigError(f"the number of MAC lanes P must be a positive integer, got {P!r}")
    if cfg.learning.rule not in CONTINUAL_RULES:
        raise ConfigError(f"the chip learns with cep (tied) or cvf (untied); learning.rule is {cfg.learning.rule!r}")
    n, L = cfg.network.sizes, cfg.network.n_layers
    learn, tied = cfg.learning, cfg.network.tied
    nudged_steps = phase_count(learn.nudging) * learn.T2

    def beats(width: int) -> int:
        return math.ceil(width / P)

    step = sum(n[l] * neuron_beats(n, l, P) for l in range(1, L + 1)) + PASS_LATENCY
    update = PASS_LATENCY
    for l in range(L):
        update += n[l + 1] * beats(n[l]) + beats(n[l + 1])
        if not tied and l >= 1:
            update += n[l] * beats(n[l + 1])
    pairs = sum(n[l + 1] * n[l] for l in range(1, L))
    homeostasis_pass = sum(n[l + 1] * beats(n[l]) for l in range(1, L)) + PASS_LATENCY
    homeostasis_on = learn.homeostasis == "local" and pairs > 0

    input_drive = n[1] * beats(n[0]) + PASS_LATENCY
    phases = {
        "input_drive": float(input_drive),
        "free": float(learn.T1 * step),
        "nudged": float(nudged_steps * step),
        "updates": float(nudged_steps * update),
        "homeostasis": homeostasis_pass / learn.homeostasis_period if homeostasis_on else 0.0,
    }
    macs = n[1] * n[0] + (learn.T1 + nudged_steps) * sum(2 * n[l] * n[l + 1] for l in range(1, L))
    weights = sum(n[l] * n[l + 1] for l in range(L)) + (0 if tied else pairs)
    rmws = nudged_steps * (weights + sum(n[1:])) + (pairs / learn.homeostasis_period if homeostasis_on else 0.0)
    return CycleCount(P, phases, input_drive + learn.T1 * step, macs, rmws, homeostasis_pass if homeostasis_on else 0)


@dataclass(frozen=True)
class Write:
    """One memory word written by the chip: in which cycle of the sample, where, what."""

    #: Cycles since the sample's first beat (the cycle counter's value in that cycle).
    cycle: int
    #: ``w0x`` or ``s{l}`` (states of layer l).
    memory: str
    #: The state buffer (0 or 1) for states; 0 for ``w0x``.
    buffer: int
    index: int
    value: int


def inference_writes(model, x) -> list[Write]:
    """Every write of one inference of ``x`` (quantized inputs, one sample), in cycle order.

    ``model`` is a :class:`eqprop.golden.GoldenModel`; the values are its, the cycles follow the
    pipeline of :mod:`eqprop.hw.core`: a neuron's state is written two cycles after its last beat
    is issued, and the passes follow each other as :func:`cycle_count` counts them.
    """
    import numpy as np

    cfg, P = model.arith.cfg, model.arith.cfg.hardware.lanes
    n, L = cfg.network.sizes, cfg.network.n_layers
    x = np.asarray(x, dtype=np.int64).reshape(1, -1)
    writes, cycle = [], 0
    w0x = model.input_drive(x)
    for i in range(n[1]):
        cycle += math.ceil(n[0] / P)
        writes.append(Write(cycle + 1, "w0x", 0, i, int(w0x[0, i])))
    cycle += PASS_LATENCY
    s = model.zero_states(x)
    for t in range(cfg.learning.T1):
        s = model.step(s, w0x)
        for l in range(1, L + 1):
            per_neuron = neuron_beats(n, l, P)
            for i in range(n[l]):
                cycle += per_neuron
                writes.append(Write(cycle + 1, f"s{l}", (t + 1) % 2, i, int(s[l][0, i])))
        cycle += PASS_LATENCY
    return writes
