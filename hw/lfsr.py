"""The LFSR unit: P random words per clock for stochastic rounding, as :mod:`eqprop.lfsr` defines them.

Draw k of the sequence is the Galois LFSR state after ``(k + 1) * width`` clocks from the seed
(:meth:`eqprop.lfsr.Lfsr.draws`). The unit holds the state after ``drawn * width`` clocks and
shows the next P draws on ``words`` (lane i gets draw ``drawn + i``); ``advance`` = c moves
``drawn`` on by c (0 to P), so a beat whose last lanes idle consumes only the draws it used. Each
jump is a fixed XOR network: the transition matrix raised to the number of clocks.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from eqprop.lfsr import Lfsr


def _jump(lfsr: Lfsr, clocks: int, state: Signal):
    """The XOR network that advances ``state`` by ``clocks`` clocks."""
    columns = [int(c) for c in lfsr.power_columns(clocks)]
    rows = []
    for row in range(lfsr.width):
        terms = [state[col] for col in range(lfsr.width) if (columns[col] >> row) & 1]
        rows.append(reduce(operator.xor, terms, Const(0, 1)))
    return Cat(*rows)


class LfsrUnit(wiring.Component):
    """P consecutive LFSR draws per clock; ``advance`` consumes 0..P of them."""

    def __init__(self, lfsr: Lfsr, lanes: int) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.lfsr, self.lanes = lfsr, lanes
        super().__init__({"advance": In(range(lanes + 1)), "words": Out(data.ArrayLayout(lfsr.width, lanes))})

    def elaborate(self, platform) -> Module:
        m = Module()
        width = self.lfsr.width
        state = Signal(width, init=self.lfsr.seed)
        for lane in range(self.lanes):
            m.d.comb += self.words[lane].eq(_jump(self.lfsr, (lane + 1) * width, state))
        with m.Switch(self.advance):
            for count in range(1, self.lanes + 1):
                with m.Case(count):
                    m.d.sync += state.eq(_jump(self.lfsr, count * width, state))
        return m
