"""How many clock cycles the chip takes per sample, the lower bound it is held to, and which memory
word it writes in which cycle: all derived from the pass program (:mod:`eqprop.program`).

:func:`cycle_count` sums the cycles of a sample's passes (:func:`eqprop.program.sample_passes`)
by phase. :func:`sample_trace` walks the same passes beside the golden model's learning of a
sample and gives every state, ``W_0 x``, weight and bias write with its cycle: a relaxation or
input-drive row writes its neuron :func:`~eqprop.program.state_write_latency` cycles after its
last beat is issued (the pass's drain), an update or homeostasis beat writes its P words
:attr:`~eqprop.program.Pipeline.weight_write_latency` cycles after it is issued. :func:`locate` names the
pass of a cycle.

The lower bound counts the work a sample needs, divided by P: multiply-accumulates (``W_0 x``
once, then ``W_l s_l`` and ``B_l s_{l+1}`` for l >= 1 at every step) and parameter
read-modify-writes (every weight and bias at every nudged step, every reciprocal pair per
homeostasis pass). With deferred input updates (the chip's default) ``W_0`` is read, modified and
written once per sample instead of at every nudged step (the tracking of ``W_0 x``, one multiply
per layer-1 neuron per nudged step, is the neuron unit's, beside the lanes, and not counted);
:attr:`CycleCount.bound` counts the configured form's work, :attr:`CycleCount.literal_bound` the
per-step form's, both over the same P.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import CONTINUAL_RULES, Config, phase_count
from .errors import ConfigError
from .program import PassKind, Slot, describe, pipeline, sample_passes

#: :class:`CycleCount` phases, by the pass kind (and, for relaxation and updates, free or nudged).
PHASES = ("input_drive", "free", "nudged", "updates", "input_update", "homeostasis")


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
    #: The read-modify-writes of the literal form (every ``W_0`` weight at every nudged step).
    literal_rmws: float
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
    def literal_bound(self) -> float:
        """The bound of the literal per-step updates of ``W_0`` at the same P."""
        return (self.macs + self.literal_rmws) / self.lanes

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
            "literal_rmws": self.literal_rmws,
            "homeostasis_pass": self.homeostasis_pass,
            "bound": self.bound,
            "literal_bound": self.literal_bound,
            "ratio": self.ratio,
        }


def _phase(slot: Slot) -> str:
    kind = slot.pass_.kind
    if kind == PassKind.RELAXATION:
        return "free" if slot.phase is None else "nudged"
    return {PassKind.INPUT_DRIVE: "input_drive", PassKind.UPDATE: "updates", PassKind.INPUT_UPDATE: "input_update", PassKind.HOMEOSTASIS: "homeostasis"}[kind]


def cycle_count(cfg: Config, lanes: int | None = None) -> CycleCount:
    """The cycle-count formula for ``cfg`` at ``lanes`` MAC lanes (default ``hardware.lanes``)."""
    P = cfg.hardware.lanes if lanes is None else lanes
    if not isinstance(P, int) or P < 1:
        raise ConfigError(f"the number of MAC lanes P must be a positive integer, got {P!r}")
    if cfg.learning.rule not in CONTINUAL_RULES:
        raise ConfigError(f"the chip learns with cep (tied) or cvf (untied); learning.rule is {cfg.learning.rule!r}")
    if P != cfg.hardware.lanes:
        cfg = cfg.replace(hardware={"lanes": P})
    n, L = cfg.network.sizes, cfg.network.n_layers
    learn, tied = cfg.learning, cfg.network.tied
    nudged_steps = phase_count(learn.nudging) * learn.T2
    period = learn.homeostasis_period

    phases = dict.fromkeys(PHASES, 0.0)
    for slot in sample_passes(cfg, homeostasis=False):
        phases[_phase(slot)] += slot.cycles
    # a homeostasis pass (and the gap before it) follows every period-th training sample
    with_homeostasis = sum(slot.cycles for slot in sample_passes(cfg, homeostasis=True))
    homeostasis_pass = with_homeostasis - sum(phases.values())
    phases["homeostasis"] = homeostasis_pass / period
    inference = sum(slot.cycles for slot in sample_passes(cfg, train=False))

    pairs = sum(n[l + 1] * n[l] for l in range(1, L))
    homeostasis_rmws = pairs / period if homeostasis_pass else 0.0
    macs = n[1] * n[0] + (learn.T1 + nudged_steps) * sum(2 * n[l] * n[l + 1] for l in range(1, L))
    deep_weights = sum(n[l] * n[l + 1] for l in range(1, L)) + (0 if tied else pairs)
    per_step = deep_weights + sum(n[1:])
    literal_rmws = nudged_steps * (per_step + n[0] * n[1]) + homeostasis_rmws
    if cfg.hardware.defer_input_updates:
        rmws = nudged_steps * per_step + n[0] * n[1] + homeostasis_rmws
    else:
        rmws = literal_rmws
    return CycleCount(P, phases, inference, macs, rmws, literal_rmws, homeostasis_pass)


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
    from .layout import param_names

    return ["w0x"] + [f"s{l}" for l in range(1, cfg.network.n_layers + 1)] + param_names(cfg.network)


class _TraceBuilder:
    """The writes of a sample's passes, pass by pass, as columns."""

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.P = cfg, cfg.hardware.lanes
        self.weight_latency = pipeline(cfg).weight_write_latency
        self.names = memory_names(cfg)
        self.chunks: list[tuple] = []

    def emit(self, cycles, memory: str, buffer: int, index, values) -> None:
        cycles, index = np.broadcast_arrays(np.asarray(cycles, dtype=np.int64), np.asarray(index, dtype=np.int64))
        self.chunks.append((cycles.ravel(), self.names.index(memory), buffer, index.ravel(), np.asarray(values, dtype=np.int64).ravel()))

    def rows(self, slot: Slot):
        """``(part, first beat's issue cycle of every row)`` of every part of a pass."""
        cycle = slot.start
        for group in slot.pass_.groups:
            offset = 0
            for part in group.parts:
                yield part, cycle + offset + group.row_starts()
                offset += part.beats
            cycle += group.beats

    def neurons(self, slot: Slot, values: dict[int, np.ndarray], memory, buffer: int = 0) -> None:
        """One write per row of every group: ``values[layer]`` when its last beat has gone through."""
        cycle = slot.start
        for group in slot.pass_.groups:
            layer = group.parts[-1].layer
            if layer in values:
                last_beats = cycle + group.row_ends()
                self.emit(last_beats + slot.pass_.drain, memory(layer), buffer, np.arange(group.rows), values[layer])
            cycle += group.beats

    def matrix(self, issue: np.ndarray, part, name: str, values: np.ndarray, transposed: bool = False) -> None:
        """A row-by-row read-modify-write of ``values`` (``(rows, length)``, or ``(length, rows)``
        walked by column when ``transposed``): beat k of row r writes its P words."""
        j = np.arange(part.length)
        cycles = issue[:, None] + j[None, :] // self.P + self.weight_latency
        index = part.word_index(np.arange(part.rows)[:, None], j[None, :], column=transposed)
        self.emit(cycles, name, 0, index, values.T if transposed else values)

    def weights(self, slot: Slot, params: dict[str, np.ndarray]) -> None:
        for part, issue in self.rows(slot):
            if part.kind == PassKind.HOMEOSTASIS:
                self.matrix(issue, part, part.matrix, params[part.matrix])
                self.matrix(issue, part, f"B{part.layer}", params[f"B{part.layer}"], transposed=True)
            elif part.target == "b":
                name = f"b{part.layer + 1}"
                self.matrix(issue, part, name, params[name].reshape(1, -1))
            else:
                self.matrix(issue, part, part.matrix, params[part.matrix], transposed=part.column)

    def trace(self) -> "WriteTrace":
        columns = [
            np.concatenate([c[0] for c in self.chunks]),
            np.concatenate([np.full(len(c[0]), c[1]) for c in self.chunks]),
            np.concatenate([np.full(len(c[0]), c[2]) for c in self.chunks]),
            np.concatenate([c[3] for c in self.chunks]),
            np.concatenate([c[4] for c in self.chunks]),
        ]
        return WriteTrace(self.names, *columns)


class _StateBuffers:
    """Which of the three state buffers each relaxation step writes: a step reads one and writes
    another; from the end of the free phase the third keeps s*, where every nudged phase starts."""

    def __init__(self) -> None:
        self.write, self.star, self.phase = 1, 2, None

    def next(self, slot: Slot) -> int:
        if slot.phase is None:  # free step t writes buffer (t + 1) mod 2; the last one holds s*
            buffer = (slot.step + 1) % 2
            self.star = buffer
            return buffer
        if slot.step == 0:
            self.write = (self.star + 1) % 3
        buffer, self.write = self.write, 3 - self.star - self.write
        return buffer


def sample_trace(model, x, label: int = 0, train: bool = False) -> WriteTrace:
    """Every state, ``W_0 x``, weight and bias write the chip makes for one sample, with its cycle.

    ``model`` is a :class:`eqprop.golden.GoldenModel` (it learns the sample when ``train``); the
    values are its, the cycles those of :func:`eqprop.program.sample_passes`. Weights and biases
    are indexed row-major.
    """
    cfg = model.arith.cfg
    events: list[tuple[str, object]] = []
    x = np.asarray(x, dtype=np.int64).reshape(1, -1)
    observe = lambda event, value: events.append((event, value))  # noqa: E731
    if train:
        model.train_sample(x, label, observe)
    else:
        model.free_phase(x, observe)
    slots = sample_passes(cfg, train, homeostasis=any(event == "homeostasis" for event, _ in events))
    assert len(slots) == len(events), "the golden model and the pass program disagree on the passes of a sample"
    out, buffers = _TraceBuilder(cfg), _StateBuffers()
    layers = range(1, cfg.network.n_layers + 1)
    deferred = cfg.hardware.defer_input_updates
    for slot, (event, value) in zip(slots, events):
        kind = slot.pass_.kind
        if kind == PassKind.INPUT_DRIVE:
            out.neurons(slot, {1: value[0]}, lambda l: "w0x")
        elif kind == PassKind.RELAXATION:
            states, w0x = value if event == "nudged" else (value, None)
            buffer = buffers.next(slot)
            out.neurons(slot, {l: states[l][0] for l in layers}, lambda l: f"s{l}", buffer)
            if deferred and w0x is not None:  # the tracked W_0 x is written beside s_1
                out.neurons(slot, {1: w0x[0]}, lambda l: "w0x")
        else:
            out.weights(slot, value)
    return out.trace()


def sample_writes(model, x, label: int = 0, train: bool = False) -> list[Write]:
    """:func:`sample_trace` as a list of :class:`Write`, in cycle order."""
    return sample_trace(model, x, label, train).writes()


def locate(cfg: Config, cycle: int) -> str:
    """The pass that wrote in a cycle of a training sample, in words (``nudged phase 2, step 3 of 10,
    weight update``): the one whose writes span that cycle. Passes overlap, so in the first cycles
    of a pass the last writes of the one before may still land: then both are named.
    """
    slots = sample_passes(cfg)
    writing = [slot for slot in slots if slot.start + slot.pass_.drain <= cycle < slot.start + slot.pass_.beats + slot.pass_.drain]
    if not writing:  # no write lands in this cycle: the pass issuing its beats, or whose gap it is
        writing = [next((slot for slot in reversed(slots) if cycle >= slot.start), slots[0])]
    return " or ".join(describe(slot, cfg) for slot in writing)
