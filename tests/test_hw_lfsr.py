"""The LFSR unit against :meth:`eqprop.lfsr.Lfsr.draws`, in the Amaranth simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from eqprop.hw.lfsr import LfsrUnit
from eqprop.lfsr import MAXIMAL_TAPS, Lfsr


@pytest.mark.parametrize("width, lanes", [(16, 1), (16, 3), (8, 4)])
def test_words_are_the_golden_draws_and_advance_consumes_them(width, lanes):
    lfsr = Lfsr(width, MAXIMAL_TAPS[width], seed=0x2D)
    dut = LfsrUnit(lfsr, lanes)
    advances = np.random.default_rng(width + lanes).integers(0, lanes + 1, 60)

    async def bench(ctx):
        drawn = 0
        for count in advances:
            words = [ctx.get(dut.words[i]) for i in range(lanes)]
            assert words == lfsr.draws(drawn, lanes).tolist(), drawn
            ctx.set(dut.advance, int(count))
            await ctx.tick()
            drawn += int(count)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
