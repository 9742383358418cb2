"""The pass program: every pass the core makes over a sample, its beats, and the pipeline's latencies.

Pure Python (neither Amaranth nor torch). What depends on the order and length of the chip's work
is derived from here and nowhere else: :mod:`eqprop.schedule` (the cycle count, the lower bound,
the cycle of every write, :func:`eqprop.schedule.locate`) and the sequencer of :mod:`eqprop.hw.core`.

* A **beat** is one clock in which the P lanes each handle one synapse of the same row; a row of
  n synapses takes ``ceil(n / P)`` beats (at least one: a neuron without synapses to read still
  takes a beat to apply rho to its cached drive). Layer 1's relaxation rows, when at most P/2
  long, are **packed**: a beat holds ``P // n`` of them, each finished by its own neuron unit
  (:func:`packing`, :meth:`Part.slot_rows`).
* A **part** is ``rows`` rows of ``beats`` beats over one memory (:class:`Part`).
* A **group** is the parts whose rows interleave: a neuron of a relaxation step reads its
  ``W_{l-1}`` row, then its ``B_l`` row, then the next neuron begins (:class:`Group`).
* A **pass** is its groups issued back to back, one beat per cycle (:class:`Pass`). Its last write
  lands :attr:`Pass.drain` cycles after its last beat.
* Passes overlap: the next pass's first beat follows the last beat of this one after a **gap**,
  the fewest idle cycles with which no beat reads a word before the write it needs has landed
  (nor writes a word an earlier beat has still to read), found word by word from every beat's
  reads and writes (:func:`pass_gaps`). Consecutive relaxation steps alternate the order of their
  layers (:attr:`Program.relaxation_reversed`), so that a step begins with the layer whose inputs
  the last step wrote first. The sample ends when its last write has landed.

The passes of a training sample, in order (:func:`sample_passes`): the input drive ``W_0 x``; T1
free relaxation steps; for each nudged phase, T2 times a relaxation step and an update pass (and,
with literal input updates, the input drive again from the new ``W_0``); with deferred input
updates the one input-layer update; the homeostasis pass when it is due.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

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
#: Neuron unit (eqprop.hw.neuron): the total drive and the output's error; rho and the nudge; the
#: learning factors; the tracked W_0 x and F; its writes leave from the last of these registers.
#: Deferred input updates add one, for the product f ||x||^2.
NEURON_STAGES = 4


def neuron_stages(cfg: Config) -> int:
    return NEURON_STAGES + (1 if cfg.hardware.defer_input_updates else 0)


@dataclass(frozen=True)
class Pipeline:
    """The registers that depend on the FPGA: where logic cells are few (the iCE40UP5K, whose SoC
    fills nearly all of them), two registers are left out."""

    #: The memories answer the cycle after a beat is issued (synchronous read ports); with 2 their
    #: words are registered once more before any logic (the block RAMs' output registers).
    read_stages: int = 2
    #: Update lanes (eqprop.hw.update): operands, products, the rounded increment, the saturated
    #: sum and, with 5, the words rotated back to their banks registered; the writes leave from the
    #: last register. With ``read_stages`` odd in all, so that in a read-modify-write walk the word
    #: written and the word read in one cycle have addresses of different parity
    #: (eqprop.hw.memories' SPRAM stores need it).
    update_stages: int = 5
    #: The weight matrices W_l live in single-port stores (the iCE40's SPRAM, eqprop.hw.memories),
    #: whose parity split holds only within one read-modify-write walk: a pass that writes them
    #: and the next that reads them do not overlap.
    single_port_weights: bool = False

    def __post_init__(self) -> None:
        assert self.read_stages in (1, 2) and self.update_stages in (4, 5)
        assert (self.read_stages + self.update_stages) % 2 == 1

    @property
    def weight_write_latency(self) -> int:
        """An update or homeostasis beat to the write of its new words."""
        return self.read_stages + self.update_stages


PIPELINES = {"ice40up5k": Pipeline(read_stages=1, update_stages=4, single_port_weights=True)}


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
    #: The matrix is walked by column (the tied backward pass reads ``W_l^T`` as columns of ``W_l``;
    #: :func:`feedback_by_column` updates of ``B_l``): a row of the part is a column of the matrix.
    column: bool
    #: The layer of the presynaptic values multiplied (0: the input x), or None (a column update of
    #: ``B_l`` multiplies the factors e of layer l).
    pre: int | None
    #: Synapses (or biases) per row.
    length: int
    rows: int
    beats: int
    #: What an update writes: ``W``, ``B`` or ``b`` (None for the other kinds).
    target: str | None = None
    #: Rows per beat (:func:`packing`): lanes ``[i * length, (i + 1) * length)`` hold row
    #: ``r + i * length`` of the beat for row r, each row its own neuron unit's.
    packed: int = 1

    def word_index(self, row, synapse, column: bool | None = None):
        """The row-major index in its matrix of a row's synapse: ``row * length + synapse``, or for a
        walk by column (``column``, by default the part's), ``synapse * rows + row``."""
        by_column = self.column if column is None else column
        return synapse * self.rows + row if by_column else row * self.length + synapse

    @property
    def slots(self) -> int:
        """Row-beats the part issues: its rows, or with packing, the beats its rows share."""
        return self.rows if self.packed == 1 else len(self.slot_rows())

    def slot_rows(self) -> np.ndarray:
        """``(slots, packed)``: the rows of each row-beat, in issue order (-1 where there is none).
        Packed rows go in blocks of ``packed * length``: slot v of a block holds its rows
        ``v, v + length, ...``, so that one rotation of the skewed banks serves them all."""
        if self.packed == 1:
            return np.arange(self.rows)[:, None]
        stride, block = self.length, self.packed * self.length
        bases = np.array([q + v for q in range(0, self.rows, block) for v in range(stride) if q + v < self.rows])
        rows = bases[:, None] + stride * np.arange(self.packed)[None, :]
        return np.where(rows < self.rows, rows, -1)


def packing(kind: PassKind, layer: int, layers: int, length: int, lanes: int) -> int:
    """Rows a beat holds. A row of at most P/2 synapses would leave most lanes idle; layer 1's
    relaxation rows (its only part: ``W_0 x`` is cached), below the output layer whose argmax
    and nudge one neuron unit computes, share their beats instead, one neuron unit per row."""
    if kind != PassKind.RELAXATION or layer != 1 or layers < 2 or not 0 < 2 * length <= lanes:
        return 1
    return lanes // length


@dataclass(frozen=True)
class Group:
    """Parts whose rows interleave: row r of every part, in order, then row r + 1 (or a packed
    part's row-beats, :meth:`Part.slot_rows`)."""

    parts: tuple[Part, ...]

    @property
    def rows(self) -> int:
        return self.parts[0].rows

    @property
    def row_beats(self) -> int:
        return sum(part.beats for part in self.parts)

    @property
    def beats(self) -> int:
        return self.parts[0].slots * self.row_beats

    def row_ends(self) -> np.ndarray:
        """For every row, the beat (from the group's first) that completes it."""
        slot_rows = self.parts[0].slot_rows()
        ends = np.empty(self.rows, dtype=np.int64)
        slot = np.broadcast_to(np.arange(len(slot_rows))[:, None], slot_rows.shape)
        ends[slot_rows[slot_rows >= 0]] = slot[slot_rows >= 0]
        return (ends + 1) * self.row_beats - 1

    def row_starts(self) -> np.ndarray:
        """For every row, the beat (from the group's first) that begins it."""
        return self.row_ends() + 1 - self.row_beats


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
    #: Unique among the program's passes (the reversed relaxation has its own): names its gaps.
    name: str


def beats(length: int, lanes: int) -> int:
    return max(1, math.ceil(length / lanes))


def feedback_by_column(sizes: list[int], layer: int) -> bool:
    """Whether the continual update of ``B_l`` (``n_l x n_{l+1}``, untied) walks it column by column.

    The lanes go along the matrix's longer side: ``B_1`` of a 64-128-10 network has 128 rows of 10,
    which at P = 64 would take 128 beats a step, its 10 columns of 128 take 20. The choice depends
    on the shape alone, not on P, so that the order of the stochastic rounding's LFSR draws (the
    golden model's, :meth:`eqprop.golden.GoldenModel._update`) is the same at every P. Where both
    sides are about as long, the segments' rounding up can then favour the other walk (65 x 64 at
    P = 64: 64 columns of two beats against 65 rows of one); in the presets' networks one side is
    several times the other."""
    return sizes[layer] > sizes[layer + 1]


#: Programs built, by their configuration's JSON (finding the gaps walks every pass of a sample).
_PROGRAMS: dict = {}


@dataclass(frozen=True)
class Program:
    """The passes of one configuration, each built once; :func:`sample_passes` sequences them."""

    cfg: Config
    input_drive: Pass
    relaxation: Pass
    #: The relaxation with its layers in the opposite order (the same parts): the step after a
    #: relaxation step runs the other order.
    relaxation_reversed: Pass
    update: Pass
    input_update: Pass | None
    homeostasis: Pass | None
    #: Idle cycles between the last beat of a pass and the first of the next, by
    #: :class:`Transition` (to ``None``: the sample's end, when its last write has landed).
    gaps: dict = field(compare=False)

    @classmethod
    def of(cls, cfg: Config) -> "Program":
        key = cfg.to_json()
        if key not in _PROGRAMS:
            if len(_PROGRAMS) >= 64:
                _PROGRAMS.clear()
            _PROGRAMS[key] = cls._build(cfg)
        return _PROGRAMS[key]

    @classmethod
    def _build(cls, cfg: Config) -> "Program":
        n, L, P, tied = cfg.network.sizes, cfg.network.n_layers, cfg.hardware.lanes, cfg.network.tied
        deferred = cfg.hardware.defer_input_updates

        def part(kind, name, layer, matrix, column, pre, length, rows, target=None) -> Part:
            return Part(kind, name, layer, matrix, column, pre, length, rows, beats(length, P), target, packing(kind, layer, L, length, P))

        K = PassKind
        mac, weights = state_write_latency(cfg), pipeline(cfg).weight_write_latency
        drive = Pass(K.INPUT_DRIVE, (Group((part(K.INPUT_DRIVE, "drive_W0", 1, "W0", False, 0, n[0], n[1]),)),), mac, "input_drive")
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
        relaxation = Pass(K.RELAXATION, tuple(layers), mac, "relaxation")
        relaxation_reversed = Pass(K.RELAXATION, tuple(reversed(layers)), mac, "relaxation_reversed")

        updates = []
        for l in range(L):
            if l > 0 or not deferred:
                updates.append(part(K.UPDATE, f"update_W{l}", l, f"W{l}", False, l, n[l], n[l + 1], "W"))
            if not tied and l >= 1:
                column = feedback_by_column(n, l)  # by column, the lanes take the factors e of layer l
                length, rows, pre = (n[l], n[l + 1], None) if column else (n[l + 1], n[l], l + 1)
                updates.append(part(K.UPDATE, f"update_B{l}", l, f"B{l}", column, pre, length, rows, "B"))
            updates.append(part(K.UPDATE, f"update_b{l + 1}", l, None, False, None, n[l + 1], 1, "b"))
        update = Pass(K.UPDATE, tuple(Group((p,)) for p in updates), weights, "update")

        input_update = None
        if deferred:
            input_update = Pass(K.INPUT_UPDATE, (Group((part(K.INPUT_UPDATE, "input_update_W0", 0, "W0", False, 0, n[0], n[1], "W"),)),), weights,
                                "input_update")
        homeostasis = None
        if cfg.learning.homeostasis == "local" and L >= 2:
            pairs = [part(K.HOMEOSTASIS, f"homeostasis_W{l}", l, f"W{l}", False, None, n[l], n[l + 1]) for l in range(1, L)]
            homeostasis = Pass(K.HOMEOSTASIS, tuple(Group((p,)) for p in pairs), weights, "homeostasis")
        program = cls(cfg, drive, relaxation, relaxation_reversed, update, input_update, homeostasis, {})
        program.gaps.update(pass_gaps(program))
        return program

    def passes(self) -> list[Pass]:
        """Every distinct pass, in the order they first run."""
        return [p for p in (self.input_drive, self.relaxation, self.update, self.input_update, self.homeostasis) if p]

    def parts(self) -> list[Part]:
        """Every part of every pass, in the order of :meth:`passes` (the sequencer's states)."""
        return [part for p in self.passes() for part in p.parts]

    @property
    def neuron_units(self) -> int:
        """Neuron units the core needs: one per row of its most packed beat."""
        return max(part.packed for part in self.parts())


@dataclass(frozen=True)
class Slot:
    """One pass of a sample's sequence, where it starts and what it is in words."""

    pass_: Pass
    start: int
    #: The phase (0-based; None in the free phase) and the step in it.
    phase: int | None = None
    step: int | None = None
    #: Idle cycles after the pass's last beat, before the next pass (or the sample's end).
    gap: int = 0

    @property
    def cycles(self) -> int:
        return self.pass_.beats + self.gap


@dataclass(frozen=True)
class Transition:
    """From one pass to the next (``after`` None: the sample's end); ``draw``: the next pass
    begins a random-sign nudged phase, whose sign is drawn from the LFSR the cycle before it."""

    before: str
    after: str | None
    draw: bool = False


class _Run(NamedTuple):
    """A pass as a sample runs it: its phase and step, and whether a random sign is drawn before it."""

    pass_: Pass
    phase: int | None
    step: int | None
    draw: bool


def _sequence(program: Program, train: bool, homeostasis: bool) -> list[_Run]:
    """The passes of a sample in order."""
    learn, passes = program.cfg.learning, []
    draws = learn.nudging == "random-sign"

    def add(p: Pass | None, phase=None, step=None, draw=False) -> None:
        if p is None:
            return
        if p.kind == PassKind.RELAXATION and passes and passes[-1].pass_ is program.relaxation:
            p = program.relaxation_reversed
        passes.append(_Run(p, phase, step, draw))

    add(program.input_drive)
    for t in range(learn.T1):
        add(program.relaxation, None, t)
    if train:
        for phase in range(phase_count(learn.nudging)):
            for t in range(learn.T2):
                add(program.relaxation, phase, t, draws and t == 0)
                add(program.update, phase, t)
                if program.input_update is None:  # literal input updates: W_0 x again, from the new W_0
                    add(program.input_drive, phase, t)
        add(program.input_update)
        if homeostasis:
            add(program.homeostasis)
    return passes


def sample_passes(cfg: Config, train: bool = True, homeostasis: bool = True) -> list[Slot]:
    """The passes of one sample in order with their start cycles (0 = the first beat) and gaps.

    ``homeostasis`` says whether this sample is followed by the homeostasis pass (the core runs it
    after every ``homeostasis_period``-th training sample).
    """
    program = Program.of(cfg)
    sequence = _sequence(program, train, homeostasis)
    slots, cycle = [], 0
    for run, after in zip(sequence, [*sequence[1:], None]):
        gap = program.gaps[Transition(run.pass_.name, after.pass_.name, after.draw) if after else Transition(run.pass_.name, None)]
        slots.append(Slot(run.pass_, cycle, run.phase, run.step, gap))
        cycle += run.pass_.beats + gap
    return slots


# -- the gaps between passes ----------------------------------------------------------------------

class _Words:
    """Every word a pass may read or write, numbered: parameters, states (one per layer: the three
    buffers are taken as one, which only ever asks for more gap), learning factors, W_0 x, F, and
    stand-ins for what beats may not share: a read port two kinds of beat address (a bias
    memory's, F's), the LFSR a sign is drawn from, the single-port weight stores."""

    def __init__(self, cfg: Config) -> None:
        n, L = cfg.network.sizes, cfg.network.n_layers
        sizes = {f"W{l}": n[l] * n[l + 1] for l in range(L)}
        sizes |= {f"B{l}": n[l] * n[l + 1] for l in range(1, L) if not cfg.network.tied}
        for l in range(1, L + 1):
            sizes |= {f"b{l}": n[l], f"s{l}": n[l], f"f{l}": n[l], f"bias_port{l}": 1}
        sizes |= {"w0x": n[1], "pending": n[1], "pending_port": 1, "lfsr": 1, "single_port": 1}
        self.offset, total = {}, 0
        for name, size in sizes.items():
            self.offset[name], total = total, total + size

    def __call__(self, name: str, index) -> np.ndarray:
        return self.offset[name] + np.asarray(index, dtype=np.int64)


def _pass_accesses(program: Program, p: Pass, words: _Words) -> tuple[np.ndarray, np.ndarray]:
    """The words pass ``p`` reads and writes: two arrays of (word, cycle from its first beat), a
    read in the cycle its address goes out, a write in the cycle its data does."""
    cfg, P = program.cfg, program.cfg.hardware.lanes
    deferred = cfg.hardware.defer_input_updates
    stages = pipeline(cfg)
    late, state_write, weight_write = mac_latency(P), state_write_latency(cfg), stages.weight_write_latency
    stochastic = cfg.fixed.stochastic_rounding
    reads, writes = [], []

    def add(into, name, index, cycles) -> None:
        index, cycles = np.broadcast_arrays(np.asarray(index), np.asarray(cycles))
        into.append(np.stack([words(name, index.ravel()), cycles.ravel()]))
        if stages.single_port_weights and name[0] == "W":
            into.append(np.stack([words("single_port", 0 * index.ravel()), cycles.ravel()]))

    cycle = 0
    for group in p.groups:
        offset = 0
        for part in group.parts:
            r = np.arange(part.rows)[:, None]  # rows down, the row's beats (and their P lanes) across
            j = np.arange(part.beats * P)[None, :]
            issue = cycle + group.row_starts()[r] + offset + j // P
            r_all, j_all, issue = np.broadcast_arrays(r, j, issue)
            synapse = j_all < part.length
            row_r, row_j, row_issue = r_all[synapse], j_all[synapse], issue[synapse]
            if part.kind in (PassKind.INPUT_DRIVE, PassKind.RELAXATION):
                if part.matrix:
                    add(reads, part.matrix, part.word_index(row_r, row_j), row_issue)
                    if part.pre:
                        add(reads, f"s{part.pre}", row_j, row_issue)
            elif part.kind == PassKind.HOMEOSTASIS:
                for name, index in ((part.matrix, part.word_index(row_r, row_j)), (f"B{part.layer}", part.word_index(row_r, row_j, column=True))):
                    add(reads, name, index, row_issue)
                    add(writes, name, index, row_issue + weight_write)
            else:  # an update of W_l, B_l or b_{l+1}, or the input-layer update
                l = part.layer
                target = part.matrix or f"b{l + 1}"
                index = row_j if part.target == "b" else part.word_index(row_r, row_j)
                add(reads, target, index, row_issue)
                add(writes, target, index, row_issue + weight_write)
                if part.kind == PassKind.INPUT_UPDATE:
                    add(reads, "pending", row_r, row_issue)
                    add(writes, "pending_port", 0 * row_r, row_issue)
                elif part.target == "b":
                    add(reads, f"f{l + 1}", row_j, row_issue)
                    add(writes, f"bias_port{l + 1}", 0 * row_j, row_issue)
                elif part.target == "B" and part.column:  # B_l[j, r]: the factor e_j, the state s_{l+1, r}
                    add(reads, f"f{l}", row_j, row_issue)
                    add(reads, f"s{l + 1}", row_r, row_issue)
                elif part.target == "B":
                    add(reads, f"f{l}", row_r, row_issue)
                    add(reads, f"s{l + 1}", row_j, row_issue)
                else:
                    add(reads, f"f{l + 1}", row_r, row_issue)
                    if l:
                        add(reads, f"s{l}", row_j, row_issue)
                if stochastic:  # the lanes draw rounding bits by the time the word is written
                    add(writes, "lfsr", 0 * row_r, row_issue + weight_write)
            offset += part.beats
        if p.kind in (PassKind.INPUT_DRIVE, PassKind.RELAXATION):
            # a row's neuron: its old state, bias, W_0 x and F read late (to meet the drive), its
            # results written from the neuron unit's last stage
            rows = np.arange(group.rows)
            done = cycle + group.row_ends()
            l = group.parts[-1].layer
            if p.kind == PassKind.INPUT_DRIVE:
                add(writes, "w0x", rows, done + state_write)
            else:
                read_late, written = [f"s{l}", f"b{l}"], [f"s{l}", f"f{l}"]
                if l == 1:  # layer 1 adds the cached W_0 x; deferred, it tracks W_0 x and F
                    read_late.append("w0x")
                    if deferred:
                        read_late.append("pending")
                        written += ["w0x", "pending"]
                        add(writes, "pending_port", 0 * rows, done + late)
                for name in read_late:
                    add(reads, name, rows, done + late)
                add(writes, f"bias_port{l}", 0 * rows, done + late)
                for name in written:
                    add(writes, name, rows, done + state_write)
        cycle += group.beats
    empty = np.zeros((2, 0), dtype=np.int64)
    return tuple(np.concatenate(accesses or [empty], axis=1) for accesses in (reads, writes))


def _latest_before(earlier: np.ndarray, later: np.ndarray) -> int | None:
    """``max(t_earlier - t_later) + 1`` over the words both touch (None if they share none): the
    least start for the later accesses' pass (their cycles are from its first beat) after the
    earlier ones (absolute cycles)."""
    if not earlier.shape[1] or not later.shape[1]:
        return None
    order = np.argsort(earlier[0], kind="stable")
    words, first = np.unique(earlier[0][order], return_index=True)
    latest = np.maximum.reduceat(earlier[1][order], first)
    at = np.minimum(np.searchsorted(words, later[0]), len(words) - 1)
    shared = words[at] == later[0]
    return int(np.max(latest[at[shared]] - later[1][shared])) + 1 if shared.any() else None


def pass_gaps(program: Program) -> dict[Transition, int]:
    """The gap of every transition a sample may take: the largest any occurrence needs.

    It walks the samples' passes keeping the accesses still in flight: those of the last cycles,
    since an access can hold back the next pass only if it comes after that pass's earliest start
    (reads go out no earlier, and writes come no later, than a few pipeline latencies after
    their beat)."""
    words = _Words(program.cfg)
    accesses: dict[str, tuple] = {}
    gaps: dict[Transition, int] = {}
    lfsr = words("lfsr", 0)
    for train, homeostasis in ((False, False), (True, False), (True, True)):
        sequence = _sequence(program, train, homeostasis and program.homeostasis is not None)
        in_flight = [np.zeros((2, 0), dtype=np.int64)] * 2  # reads, writes: (word, absolute cycle)
        end = 0  # the cycle after the last beat so far
        for i, (p, _, _, draw) in enumerate(sequence):
            if p.name not in accesses:  # by cycle, so that the first cycles' accesses are a prefix
                accesses[p.name] = tuple(a[:, np.argsort(a[1], kind="stable")] for a in _pass_accesses(program, p, words))
            reads, writes = accesses[p.name]
            flying_reads, flying_writes = in_flight
            # only accesses up to this cycle of the pass can be held back by those in flight
            horizon = max((int(a[1].max()) for a in in_flight if a.shape[1]), default=end - 2) - end + 1
            reads, writes = (a[:, :np.searchsorted(a[1], horizon, side="right")] for a in (reads, writes))
            # a read sees a write of an earlier cycle; a write follows the reads and writes before it
            needs = [end,
                     _latest_before(flying_writes, reads),
                     _latest_before(np.concatenate([flying_reads, flying_writes], axis=1), writes)]
            if draw:  # the sign is read from the LFSR the cycle before the first beat
                needs.append(_latest_before(flying_writes, np.array([[lfsr], [-1]])))
            start = max(need for need in needs if need is not None)
            if i:
                key = Transition(sequence[i - 1].pass_.name, p.name, draw)
                gaps[key] = max(gaps.get(key, 0), start - end)
            end = start + p.beats
            # keep what may still hold back a pass starting at ``end`` (or drawing its sign before it)
            tails = (a[:, np.searchsorted(a[1], p.beats - 2):] for a in accesses[p.name])
            in_flight = [np.concatenate([old[:, old[1] >= end - 2], tail + [[0], [start]]], axis=1) for old, tail in zip(in_flight, tails)]
        last_write = int(in_flight[1][1].max()) if in_flight[1].shape[1] else end - 1
        key = Transition(sequence[-1].pass_.name, None)
        gaps[key] = max(gaps.get(key, 0), max(last_write + 1, end) - end)
    return gaps


def single_port_conflicts(program: Program, segments: dict[str, int]) -> list[tuple[str, str]]:
    """Pairs ``(writer, reader)`` of parts of one pass whose accesses would meet in a half of a
    single-port weight store (:class:`Pipeline.single_port_weights`) holding ``segments`` (words
    per bank of each matrix, in the order the store holds them): ``writer``'s new words still
    land while ``reader`` reads words of the same address parity.

    The matrices of a bank share one store, so consecutive W parts of a pass walk its addresses
    on; the parity split holds across them when the beats between (a bias part) are even in
    number or outlast the write latency, and fails when they are odd and fewer."""
    latency = pipeline(program.cfg).weight_write_latency
    offsets = dict(zip(segments, np.cumsum([0, *segments.values()])))
    conflicts = set()
    for p in program.passes():
        if p.kind not in (PassKind.UPDATE, PassKind.HOMEOSTASIS):
            continue
        reads, writes, cycle = [], [], 0  # (cycle, address parity, part name)
        for group in p.groups:
            for part in group.parts:  # every group of these passes holds one part
                if part.matrix in offsets:
                    walk = np.arange(part.rows * part.beats)
                    parity = (offsets[part.matrix] + walk) % 2
                    reads += zip((cycle + walk).tolist(), parity.tolist(), [part.name] * len(walk))
                    writes += zip((cycle + walk + latency).tolist(), parity.tolist(), [part.name] * len(walk))
            cycle += group.beats
        written = {(c, parity): name for c, parity, name in writes}
        conflicts |= {(written[c, parity], name) for c, parity, name in reads if (c, parity) in written}
    return sorted(conflicts)


def describe(slot: Slot, cfg: Config) -> str:
    """A slot in words: ``nudged phase 2, step 3 of 10, weight update``."""
    learn, kind = cfg.learning, slot.pass_.kind
    if slot.phase is not None:
        return f"nudged phase {slot.phase + 1}, step {slot.step + 1} of {learn.T2}, {kind.value}"
    if kind == PassKind.RELAXATION:
        return f"free phase, step {slot.step + 1} of {learn.T1}"
    return f"{kind.value} pass" if kind == PassKind.HOMEOSTASIS else kind.value
