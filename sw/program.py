"""The pass program: every pass the core makes over a sample, its beats, and the pipeline's latencies.

Pure Python (neither Amaranth nor torch). What depends on the order and length of the chip's work
is derived from here and nowhere else: :mod:`eqprop.schedule` (the cycle count, the lower bound,
the cycle of every write, :func:`eqprop.schedule.locate`) and the sequencer of :mod:`eqprop.hw.core`.

* A **beat** is one clock in which the P lanes each handle one synapse of the same row; a row of
  n synapses takes ``ceil(n / P)`` beats (at least one: a neuron without synapses to read still
  takes a beat to apply rho to its cached drive).
* A **part** is ``rows`` rows of ``beats`` beats over one memory (:class:`Part`).
* A **group** is the parts whose rows interleave: a neuron of a relaxation step reads its
  ``W_{l-1}`` row, then its ``B_l`` row, then the next neuron begins (:class:`Group`).
* A **pass** is its groups issued back to back, one beat per cycle, then drained for
  :meth:`Pass.drain` cycles, because the next pass reads what it wrote (:class:`Pass`).

The passes of a training sample, in order (:func:`sample_passes`): the input drive ``W_0 x``; T1
free relaxation steps; for each nudged phase, T2 times a relaxation step and an update pass (and,
with literal input updates, the input drive again from the new ``W_0``); with deferred input
updates the one input-layer update; the homeostasis pass when it is due.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .config import Config, phase_count


class PassKind(enum.Enum):
    #: ``W_0 x`` for every neuron of layer 1 (x is clamped: once per sample).
    INPUT_DRIVE = "input drive (W_0 x)"
    #: One synchronous step of every layer 1..L.
    RELAXATION = "relaxation"
    #: The continual update after a nudged step: every ``W_l``, ``B_l``, ``b_{l+1}``
    #: (without ``W_0`` when input updates are deferred).
    UPDATE = "weight update"
    #: The deferred update of ``W_0``, once per sample: ``W_0 += round(F x^T)``.
    INPUT_UPDATE = "input-layer update"
    #: The local homeostasis rule over every reciprocal pair ``(W_l[i, j], B_l[j, i])``.
    HOMEOSTASIS = "homeostasis"


# -- the pipeline (eqprop.hw.core and its units), in registers a beat passes ---------------------
#: MAC lanes (eqprop.hw.mac): rotated and rounded operands, the products (the DSP blocks' output
#: registers), the adder tree with a register after every TREE_LEVELS_PER_STAGE levels, the accumulator.
OPERAND_STAGES = 1
PRODUCT_STAGES = 1
TREE_LEVELS_PER_STAGE = 2
ACCUMULATE_STAGES = 1
#: Neuron unit (eqprop.hw.neuron): the total drive; rho and the nudge; the learning factors; the
#: tracked W_0 x and F; its writes leave from the last of these registers. Deferred input updates
#: add one, for the product f ||x||^2.
NEURON_STAGES = 4


def neuron_stages(cfg: Config) -> int:
    return NEURON_STAGES + (1 if cfg.hardware.defer_input_updates else 0)


@dataclass(frozen=True)
class Pipeline:
    """The registers that depend on the FPGA: where timing is easy (the iCE40 closes its 24 MHz
    with room to spare) and logic cells are few, two registers are left out."""

    #: The memories answer the cycle after a beat is issued (synchronous read ports); with 2 their
    #: words are registered once more before any logic (the block RAMs' output registers).
    read_stages: int = 2
    #: Update lanes (eqprop.hw.update): operands, products, the rounded increment, the saturated
    #: sum and, with 5, the words rotated back to their banks registered; the writes leave from the
    #: last register. With ``read_stages`` odd in all, so that in a read-modify-write walk the word
    #: written and the word read in one cycle have addresses of different parity
    #: (eqprop.hw.memories' SPRAM stores need it).
    update_stages: int = 5

    def __post_init__(self) -> None:
        assert self.read_stages in (1, 2) and self.update_stages in (4, 5)
        assert (self.read_stages + self.update_stages) % 2 == 1

    @property
    def weight_write_latency(self) -> int:
        """An update or homeostasis beat to the write of its new words."""
        return self.read_stages + self.update_stages


PIPELINES = {"ice40up5k": Pipeline(read_stages=1, update_stages=4)}


def pipeline(cfg: Config) -> Pipeline:
    return PIPELINES.get(cfg.hardware.fpga, Pipeline())


def tree_stages(lanes: int) -> int:
    """Registers in the adder tree of P lanes (none for one lane)."""
    levels = math.ceil(math.log2(lanes)) if lanes > 1 else 0
    return math.ceil(levels / TREE_LEVELS_PER_STAGE)


def mac_latency(lanes: int) -> int:
    """Cycles from the MAC lanes' operands to the accumulator holding a row's drive."""
    return OPERAND_STAGES + PRODUCT_STAGES + tree_stages(lanes) + ACCUMULATE_STAGES


def state_write_latency(cfg: Config) -> int:
    """A row's last beat to the write of its neuron's state, learning factors and ``W_0 x``."""
    return pipeline(cfg).read_stages + mac_latency(cfg.hardware.lanes) + neuron_stages(cfg)


@dataclass(frozen=True)
class Part:
    """``rows`` rows of ``beats`` beats over one memory."""

    kind: PassKind
    #: Unique in the program: the core's sequencer names its states after it.
    name: str
    #: The layer whose neurons a relaxation part computes; the weight layer l an update works on.
    layer: int
    #: The weight memory read (``W{l}``, ``B{l}``), or None (biases, a layer without synapses to read).
    matrix: str | None
    #: The matrix is read by column (the tied backward pass reads ``W_l^T`` as columns of ``W_l``).
    column: bool
    #: The layer of the presynaptic values multiplied (0: the input x), or None.
    pre: int | None
    #: Synapses (or biases) per row.
    length: int
    rows: int
    beats: int
    #: What an update writes: ``W``, ``B`` or ``b`` (None for the other kinds).
    target: str | None = None


@dataclass(frozen=True)
class Group:
    """Parts whose rows interleave: row r of every part, in order, then row r + 1."""

    parts: tuple[Part, ...]

    @property
    def rows(self) -> int:
        return self.parts[0].rows

    @property
    def row_beats(self) -> int:
        return sum(part.beats for part in self.parts)

    @property
    def beats(self) -> int:
        return self.rows * self.row_beats


@dataclass(frozen=True)
class Pass:
    kind: PassKind
    groups: tuple[Group, ...]

    @property
    def parts(self) -> list[Part]:
        return [part for group in self.groups for part in group.parts]

    @property
    def beats(self) -> int:
        return sum(group.beats for group in self.groups)

    #: Cycles after the last beat until the pass's last write.
    drain: int

    @property
    def cycles(self) -> int:
        return self.beats + self.drain


def beats(length: int, lanes: int) -> int:
    return max(1, math.ceil(length / lanes))


@dataclass(frozen=True)
class Program:
    """The passes of one configuration, each built once; :func:`sample_passes` sequences them."""

    cfg: Config
    input_drive: Pass
    relaxation: Pass
    update: Pass
    input_update: Pass | None
    homeostasis: Pass | None

    @classmethod
    def of(cls, cfg: Config) -> "Program":
        n, L, P, tied = cfg.network.sizes, cfg.network.n_layers, cfg.hardware.lanes, cfg.network.tied
        deferred = cfg.hardware.defer_input_updates

        def part(kind, name, layer, matrix, column, pre, length, rows, target=None) -> Part:
            return Part(kind, name, layer, matrix, column, pre, length, rows, beats(length, P), target)

        K = PassKind
        mac, weights = state_write_latency(cfg), pipeline(cfg).weight_write_latency
        drive = Pass(K.INPUT_DRIVE, (Group((part(K.INPUT_DRIVE, "drive_W0", 1, "W0", False, 0, n[0], n[1]),)),), mac)
        layers = []
        for l in range(1, L + 1):
            parts = []
            if l >= 2:
                parts.append(part(K.RELAXATION, f"relax_l{l}_fwd", l, f"W{l - 1}", False, l - 1, n[l - 1], n[l]))
            if l < L:
                matrix = f"W{l}" if tied else f"B{l}"
                parts.append(part(K.RELAXATION, f"relax_l{l}_bwd", l, matrix, tied, l + 1, n[l + 1], n[l]))
            if not parts:  # a single-layer network: layer 1 only applies rho to the cached W_0 x
                parts.append(part(K.RELAXATION, f"relax_l{l}_rho", l, None, False, None, 0, n[l]))
            layers.append(Group(tuple(parts)))
        relaxation = Pass(K.RELAXATION, tuple(layers), mac)

        updates = []
        for l in range(L):
            if l > 0 or not deferred:
                updates.append(part(K.UPDATE, f"update_W{l}", l, f"W{l}", False, l, n[l], n[l + 1], "W"))
            if not tied and l >= 1:
                updates.append(part(K.UPDATE, f"update_B{l}", l, f"B{l}", False, l + 1, n[l + 1], n[l], "B"))
            updates.append(part(K.UPDATE, f"update_b{l + 1}", l, None, False, None, n[l + 1], 1, "b"))
        update = Pass(K.UPDATE, tuple(Group((p,)) for p in updates), weights)

        input_update = None
        if deferred:
            input_update = Pass(K.INPUT_UPDATE, (Group((part(K.INPUT_UPDATE, "input_update_W0", 0, "W0", False, 0, n[0], n[1], "W"),)),), weights)
        homeostasis = None
        if cfg.learning.homeostasis == "local" and L >= 2:
            pairs = [part(K.HOMEOSTASIS, f"homeostasis_W{l}", l, f"W{l}", False, None, n[l], n[l + 1]) for l in range(1, L)]
            homeostasis = Pass(K.HOMEOSTASIS, tuple(Group((p,)) for p in pairs), weights)
        return cls(cfg, drive, relaxation, update, input_update, homeostasis)

    def passes(self) -> list[Pass]:
        """Every distinct pass, in the order they first run."""
        return [p for p in (self.input_drive, self.relaxation, self.update, self.input_update, self.homeostasis) if p]

    def parts(self) -> list[Part]:
        """Every part of every pass, in the order of :meth:`passes` (the sequencer's states)."""
        return [part for p in self.passes() for part in p.parts]


@dataclass(frozen=True)
class Slot:
    """One pass of a sample's sequence, where it starts and what it is in words."""

    pass_: Pass
    start: int
    #: The phase (0-based; None in the free phase) and the step in it.
    phase: int | None = None
    step: int | None = None


def sample_passes(cfg: Config, train: bool = True, homeostasis: bool = True) -> list[Slot]:
    """The passes of one sample in order with their start cycles (0 = the first beat).

    ``homeostasis`` says whether this sample is followed by the homeostasis pass (the core runs it
    after every ``homeostasis_period``-th training sample).
    """
    program, learn = Program.of(cfg), cfg.learning
    slots: list[Slot] = []
    cycle = 0

    def add(p: Pass | None, phase=None, step=None) -> None:
        nonlocal cycle
        if p is not None:
            slots.append(Slot(p, cycle, phase, step))
            cycle += p.cycles

    add(program.input_drive)
    for t in range(learn.T1):
        add(program.relaxation, None, t)
    if train:
        for phase in range(phase_count(learn.nudging)):
            for t in range(learn.T2):
                add(program.relaxation, phase, t)
                add(program.update, phase, t)
                if program.input_update is None:  # literal input updates: W_0 x again, from the new W_0
                    add(program.input_drive, phase, t)
        add(program.input_update)
        if homeostasis:
            add(program.homeostasis)
    return slots


def describe(slot: Slot, cfg: Config) -> str:
    """A slot in words: ``nudged phase 2, step 3 of 10, weight update``."""
    learn, kind = cfg.learning, slot.pass_.kind
    if slot.phase is not None:
        return f"nudged phase {slot.phase + 1}, step {slot.step + 1} of {learn.T2}, {kind.value}"
    if kind == PassKind.RELAXATION:
        return f"free phase, step {slot.step + 1} of {learn.T1}"
    return f"{kind.value} pass" if kind == PassKind.HOMEOSTASIS else kind.value
