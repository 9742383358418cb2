"""How many clock cycles the chip takes per sample, per phase, the lower bound it is held to, and
which memory word it writes in which cycle (:func:`sample_trace`, as columns, or :func:`sample_writes`).

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

import numpy as np

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


@dataclass
class WriteTrace:
    """Every write of a sample as columns (one row per write, in no particular order)."""

    #: ``memory`` holds indices into this list of memory names.
    memories: list[str]
    cycle: np.ndarray
    memory: np.ndarray
    buffer: np.ndarray
    index: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.cycle)

    def of(self, memory: str) -> np.ndarray:
        """A mask of the rows that write ``memory``."""
        return self.memory == self.memories.index(memory)

    def writes(self) -> list[Write]:
        """As :class:`Write` objects, in cycle order (then memory, buffer, index)."""
        rows = zip(self.cycle.tolist(), self.memory.tolist(), self.buffer.tolist(), self.index.tolist(), self.value.tolist())
        return sorted((Write(c, self.memories[m], b, i, v) for c, m, b, i, v in rows), key=lambda w: (w.cycle, w.memory, w.buffer, w.index))


def memory_names(cfg: Config) -> list[str]:
    """The memories the chip writes while it works on a sample: ``w0x``, states ``s{l}``, then the parameters."""
    from .network import param_names

    return ["w0x"] + [f"s{l}" for l in range(1, cfg.network.n_layers + 1)] + param_names(cfg.network)


def sample_trace(model, x, label: int = 0, train: bool = False) -> WriteTrace:
    """Every state, ``W_0 x``, weight and bias write the chip makes for one sample, with its cycle.

    ``model`` is a :class:`eqprop.golden.GoldenModel` (it learns the sample when ``train``); the
    values are its, the cycles follow the pipeline of :mod:`eqprop.hw.core`: a beat issued in
    cycle c writes a weight in cycle c + 1 (update and homeostasis passes), a row's last beat
    issued in cycle c writes its state (or ``W_0 x``) in cycle c + 2, and the passes follow each
    other as :func:`cycle_count` counts them. Weights and biases are indexed row-major.
    """
    cfg, P = model.arith.cfg, model.arith.cfg.hardware.lanes
    n, L, tied, learn = cfg.network.sizes, cfg.network.n_layers, cfg.network.tied, cfg.learning
    names = memory_names(cfg)
    x = np.asarray(x, dtype=np.int64).reshape(1, -1)
    chunks: list[tuple] = []
    cycle = 0  # the next issue cycle
    free_steps = 0
    buffers = {"write": 1, "star": 2}

    def beats(length: int) -> int:
        return max(1, math.ceil(length / P))

    def emit(cycles, memory: str, buffer: int, index, values) -> None:
        cycles, index = np.broadcast_arrays(np.asarray(cycles, dtype=np.int64), np.asarray(index, dtype=np.int64))
        chunks.append((cycles.ravel(), names.index(memory), buffer, index.ravel(), np.asarray(values, dtype=np.int64).ravel()))

    def matrix(name: str, values: np.ndarray, transposed: bool = False) -> int:
        """A row-by-row read-modify-write pass over ``values`` (or its transpose) from ``cycle``; returns its beats per row."""
        grid = values.T if transposed else values
        rows, cols = grid.shape
        per_row = beats(cols)
        r, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        emit(cycle + r * per_row + j // P + 1, name, 0, j * rows + r if transposed else r * cols + j, grid)
        return per_row

    def relaxation(states, buffer: int) -> None:
        nonlocal cycle
        for l in range(1, L + 1):
            per_neuron = neuron_beats(n, l, P)
            emit(cycle + (np.arange(n[l]) + 1) * per_neuron + 1, f"s{l}", buffer, np.arange(n[l]), states[l][0])
            cycle += n[l] * per_neuron
        cycle += PASS_LATENCY

    def w0x_rows(w0x, per_row: int) -> None:
        emit(cycle + (np.arange(n[1]) + 1) * per_row + 1, "w0x", 0, np.arange(n[1]), w0x[0])

    def weight_pass(params, w0x) -> None:
        nonlocal cycle
        for l in range(L):
            per_row = matrix(f"W{l}", params[f"W{l}"])
            if l == 0:
                w0x_rows(w0x, per_row)
            cycle += n[l + 1] * per_row
            if not tied and l >= 1:
                cycle += n[l] * matrix(f"B{l}", params[f"B{l}"])
            cycle += matrix(f"b{l + 1}", params[f"b{l + 1}"].reshape(1, -1))
        cycle += PASS_LATENCY

    def homeostasis_pass(params) -> None:
        nonlocal cycle
        for l in range(1, L):
            matrix(f"B{l}", params[f"B{l}"], transposed=True)  # B_l[j, r] with W_l[r, j], in the same beat
            cycle += n[l + 1] * matrix(f"W{l}", params[f"W{l}"])
        cycle += PASS_LATENCY

    def observe(event, value):
        nonlocal free_steps, cycle
        if event == "w0x":
            w0x_rows(value, beats(n[0]))
            cycle += n[1] * beats(n[0]) + PASS_LATENCY
        elif event == "free":
            free_steps += 1
            relaxation(value, free_steps % 2)
            if free_steps == learn.T1:  # s* stays in this buffer through the nudged phases
                buffers["star"] = free_steps % 2
                buffers["write"] = (buffers["star"] + 1) % 3
                buffers["steps"] = 0
        elif event == "nudged":
            if buffers["steps"] % learn.T2 == 0:
                buffers["write"] = (buffers["star"] + 1) % 3
            relaxation(value, buffers["write"])
            buffers["write"] = 3 - buffers["star"] - buffers["write"]
            buffers["steps"] += 1
        elif event == "update":
            weight_pass(*value)
        elif event == "homeostasis":
            homeostasis_pass(value)

    if train:
        model.train_sample(x, label, observe)
    else:
        model.free_phase(x, observe)
    columns = [
        np.concatenate([c[0] for c in chunks]),
        np.concatenate([np.full(len(c[0]), c[1]) for c in chunks]),
        np.concatenate([np.full(len(c[0]), c[2]) for c in chunks]),
        np.concatenate([c[3] for c in chunks]),
        np.concatenate([c[4] for c in chunks]),
    ]
    return WriteTrace(names, *columns)


def sample_writes(model, x, label: int = 0, train: bool = False) -> list[Write]:
    """:func:`sample_trace` as a list of :class:`Write`, in cycle order."""
    return sample_trace(model, x, label, train).writes()


def locate(cfg: Config, cycle: int) -> str:
    """The pass a cycle of a training sample falls in, in words (``nudged phase 2, step 3, weight update``).

    Every write lands inside the pass that issued it (the pass's drain cycles are its own), so
    this names the pass of a write from its cycle alone.
    """
    count, learn = cycle_count(cfg), cfg.learning
    nudged_steps = phase_count(learn.nudging) * learn.T2
    drive, step = int(count.phases["input_drive"]), int(count.phases["free"]) // learn.T1
    update = int(count.phases["updates"]) // nudged_steps
    if cycle < drive:
        return "input drive (W_0 x)"
    cycle -= drive
    if cycle < learn.T1 * step:
        return f"free phase, step {cycle // step + 1} of {learn.T1}"
    cycle -= learn.T1 * step
    if cycle < nudged_steps * (step + update):
        k, within = divmod(cycle, step + update)
        phase, t = divmod(k, learn.T2)
        what = "relaxation" if within < step else "weight update"
        return f"nudged phase {phase + 1}, step {t + 1} of {learn.T2}, {what}"
    return "homeostasis pass"
