"""The sequencer: walks a sample through the pass program, one beat per clock.

Between samples it waits while the core takes the inputs (``loading``, until ``loaded``), then for
the label; a sample then runs the passes :func:`eqprop.program.sample_passes` lists, each part's
rows beat by beat. A pass's first beat follows the last beat of the one before after the gap the
program gives that transition (:attr:`eqprop.program.Program.gaps`; mostly none: passes overlap
in the pipeline), and a relaxation step after a relaxation step runs its layers in the opposite
order (``reverse``). The sample ends when its last write has landed, holding the prediction
(``done``) until ``ack``. The FSM has one state per part of :class:`eqprop.program.Program`,
named after it, and one gap state per pass kind: the program the cycle count, the write trace and
``locate`` are derived from, so ``cycles`` (counted from the label to the prediction) equals
:func:`eqprop.schedule.cycle_count`.

Every cycle with ``issue`` set is a beat; ``beat`` says which (the part, the row and the segment
of it) and what the lanes need to know of it (``first``, ``last``, ``ends_row``, ``mask``). The
phase outputs (``step``, ``nudged``, ``nudge_phase``, ``negative``) and the state buffers a step
reads and writes are those of the beat issued: they change in the cycle before a pass's first
beat, so the core carries them down its pipeline beside each beat (:class:`eqprop.hw.core.BeatPhase`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from eqprop.config import Config, phase_count
from eqprop.program import Pass, PassKind, Program, Transition


def label_layout(cfg: Config) -> data.StructLayout:
    """A sample's label and whether to learn it (else: inference only)."""
    return data.StructLayout({"index": range(max(2, cfg.network.sizes[-1])), "train": 1})


def beat_layout(cfg: Config) -> data.StructLayout:
    """What a beat is, in the cycle its addresses go out."""
    n, P, parts = cfg.network.sizes, cfg.hardware.lanes, Program.of(cfg).parts()
    return data.StructLayout({
        "part": range(max(2, len(parts))),  # the index in Program.parts()
        "row": range(max(n) + 1),
        "row_mod": range(P),  # row % P: the bank rotation
        "row_div": range(max(n) // P + 2),  # row // P: the address in a striped bank
        "segment": range(max(p.beats for p in parts) + 1),  # the beat within the part's row
        "first": 1,  # the first beat of a row (of its group's first part)
        "last": 1,  # the part's last beat of the row
        "ends_row": 1,  # the part is its group's last: after its last beat the row is complete
        "mask": P,  # the lanes with a synapse (or bias) in this beat
        # with packed beats: which of the beat's rows exist (eqprop.program.Part.slot_rows), bit i
        # for row + i * length; 1 unpacked
        **({"packed_rows": units} if (units := Program.of(cfg).neuron_units) > 1 else {}),
    })


class Sequencer(wiring.Component):
    """The pass program of ``cfg``, walked beat by beat for each sample (see the module's docstring)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.program = cfg, Program.of(cfg)
        learn = cfg.learning
        super().__init__({
            "loading": Out(1),  # between samples: the core may take inputs and parameter requests
            "loaded": In(1),  # the sample's last input is in
            "label": In(stream.Signature(label_layout(cfg))),
            "done": Out(1),  # the sample is finished: the prediction is valid
            "ack": In(1),  # the prediction is taken
            "sign_bit": In(1),  # random-sign nudging: a random bit, taken at the start of a nudged phase
            "draw": Out(1),  # ... and that cycle it was taken in
            "issue": Out(1),
            "beat": Out(beat_layout(cfg)),
            "label_index": Out(range(max(2, cfg.network.sizes[-1]))),
            "step": Out(range(max(learn.T1, learn.T2) + 1)),
            "nudged": Out(1),  # in the nudged phases (else the free phase)
            "nudge_phase": Out(range(phase_count(learn.nudging) + 1)),
            "negative": Out(1),  # this phase nudges with -beta
            "read_buf": Out(2),  # the state buffer a step reads ...
            "write_buf": Out(2, init=1),  # ... and the one it writes
            "cycles": Out(32),
            "busy": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        program, P = self.program, self.cfg.hardware.lanes
        parts, beat = program.parts(), self.beat
        # The beat's fields are signals of their own, shown on ``beat``: none of them is computed from
        # ``beat`` itself, which in Verilog would be a vector that depends on its own bits.
        row, row_mod, row_div, segment, part_index = (
            Signal.like(getattr(beat, name), name=name) for name in ("row", "row_mod", "row_div", "segment", "part"))
        m.d.comb += [beat.row.eq(row), beat.row_mod.eq(row_mod), beat.row_div.eq(row_div), beat.segment.eq(segment), beat.part.eq(part_index)]
        # the parts whose rows interleave with part i's (a relaxation layer's forward and backward rows)
        group_of = {parts.index(part): [parts.index(p) for p in group.parts]
                    for p in program.passes() for group in p.groups for part in group.parts}
        star_buf = Signal(2, init=2)  # from the end of the free phase: s*, where every nudged phase starts
        train = Signal()
        reverse = Signal()  # this relaxation step runs its layers in the opposite order

        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        self._describe_beat(m, part_index, row, segment, group_of)

        # a packed part's row-beat within its block of rows (eqprop.program.Part.slot_rows)
        packed = program.neuron_units > 1
        slot = Signal(range(max(part.length for part in parts if part.packed > 1) + 1)) if packed else None

        def restart_rows():
            m.d.sync += [segment.eq(0), row.eq(0), row_mod.eq(0), row_div.eq(0)]
            if packed:
                m.d.sync += slot.eq(0)

        def next_row(step: int = 1):
            """``step`` rows on (at most P)."""
            m.d.sync += [segment.eq(0), row.eq(row + step)]
            with m.If(row_mod == P - 1 if step == 1 else row_mod >= P - step):  # row_mod < P: one row on wraps from the last bank
                m.d.sync += [row_mod.eq(0 if step == 1 else row_mod + step - P), row_div.eq(row_div + 1)]
            with m.Else():
                m.d.sync += row_mod.eq(row_mod + step)

        branches = self._pass_transitions(m, star_buf, train, reverse)
        gap_width = max(2, max(program.gaps.values(), default=0) + 1, max(p.drain for p in program.passes()) + 1)
        wait = Signal(range(gap_width))

        def end_pass(kind: PassKind) -> None:
            """The pass's last beat: the next pass right away, or after its gap."""
            def wait_for_gap():
                m.d.sync += wait.eq(0)
                m.next = f"gap_after_{kind.name.lower()}"

            for i, (condition, gap, action) in enumerate(branches[kind]):
                with (m.If if i == 0 else m.Elif)(condition):
                    if isinstance(gap, int):
                        action() if gap == 0 else wait_for_gap()
                        continue
                    with m.If(gap == 0):
                        action()
                    with m.Else():
                        wait_for_gap()

        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.loading.eq(1)
                with m.If(self.loaded):
                    m.next = "LABEL"
            with m.State("LABEL"):
                m.d.comb += self.label.ready.eq(1)
                with m.If(self.label.valid):
                    m.d.sync += [
                        self.label_index.eq(self.label.payload.index), train.eq(self.label.payload.train), self.cycles.eq(0),
                        self.step.eq(0), self.nudged.eq(0), self.nudge_phase.eq(0), self.negative.eq(0),
                        self.read_buf.eq(0), self.write_buf.eq(1), star_buf.eq(2), reverse.eq(0),
                    ]
                    restart_rows()
                    m.next = parts[0].name
            for pass_ in program.passes():
                groups = [[parts.index(p) for p in group.parts] for group in pass_.groups]
                for g, group in enumerate(groups):
                    for index in group:
                        part = parts[index]
                        with m.State(part.name):
                            m.d.comb += [self.issue.eq(1), part_index.eq(index), self.busy.eq(1)]
                            if part.packed > 1:  # one beat per slot: the next slot's rows, the block's next, or done
                                block_ends = slot == part.length - 1
                                with m.If(Mux(block_ends, row + (part.packed - 1) * part.length + 1, row + 1) < part.rows):
                                    with m.If(block_ends):
                                        next_row((part.packed - 1) * part.length + 1)
                                        m.d.sync += slot.eq(0)
                                    with m.Else():
                                        next_row()
                                        m.d.sync += slot.eq(slot + 1)
                                with m.Else():
                                    restart_rows()
                                    self._next_group(m, groups, g, pass_.kind, reverse, end_pass)
                                continue
                            with m.If(segment != part.beats - 1):
                                m.d.sync += segment.eq(segment + 1)
                            with m.Else():
                                if index != group[-1]:  # the row goes on in the group's next part
                                    m.d.sync += segment.eq(0)
                                    m.next = parts[index + 1].name
                                else:
                                    with m.If(row != part.rows - 1):
                                        next_row()
                                        m.next = parts[group[0]].name
                                    with m.Else():
                                        restart_rows()
                                        self._next_group(m, groups, g, pass_.kind, reverse, end_pass)
                with m.State(f"gap_after_{pass_.kind.name.lower()}"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += wait.eq(wait + 1)
                    for i, (condition, gap, action) in enumerate(branches[pass_.kind]):
                        with (m.If if i == 0 else m.Elif)(condition):
                            with m.If(wait == gap - 1):
                                action()
            with m.State("OUTPUT"):
                m.d.comb += self.done.eq(1)
                with m.If(self.ack):
                    m.next = "LOAD"
        return m

    def _next_group(self, m: Module, groups: list, g: int, kind: PassKind, reverse: Signal, end_pass) -> None:
        """After group ``g``'s last row: the next group, or (after the last) the pass's end; a
        reversed relaxation step runs its groups from the last to the first."""
        parts = self.program.parts()

        def go(after: int) -> None:
            if 0 <= after < len(groups):
                m.next = parts[groups[after][0]].name
            else:
                end_pass(kind)

        if kind != PassKind.RELAXATION or len(groups) == 1:
            go(g + 1)
            return
        with m.If(reverse):
            go(g - 1)
        with m.Else():
            go(g + 1)

    def _describe_beat(self, m: Module, part_index: Signal, row: Signal, segment: Signal, group_of: dict) -> None:
        """What the lanes need to know of the beat issued, by its part (one parallel multiplexer)."""
        beat, P = self.beat, self.cfg.hardware.lanes
        first, last, ends_row, mask = Signal(), Signal(), Signal(), Signal(P)
        m.d.comb += [beat.first.eq(first), beat.last.eq(last), beat.ends_row.eq(ends_row), beat.mask.eq(mask)]
        packed = self.program.neuron_units > 1
        if packed:
            packed_rows = Signal.like(beat.packed_rows, name="packed_rows")
            m.d.comb += beat.packed_rows.eq(packed_rows)
        with m.If(self.issue), m.Switch(part_index):
            for index, part in enumerate(self.program.parts()):
                with m.Case(index):
                    group = group_of[index]
                    m.d.comb += [
                        first.eq((segment == 0) if index == group[0] else 0),
                        last.eq(segment == part.beats - 1),
                        ends_row.eq(index == group[-1]),
                    ]
                    if part.packed > 1:  # lanes [i * length, (i + 1) * length) hold row + i * length
                        rows = [row + i * part.length < part.rows for i in range(part.packed)]
                        m.d.comb += [packed_rows.eq(Cat(*rows)),
                                     mask.eq(Cat(*[rows[t // part.length] if t < part.packed * part.length else 0 for t in range(P)]))]
                    else:
                        m.d.comb += mask.eq(Cat(*[(segment * P + t) < part.length for t in range(P)]) if part.length else 0)
                        if packed:
                            m.d.comb += packed_rows.eq(1)

    def _pass_transitions(self, m: Module, star_buf: Signal, train: Signal, reverse: Signal) -> dict:
        """What may follow each pass, by pass kind: ``(condition, gap, action)`` in priority order. The
        action, in the cycle before the next pass's first beat, starts that pass, step or phase (with
        the state buffers it reads and writes), the homeostasis pass or the prediction; the gap is
        the program's for that transition (:attr:`eqprop.program.Program.gaps`)."""
        program, learn, K = self.program, self.cfg.learning, PassKind
        since = Signal(range(learn.homeostasis_period + 1))  # training samples since the last homeostasis pass
        draws = learn.nudging == "random-sign"
        of_kind = {p.kind: p for p in program.passes()}  # the relaxation: its forward order

        def gap(before: PassKind, after: str | None, draw: bool = False):
            """The gap from a pass of kind ``before`` (a relaxation in either order, as ``reverse``
            says) to the pass named ``after`` (a relaxation after a relaxation runs the other order)."""
            def of(p: Pass) -> int:
                name = "relaxation_reversed" if after == "relaxation" and p is program.relaxation else after
                return program.gaps.get(Transition(p.name, name, draw), p.drain)
            if before != K.RELAXATION:
                return of(of_kind[before])
            return Mux(reverse, of(program.relaxation_reversed), of(program.relaxation))

        def start(kind: PassKind, before: PassKind) -> None:
            """The next pass's first beat; a relaxation after a relaxation runs the other order."""
            if kind == K.RELAXATION and before == K.RELAXATION:
                with m.If(reverse):
                    m.d.sync += reverse.eq(0)
                    m.next = program.relaxation.parts[0].name
                with m.Else():
                    m.d.sync += reverse.eq(1)
                    m.next = program.relaxation_reversed.parts[0].name
                return
            m.d.sync += reverse.eq(0)
            m.next = of_kind[kind].parts[0].name

        def after_buffer(buffer):
            return Mux(buffer == 2, 0, buffer + 1)

        def start_phase(first: bool, before: PassKind):
            """A nudged phase from s*. Its sign: symmetric alternates, random-sign draws a random bit."""
            if draws:
                m.d.comb += self.draw.eq(1)
                m.d.sync += self.negative.eq(self.sign_bit)
            else:
                m.d.sync += self.negative.eq(0 if first else 1)
            if first:  # s* is in write_buf: keep it for every nudged phase
                m.d.sync += [
                    self.nudged.eq(1), self.step.eq(0), star_buf.eq(self.write_buf), self.read_buf.eq(self.write_buf),
                    self.write_buf.eq(after_buffer(self.write_buf)),
                ]
            else:
                m.d.sync += [
                    self.nudge_phase.eq(self.nudge_phase + 1), self.step.eq(0),
                    self.read_buf.eq(star_buf), self.write_buf.eq(after_buffer(star_buf)),
                ]
            start(K.RELAXATION, before)

        def next_step(before: PassKind):
            # the buffer that is neither s* nor the one just written
            m.d.sync += [self.step.eq(self.step + 1), self.read_buf.eq(self.write_buf), self.write_buf.eq((3 - star_buf - self.write_buf)[:2])]
            start(K.RELAXATION, before)

        def to_output():
            m.d.sync += reverse.eq(0)
            m.next = "OUTPUT"

        def homeostasis(due: bool, before: PassKind):
            if due:
                m.d.sync += since.eq(0)
                start(K.HOMEOSTASIS, before)
            else:
                m.d.sync += since.eq(since + 1)
                to_output()

        def finish_sample(before: PassKind) -> list:
            if program.homeostasis is None:
                return [(1, gap(before, None), to_output)]
            return [(since == learn.homeostasis_period - 1, gap(before, "homeostasis"), lambda: homeostasis(True, before)),
                    (1, gap(before, None), lambda: homeostasis(False, before))]

        def after_nudged_step(before: PassKind) -> list:
            if program.input_update is not None:
                last = [(1, gap(before, "input_update"), lambda: start(K.INPUT_UPDATE, before))]
            else:
                last = finish_sample(before)
            return [
                (self.step != learn.T2 - 1, gap(before, "relaxation"), lambda: next_step(before)),
                (self.nudge_phase != phase_count(learn.nudging) - 1, gap(before, "relaxation", draws), lambda: start_phase(False, before)),
                *last,
            ]

        R, U, D = K.RELAXATION, K.UPDATE, K.INPUT_DRIVE
        branches = {
            R: [
                (self.nudged, gap(R, "update"), lambda: start(U, R)),
                (self.step != learn.T1 - 1, gap(R, "relaxation"), lambda: next_step(R)),
                (train, gap(R, "relaxation", draws), lambda: start_phase(True, R)),
                (1, gap(R, None), to_output),
            ],
            # with literal input updates W_0 x is driven again from the new W_0 after every update
            U: [(1, gap(U, "input_drive"), lambda: start(D, U))] if program.input_update is None else after_nudged_step(U),
            D: [
                *[(self.nudged & condition, g, action) for condition, g, action in after_nudged_step(D)],
                (1, gap(D, "relaxation"), lambda: start(R, D)),
            ],
        }
        if program.input_update is not None:
            branches[K.INPUT_UPDATE] = finish_sample(K.INPUT_UPDATE)
        if program.homeostasis is not None:
            branches[K.HOMEOSTASIS] = [(1, gap(K.HOMEOSTASIS, None), to_output)]
        return branches
