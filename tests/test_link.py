"""The SoC's frame receiver against the host's framing, in the Amaranth simulator."""

import numpy as np
from amaranth.sim import Simulator

from eqprop.boards.link import FrameReceiver, FrameSender
from eqprop.boards.protocol import Error, Frame, Receiver


def receive(stream: bytes, timeout: int = 50, gaps: dict | None = None) -> list[tuple]:
    """The requests the receiver hands out for ``stream`` (``gaps``: idle cycles before byte i)."""
    dut = FrameReceiver(timeout)
    read = dut.read_port()
    requests = []

    async def feed(ctx):
        for i, byte in enumerate(stream):
            for _ in range((gaps or {}).get(i, 0)):
                await ctx.tick()
            ctx.set(dut.bytes.valid, 1)
            ctx.set(dut.bytes.payload, byte)
            await ctx.tick().until(dut.bytes.ready)
            ctx.set(dut.bytes.valid, 0)
        for _ in range(timeout + 20):
            await ctx.tick()

    async def engine(ctx):
        while True:
            await ctx.tick().until(dut.request.valid)
            request = ctx.get(dut.request.payload)
            payload = []
            if request.error == 0:
                for address in range(request.length):
                    ctx.set(read.addr, address)
                    await ctx.tick()
                    payload.append(ctx.get(read.data))
            requests.append((request.sequence, request.command, bytes(payload), request.error))
            ctx.set(dut.request.ready, 1)
            await ctx.tick()
            ctx.set(dut.request.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(engine, background=True)
    sim.run()
    return requests


def test_frames_between_garbage_arrive_and_broken_ones_are_reported():
    rng = np.random.default_rng(1)
    good = [Frame(i, 1 + i % 6, rng.integers(0, 256, n).astype(np.uint8).tobytes()) for i, n in enumerate((0, 1, 17, 64))]
    flipped = bytearray(Frame(9, 4, b"abc").encode())
    flipped[-4] ^= 0x10
    bad_length = bytes([0xA5, 0x04, 0x01, 0xFB, 0xFE, 3, 4])  # declares 1025 bytes
    stream = b"\x00\x13garbage" + good[0].encode() + good[1].encode() + bytes(flipped) + b"\xa5\x00\x05\x00\x00" + good[2].encode()
    stream += bad_length + good[3].encode()
    got = receive(stream)
    assert [r for r in got if r[3] == 0] == [(f.sequence, f.command, f.payload, 0) for f in good]
    assert [(r[0], r[3]) for r in got if r[3]] == [(9, Error.CRC), (0, Error.LENGTH)]


def test_a_frame_that_stops_is_reported_after_the_timeout_and_the_next_one_arrives():
    frame, after = Frame(3, 2, b"xyz").encode(), Frame(4, 6, b"").encode()
    got = receive(frame[:6] + after, timeout=30, gaps={6: 40})
    assert got[0][3] == Error.TIMEOUT and got[-1] == (4, 6, b"", 0)


def test_the_sender_writes_frames_the_host_reads_even_when_the_uart_stalls():
    rng = np.random.default_rng(2)
    answers = [Frame(i, 0x80 | (1 + i % 6), rng.integers(0, 256, n).astype(np.uint8).tobytes()) for i, n in enumerate((0, 5, 300))]
    dut = FrameSender()
    out = bytearray()

    async def engine(ctx):
        for frame in answers:
            ctx.set(dut.answer.valid, 1)
            ctx.set(dut.answer.payload, {"sequence": frame.sequence, "command": frame.command, "length": len(frame.payload)})
            for byte in frame.payload:
                ctx.set(dut.data.valid, 1)
                ctx.set(dut.data.payload, byte)
                await ctx.tick().until(dut.data.ready)
            ctx.set(dut.data.valid, 0)
            await ctx.tick().until(dut.answer.ready)
            ctx.set(dut.answer.valid, 0)

    async def uart(ctx):
        while True:
            ready = int(rng.integers(3) > 0)  # a UART that is busy a third of the time
            ctx.set(dut.bytes.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.bytes.valid):
                out.append(ctx.get(dut.bytes.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(engine)
    sim.add_testbench(uart, background=True)
    sim.run()
    receiver = Receiver()
    assert receiver.feed(bytes(out)) == answers and receiver.dropped == 0
