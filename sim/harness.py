"""The co-simulation top: the core's Verilog (as a black-box instance) with a hash of its trace.

Checking every write from Python would mean waking Python every clock; instead the harness folds
each traced port's writes into a 64-bit hash per sample (:mod:`eqprop.sim.trace` gives the rule
and the expected values), cleared when the core accepts a label. The testbench reads the hashes,
the prediction and the cycle counter once per sample, and follows the ``writing`` vector (one
``en`` bit per traced port) clock by clock only to locate a mismatch.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.hw.core import core_signature
from eqprop.layout import trace_ports
from eqprop.hw.verilog import TOP

from .trace import HASH_MULTIPLIER

HARNESS_TOP = "eqprop_cosim"


def _address_bits(port) -> int:
    return max(1, (port.depth - 1).bit_length())


#: The core's input streams; the harness buffers them (see TraceHashHarness).
INPUT_STREAMS = ("x", "label", "param")
#: The core's output streams; the harness always takes what they offer.
OUTPUT_STREAMS = ("prediction", "param_read")


def harness_signature(cfg: Config) -> wiring.Signature:
    core, traced = core_signature(cfg).members, trace_ports(cfg)
    outputs = {
        name: Out(wiring.Signature({"valid": Out(1), "payload": Out(core[name].signature.members["payload"].shape)}))
        for name in OUTPUT_STREAMS
    }
    return wiring.Signature({
        "clk": In(1),
        **{name: core[name] for name in INPUT_STREAMS},
        **outputs,
        "cycles": Out(32),
        "busy": Out(1),
        "hashes": Out(wiring.Signature({port.name: Out(64) for port in traced})),
        "writing": Out(len(traced)),
        "trace": Out(wiring.Signature({
            port.name: Out(wiring.Signature({"addr": Out(_address_bits(port)), "data": Out(port.width)})) for port in traced
        })),
    })


class TraceHashHarness(wiring.Component):
    """The core with ``hashes`` and ``writing`` outputs; ``trace`` shows addresses and data unsigned.

    Its input streams pass through two-entry FIFOs and its output streams are always taken, so that
    no top-level input but the clock reaches the core's logic without a register: Verilator
    re-evaluates all logic that depends on top-level inputs at every evaluation (twice per clock).
    """

    def __init__(self, cfg: Config) -> None:
        self.traced = trace_ports(cfg)
        super().__init__(harness_signature(cfg))

    def elaborate(self, platform) -> Module:
        m = Module()
        # No reset input either: the core's next-state logic depends on its reset, so a top-level
        # reset would put all of it among the input-dependent logic. Registers start at their
        # initial values, as on an FPGA after configuration.
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.d.comb += ClockSignal("sync").eq(self.clk)
        connections = {"i_clk": ClockSignal(), "i_rst": 0, "o_cycles": self.cycles, "o_busy": self.busy}
        for name in INPUT_STREAMS:
            stream_in = getattr(self, name)
            width = Shape.cast(stream_in.payload.shape()).width
            m.submodules[f"{name}_fifo"] = fifo = SyncFIFOBuffered(width=width, depth=2)
            m.d.comb += [fifo.w_data.eq(stream_in.payload), fifo.w_en.eq(stream_in.valid), stream_in.ready.eq(fifo.w_rdy)]
            connections |= {f"i_{name}__valid": fifo.r_rdy, f"i_{name}__payload": fifo.r_data, f"o_{name}__ready": fifo.r_en}
        for name in OUTPUT_STREAMS:
            stream_out = getattr(self, name)
            connections |= {f"o_{name}__valid": stream_out.valid, f"o_{name}__payload": stream_out.payload, f"i_{name}__ready": 1}
        label = m.submodules.label_fifo
        start = label.r_rdy & label.r_en  # the core takes the label: its sample starts
        for i, port in enumerate(self.traced):
            traced = getattr(self.trace, port.name)
            en, addr, data = Signal(name=f"{port.name}_en"), traced.addr, traced.data
            connections |= {f"o_trace__{port.name}__en": en, f"o_trace__{port.name}__data": data}
            if port.depth > 1:  # a one-word memory has no address bits and no address port
                connections[f"o_trace__{port.name}__addr"] = addr
            fold = lambda h, word: (h * HASH_MULTIPLIER + word)[:64]  # noqa: E731
            hashed = getattr(self.hashes, port.name)
            with m.If(start):
                m.d.sync += hashed.eq(0)
            with m.Elif(en):
                m.d.sync += hashed.eq(fold(fold(fold(hashed, self.cycles), addr), data))
            m.d.comb += self.writing[i].eq(en)
        m.submodules.core = Instance(TOP, **connections)
        return m


def verilator_control(cfg: Config) -> str:
    """A Verilator control file that makes only the harness's ports visible to cocotb.

    cocotb's runner marks every signal public and writable (``--public-flat-rw``); Verilator must
    then assume any of them may change from outside and re-evaluates all logic at every step.
    """
    signature = harness_signature(cfg)
    lines = ["`verilator_config"]
    for path, member, _ in signature.flatten(signature.create()):
        access = "rw" if member.flow == In else "rd"
        lines.append(f'public_flat_{access} -module "{HARNESS_TOP}" -var "{"__".join(map(str, path))}"')
    return "\n".join(lines) + "\n"


def harness_verilog(cfg: Config) -> str:
    return verilog.convert(TraceHashHarness(cfg), name=HARNESS_TOP, emit_src=False)


#: The harness's signals every waveform view opens on, whichever memory failed.
WAVE_OVERVIEW = ("clk", "cycles", "busy", "writing", "prediction__valid", "prediction__payload")


def wave_signals(cfg: Config, ports: list[str]) -> list[tuple[str, int]]:
    """``(name, width)`` of the harness's top-level signals that show a mismatch in ``ports`` (trace
    port names): :data:`WAVE_OVERVIEW`, then each port's traced address and data and its hash."""
    signature = harness_signature(cfg)
    widths = {"__".join(map(str, path)): Shape.cast(member.shape).width for path, member in signature.members.flatten() if member.is_port}
    names = [*WAVE_OVERVIEW, *(f"{group}__{port}{part}" for port in ports for group, part in
                               (("trace", "__addr"), ("trace", "__data"), ("hashes", "")))]
    return [(name, widths[name]) for name in names if name in widths]  # a one-word memory has no address
