"""The MAC lanes: P synapses of a row per beat, summed into the row's drive.

Stages (their counts are :mod:`eqprop.program`'s constants):

* ``o_`` operands: the beat's stored weights rotated from bank to lane order, rounded to the
  multipliers' ``weight`` format, and the presynaptic values, both zeroed on idle lanes;
* ``m_`` products: one multiplier per lane, registered (a DSP block's output register);
* ``t_`` the adder tree over the products aligned to the accumulator, a register every
  :data:`~eqprop.program.TREE_LEVELS_PER_STAGE` levels;
* ``a_`` the accumulator: the row's first beat starts it, its last beat raises ``done``.

A packed beat (:func:`eqprop.program.packing`) holds several rows of ``length`` synapses each,
in lanes ``[i * length, (i + 1) * length)``: beside the full tree, each packing's segments are
summed on their own (as many registers deep), and ``drives[i]`` holds row i's drive.

Presynaptic values come in one fixed-point format (``pre_frac`` fraction bits): the core aligns the
input x to it, which changes no product's rounding (the dropped bits are the same).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from eqprop.fixed import Format
from eqprop.program import ACCUMULATE_STAGES, OPERAND_STAGES, PRODUCT_STAGES, TREE_LEVELS_PER_STAGE, mac_latency

from .arith import requantize, shape_of, shift_round
from .lanes import delayed, rotate, staged_sum


class MacLanes(wiring.Component):
    """``drive = sum over the row's beats of sum_t weight_t * pre_t``, at accumulator precision.

    ``weights`` are bank words (lane t's word is in bank ``(t + rotate) mod P``); ``pres`` are in
    lane order already. ``drive`` holds a finished row while ``done`` is high, :func:`latency`
    cycles after its last beat's operands came in.
    """

    def __init__(self, lanes: int, store: Format, weight: Format, pre_width: int, pre_frac: int, accumulator: Format,
                 packings: tuple[tuple[int, int], ...] = ()) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        for length, rows in packings:
            if length < 1 or rows < 2 or length * rows > lanes:
                raise ValueError(f"{rows} packed rows of {length} synapses do not fit {lanes} lanes")
        self.lanes, self.store, self.weight, self.pre_frac, self.accumulator = lanes, store, weight, pre_frac, accumulator
        #: ``(length, rows)`` of each kind of packed beat; the ``packing`` input is 0 (none) or 1 + its index.
        self.packings = tuple(packings)
        self.units = max([1, *(rows for _, rows in packings)])
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "rotate": In(range(max(2, lanes))),
            "weights": In(data.ArrayLayout(shape_of(store), lanes)),
            "pres": In(data.ArrayLayout(signed(pre_width), lanes)),
            "mask": In(lanes),
            "packing": In(range(len(self.packings) + 1)),
            "drive": Out(shape_of(accumulator)),
            # the rows of a packed beat (drives[0] is drive)
            "drives": Out(data.ArrayLayout(shape_of(accumulator), self.units)),
            "done": Out(1),
        })

    @staticmethod
    def latency(lanes: int) -> int:
        return mac_latency(lanes)

    def elaborate(self, platform) -> Module:
        m = Module()
        P, acc = self.lanes, self.accumulator
        assert OPERAND_STAGES == PRODUCT_STAGES == ACCUMULATE_STAGES == 1

        # o_: rotated, rounded weights and masked presynaptic values
        lane_words = rotate(m, [self.weights[b] for b in range(P)], self.rotate, "mac")
        o_weights = [Signal(shape_of(self.weight), name=f"o_weight{t}") for t in range(P)]
        o_pres = [Signal.like(self.pres[t], name=f"o_pre{t}") for t in range(P)]
        for t in range(P):
            m.d.sync += [
                # idle lanes may read past a bank's end (a column segment below the last row): zero both
                o_weights[t].eq(Mux(self.mask[t], requantize(lane_words[t], self.store.n, self.weight), 0)),
                o_pres[t].eq(Mux(self.mask[t], self.pres[t], 0)),
            ]
        # m_: the products, registered
        m_products = [Signal(signed(len(o_weights[t]) + len(o_pres[t])), name=f"m_product{t}") for t in range(P)]
        for t in range(P):
            m.d.sync += m_products[t].eq(o_weights[t] * o_pres[t])
        # t_: aligned to the accumulator, summed
        shift = self.weight.n + self.pre_frac - acc.n
        aligned = [shift_round(product, shift, acc.rounding) for product in m_products]
        total, tree = staged_sum(m, aligned, shape_of(acc), TREE_LEVELS_PER_STAGE, "t")
        # the beat's flags travel beside its data
        valid, first, last, packing = (delayed(m, flag, OPERAND_STAGES + PRODUCT_STAGES + tree, f"mac_{name}") for flag, name in (
            (self.valid, "valid"), (self.first, "first"), (self.last, "last"), (self.packing, "packing")))
        # a_: accumulate (a packed beat's rows each end in it)
        a_sum = Signal(shape_of(acc))
        with m.If(valid):
            m.d.sync += a_sum.eq(Mux(first, 0, a_sum) + total)
        m.d.sync += self.done.eq(valid & last)
        drive = a_sum
        if self.packings:
            a_rows, a_packed = self._packed_sums(m, aligned, tree, packing), Signal()
            m.d.sync += a_packed.eq(packing != 0)
            drive = Mux(a_packed, a_rows[0], a_sum)
            m.d.comb += [self.drives[i].eq(a_rows[i]) for i in range(1, self.units)]
        m.d.comb += [self.drive.eq(drive), self.drives[0].eq(drive)]
        assert OPERAND_STAGES + PRODUCT_STAGES + tree + ACCUMULATE_STAGES == self.latency(P)
        return m

    def _packed_sums(self, m: Module, aligned: list, tree: int, packing) -> list[Signal]:
        """The a_ registers of a packed beat's rows: each packing's segment sums, as deep as the full tree."""
        acc, sums = self.accumulator, []
        for j, (length, rows) in enumerate(self.packings):
            row_sums = []
            for i in range(rows):
                total, stages = staged_sum(m, aligned[i * length:(i + 1) * length], shape_of(acc), TREE_LEVELS_PER_STAGE, f"p{j}_row{i}")
                row_sums.append(delayed(m, total, tree - stages, f"p{j}_row{i}"))
            sums.append(row_sums)
        a_rows = [Signal(shape_of(acc), name=f"a_row{i}") for i in range(self.units)]
        for i, register in enumerate(a_rows):
            options = {j + 1: row_sums[i] for j, row_sums in enumerate(sums) if i < len(row_sums)}
            value = 0
            for key, option in options.items():
                value = Mux(packing == key, option, value)
            m.d.sync += register.eq(value)
        return a_rows
