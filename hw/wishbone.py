"""The core behind a Wishbone B4 pipelined slave, for SoCs (LiteX, amaranth-soc): registers, inputs and
parameters in one address space, as :mod:`eqprop.regmap` lays it out.

The slave does for a bus master what the SoC's command engine (:mod:`eqprop.boards.engine`) does
for the UART host: parameter words go to and from the core's ``param`` port, a ``COMMAND`` write
streams the input window into the core's ``x`` stream and the label after it, and the prediction,
the cycle count and the training-sample count are kept in registers. Register and input accesses
are answered in the next cycle, one per cycle (pipelined); a parameter access takes a few cycles
and stalls the bus meanwhile; a ``COMMAND`` or parameter access while a sample runs stalls until it
has finished (poll ``STATUS`` to avoid that); input writes stall only while the inputs are being
streamed into the core (so the next sample's inputs may be written while the core computes).

Its ``bus`` signature (:class:`WishboneSignature`) carries the register map as an annotation, so
the component's metadata (:meth:`wiring.Component.metadata`, written as JSON by ``eqprop verilog
--bus wishbone``) describes the registers beside the ports.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import meta, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.regmap import DATA_WIDTH, REGISTER, REGISTERS, RegisterMap, register_map

from .arith import shape_of
from .core import Core


class RegisterMapAnnotation(meta.Annotation):
    """The register map (:meth:`eqprop.regmap.RegisterMap.to_dict`) of a Wishbone slave's address space."""

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://eqprop.invalid/schema/0.1/wishbone-register-map.json",
        "type": "object",
        "required": ["bus", "config_hash", "registers", "inputs", "parameters"],
        "properties": {
            "bus": {"type": "object"},
            "config_hash": {"type": "integer"},
            "registers": {"type": "array", "items": {"type": "object", "required": ["name", "offset", "access", "fields"]}},
            "inputs": {"type": "object", "required": ["offset", "count"]},
            "parameters": {"type": "object", "required": ["offset", "memories"]},
        },
    }

    def __init__(self, regmap: RegisterMap) -> None:
        self._regmap = regmap

    @property
    def origin(self) -> RegisterMap:
        return self._regmap

    def as_json(self) -> dict:
        instance = self._regmap.to_dict()
        self.validate(instance)
        return instance


class WishboneSignature(wiring.Signature):
    """A Wishbone B4 pipelined bus as its master sees it (the slave's port is ``In`` of it): member
    names as amaranth-soc's, data and granularity :data:`eqprop.regmap.DATA_WIDTH` (one ``sel`` bit)."""

    def __init__(self, regmap: RegisterMap) -> None:
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"a Wishbone signature needs an eqprop.regmap.RegisterMap, not {regmap!r}")
        self.regmap = regmap
        super().__init__({
            "cyc": Out(1), "stb": Out(1), "we": Out(1), "sel": Out(1),
            "adr": Out(regmap.address_width), "dat_w": Out(DATA_WIDTH),
            "dat_r": In(DATA_WIDTH), "ack": In(1), "stall": In(1),
        })

    def annotations(self, obj, /):
        return (RegisterMapAnnotation(self.regmap),)  # (called on the flipped signature too: no super())


class WishboneCore(wiring.Component):
    """The learning core (:class:`eqprop.hw.core.Core`, built with ``params``, ``primitives`` and ``collisions``) as a
    Wishbone slave on ``bus``; the register map is :func:`eqprop.regmap.register_map` of ``cfg``."""

    def __init__(self, cfg: Config, params: dict[str, np.ndarray] | None = None, primitives: bool = False,
                 collisions: str = "checked") -> None:
        self.regmap = register_map(cfg)
        self.core = Core(cfg, params, primitives, collisions)
        self.inputs = Memory(shape=shape_of(cfg.fixed.input), depth=cfg.network.sizes[0], init=[])
        super().__init__({"bus": In(WishboneSignature(self.regmap))})

    def elaborate(self, platform) -> Module:
        m = Module()
        regmap, core, bus = self.regmap, self.core, self.bus
        cfg = core.cfg
        n = cfg.network.sizes
        m.submodules.core, m.submodules.inputs = core, self.inputs
        input_write, input_read = self.inputs.write_port(), self.inputs.read_port()

        inner, window = bus.adr[:regmap.inner_bits], bus.adr[regmap.inner_bits:]
        in_window = {name: window == (regmap.window(name) >> regmap.inner_bits) for name in ("registers", "inputs", "parameters")}
        request = bus.cyc & bus.stb
        writes = request & bus.we & bus.sel

        busy, done, error = Signal(), Signal(), Signal()
        feeding = Signal()  # the input window is being streamed into the core
        label, train = Signal(16), Signal()
        prediction, cycles, samples = Signal(16), Signal(32), Signal(32)
        def packed(register: str, **fields):
            """A register's value from its fields' signals, placed as the register map says."""
            return sum(fields[f.name] << f.lsb for f in REGISTER[register].fields)

        values = {
            "CONFIG_HASH": regmap.to_dict()["config_hash"],
            "STATUS": packed("STATUS", busy=busy, done=done, error=error),
            "COMMAND": packed("COMMAND", label=label, train=train),
            "PREDICTION": prediction, "CYCLES": cycles, "SAMPLES": samples,
        }
        command = {f.name: bus.dat_w[f.lsb:f.lsb + f.width] for f in REGISTER["COMMAND"].fields}

        # the parameter window: memory, bank and address are bit fields of the word address
        a_bits, b_bits, m_bits = regmap.parameter_address_bits, regmap.parameter_bank_bits, regmap.parameter_memory_bits
        p_address, p_bank, p_memory = inner[:a_bits], inner[a_bits:a_bits + b_bits], inner[a_bits + b_bits:a_bits + b_bits + m_bits]
        p_valid = Signal()
        with m.Switch(p_memory):
            for block in regmap.parameter_memories():
                with m.Case(block.memory):
                    m.d.comb += p_valid.eq((p_bank < block.banks) & (p_address < block.depth))
        access = core.param.payload
        held = Signal(access.shape())  # the parameter access being served

        starting = Signal()  # a COMMAND write is accepted this cycle with a valid label
        m.d.sync += bus.ack.eq(0)
        with m.FSM(name="bus"):
            with m.State("IDLE"):
                stalled = (in_window["parameters"] | (in_window["registers"] & (inner == regmap.register("COMMAND")))) & busy
                stalled |= in_window["inputs"] & feeding
                m.d.comb += bus.stall.eq(request & stalled)
                with m.If(request & ~stalled):
                    m.d.sync += [bus.ack.eq(1), bus.dat_r.eq(0)]
                    with m.If(in_window["registers"]):
                        with m.Switch(inner):
                            for r in REGISTERS:
                                with m.Case(regmap.register(r.name)):
                                    if "r" in r.access:
                                        m.d.sync += bus.dat_r.eq(values[r.name])
                                    if r.name == "COMMAND":
                                        with m.If(writes):
                                            m.d.sync += [label.eq(command["label"]), train.eq(command["train"]), done.eq(0)]
                                            with m.If(command["label"] >= n[-1]):
                                                m.d.sync += error.eq(1)
                                            with m.Else():
                                                m.d.comb += starting.eq(1)
                                                m.d.sync += [error.eq(0), busy.eq(1)]
                    with m.Elif(in_window["inputs"]):
                        m.d.comb += [input_write.addr.eq(inner), input_write.data.eq(bus.dat_w), input_write.en.eq(writes & (inner < n[0]))]
                    with m.Elif(in_window["parameters"] & p_valid & (writes | ~bus.we)):
                        m.d.sync += [bus.ack.eq(0), held.memory.eq(p_memory), held.bank.eq(p_bank), held.address.eq(p_address),
                                     held.write.eq(bus.we), held.data.eq(bus.dat_w)]
                        m.next = "PARAMETER"
            with m.State("PARAMETER"):
                m.d.comb += [bus.stall.eq(request), core.param.valid.eq(1), access.eq(held)]
                with m.If(core.param.ready):
                    with m.If(held.write):
                        m.d.sync += bus.ack.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "PARAMETER_REPLY"
            with m.State("PARAMETER_REPLY"):
                m.d.comb += [bus.stall.eq(request), core.param_read.ready.eq(1)]
                with m.If(core.param_read.valid):
                    m.d.sync += [bus.ack.eq(1), bus.dat_r.eq(core.param_read.payload)]  # sign-extended
                    m.next = "IDLE"

        # a sample: the input window into the core's x stream, the label, then its result
        index = Signal(range(n[0] + 1))
        m.d.comb += input_read.addr.eq(index)
        with m.FSM(name="sample"):
            with m.State("IDLE"):
                with m.If(starting):
                    m.d.sync += [index.eq(0), feeding.eq(1)]
                    m.next = "READ"
            with m.State("READ"):  # the input memory answers in the next cycle
                m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += [core.x.valid.eq(1), core.x.payload.eq(input_read.data)]
                with m.If(core.x.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n[0] - 1):
                        m.d.sync += feeding.eq(0)
                        m.next = "LABEL"
                    with m.Else():
                        m.d.comb += input_read.addr.eq(index + 1)
            with m.State("LABEL"):
                m.d.comb += [core.label.valid.eq(1), core.label.payload.index.eq(label), core.label.payload.train.eq(train)]
                with m.If(core.label.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += core.prediction.ready.eq(1)
                with m.If(core.prediction.valid):
                    m.d.sync += [prediction.eq(core.prediction.payload), cycles.eq(core.cycles), busy.eq(0), done.eq(1)]
                    with m.If(train):
                        m.d.sync += samples.eq(samples + 1)
                    m.next = "IDLE"
        return m
