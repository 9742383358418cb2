"""The SoC's UART in the Amaranth simulator: loopback at several divisors, framing errors, bad divisors."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from eqprop.boards.uart import UartRx, UartTx


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_bytes_sent_back_to_back_arrive_intact(divisor):
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = np.random.default_rng(divisor).integers(0, 256, 40).tolist()
    got = []

    async def send(ctx):
        for byte in sent:
            ctx.set(tx.data.valid, 1)
            ctx.set(tx.data.payload, byte)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def receive(ctx):
        ctx.set(rx.data.ready, 1)
        while len(got) < len(sent):
            (payload,) = await ctx.tick().sample(rx.data.payload).until(rx.data.valid)
            got.append(payload)
            assert not ctx.get(rx.framing_error)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(send)
    sim.add_testbench(receive)
    sim.run_until(1e-8 * divisor * 10 * (len(sent) + 5))
    assert got == sent


def test_a_low_stop_bit_is_a_framing_error_and_the_next_byte_still_arrives():
    divisor = 8
    rx = UartRx(divisor)
    got, errors = [], []

    async def line(ctx):
        ctx.set(rx.data.ready, 1)
        for byte, stop in ((0x3C, 0), (0xA5, 1)):
            for level in [0] + [(byte >> i) & 1 for i in range(8)] + [stop] + [1] * 3:
                ctx.set(rx.rx, level)
                for _ in range(divisor):
                    await ctx.tick()
                    if ctx.get(rx.data.valid):
                        got.append(ctx.get(rx.data.payload))
                    if ctx.get(rx.framing_error):
                        errors.append(byte)

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.run()
    assert errors == [0x3C] and got == [0xA5]


def test_divisors_below_four_are_refused():
    with pytest.raises(ValueError, match="at least 4 clock cycles per bit"):
        UartTx(3)
