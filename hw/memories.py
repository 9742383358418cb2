"""Weight storage in single-port RAM: the iCE40UP5K's SPRAMs (SB_SPRAM256KA).

A weight bank of the core is read (one word per beat) and, in update passes, written back one
cycle after each read, while the next word is read: two accesses per cycle, which a single-port
RAM cannot serve. :class:`ParityStore` therefore splits its words by address parity over two
single-port RAMs: a read-modify-write pass walks addresses in order, so the word written (read
one cycle before) and the word read are in different halves. Several matrices share one store at
consecutive offsets, so that one bank of the default digits network's W_0 and W_1 fits the UP5K's
four SPRAMs. An update pass walks them in that order with a bias update between; where that walk's
parities would meet (:func:`eqprop.program.single_port_conflicts`), the device check refuses
the configuration.

Every user port has an ``en``: a read or write that happens this cycle. A read and a write in the
same half in one cycle is a conflict; the write wins, the read returns nothing, and ``conflict``
rises (the core's access order never causes one; the tests watch the flag).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

#: SB_SPRAM256KA: 16384 words of 16 bits.
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16


def spram_count(depth: int, width: int) -> int:
    """SPRAMs of a :class:`ParityStore` of ``depth`` words of ``width`` bits."""
    half = math.ceil(depth / 2)
    return 2 * math.ceil(width / SPRAM_WIDTH) * math.ceil(half / SPRAM_DEPTH)


class SinglePortRam(wiring.Component):
    """``depth`` x ``width`` bits, one access per cycle; ``read_data`` is the word at last cycle's
    ``addr`` when it was not a write (after a write it is undefined: all ones here, X in the SPRAM model).

    ``primitive``: built from SB_SPRAM256KA instances (for the FPGA and its Verilog); otherwise an
    ``amaranth.lib.memory`` model of the same behaviour for the Amaranth simulator.
    """

    def __init__(self, depth: int, width: int, primitive: bool) -> None:
        if depth < 1 or width < 1:
            raise ValueError(f"a RAM needs a positive depth and width, got {depth} x {width}")
        if primitive and depth > SPRAM_DEPTH:
            raise ValueError(f"one column of SPRAMs holds {SPRAM_DEPTH} words, not {depth}")
        self.depth, self.width, self.primitive = depth, width, primitive
        super().__init__({"addr": In(range(max(2, depth))), "write_data": In(width), "write": In(1), "read_data": Out(width)})

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.primitive:
            slices = math.ceil(self.width / SPRAM_WIDTH)
            data_in = Signal(slices * SPRAM_WIDTH)
            data_out = Signal(slices * SPRAM_WIDTH)
            address = Signal(range(SPRAM_DEPTH))
            m.d.comb += [data_in.eq(self.write_data), self.read_data.eq(data_out), address.eq(self.addr)]
            for k in range(slices):
                m.submodules[f"spram{k}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=address, i_DATAIN=data_in[k * SPRAM_WIDTH:(k + 1) * SPRAM_WIDTH], i_MASKWREN=Const(0b1111, 4),
                    i_WREN=self.write, i_CHIPSELECT=1, i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=data_out[k * SPRAM_WIDTH:(k + 1) * SPRAM_WIDTH],
                )
            return m
        m.submodules.memory = memory = Memory(shape=self.width, depth=self.depth, init=[])
        read, write = memory.read_port(), memory.write_port()
        wrote = Signal()
        m.d.sync += wrote.eq(self.write)
        m.d.comb += [
            read.addr.eq(self.addr), read.en.eq(~self.write),
            write.addr.eq(self.addr), write.data.eq(self.write_data), write.en.eq(self.write),
            self.read_data.eq(Mux(wrote, Const(-1, self.width), read.data)),
        ]
        return m


class ParityStore(wiring.Component):
    """Segments (one per weight matrix bank) of ``width``-bit words in two single-port RAMs by address parity.

    ``segment_ports(name)`` gives a segment's ``read`` (``addr``, ``en``; ``data`` one cycle later)
    and ``write`` (``addr``, ``data``, ``en``) ports, addressed from 0 like a memory of its own.
    """

    def __init__(self, segments: dict[str, int], shape: Shape, primitive: bool) -> None:
        self.offsets, offset = {}, 0
        for name, depth in segments.items():
            self.offsets[name], offset = offset, offset + depth
        self.depth, self.width, self.primitive = offset, Shape.cast(shape).width, primitive

        def port(name: str, depth: int, kind: str) -> SimpleNamespace:
            return SimpleNamespace(
                addr=Signal(range(max(2, depth)), name=f"{name}_{kind}_addr"),
                en=Signal(name=f"{name}_{kind}_en"),
                data=Signal(shape, name=f"{name}_{kind}_data"),
            )

        self.segments = {name: SimpleNamespace(read=port(name, depth, "read"), write=port(name, depth, "write")) for name, depth in segments.items()}
        super().__init__({"conflict": Out(1)})

    def segment_ports(self, name: str) -> SimpleNamespace:
        return self.segments[name]

    def elaborate(self, platform) -> Module:
        m = Module()
        half_depth = math.ceil(self.depth / 2)
        read_addr, write_addr = Signal(range(self.depth + 1)), Signal(range(self.depth + 1))
        read_en, write_en, write_data = Signal(), Signal(), Signal(self.width)
        for name, ports in self.segments.items():  # at most one segment reads and one writes in a cycle
            offset = self.offsets[name]
            with m.If(ports.read.en):
                m.d.comb += [read_addr.eq(ports.read.addr + offset), read_en.eq(1)]
            with m.If(ports.write.en):
                m.d.comb += [write_addr.eq(ports.write.addr + offset), write_en.eq(1), write_data.eq(ports.write.data)]
        read_half = Signal()
        m.d.sync += read_half.eq(read_addr[0])
        halves = []
        for h in range(2):
            m.submodules[f"half{h}"] = ram = SinglePortRam(half_depth, self.width, self.primitive)
            writing = write_en & (write_addr[0] == h)
            m.d.comb += [
                ram.addr.eq(Mux(writing, write_addr >> 1, read_addr >> 1)),
                ram.write_data.eq(write_data),
                ram.write.eq(writing),
            ]
            halves.append(ram)
        data = Mux(read_half, halves[1].read_data, halves[0].read_data)
        m.d.comb += [ports.read.data.eq(data) for ports in self.segments.values()]
        m.d.comb += self.conflict.eq(read_en & write_en & (read_addr[0] == write_addr[0]))
        return m
