"""The on-chip core: the golden model's inference and continual learning over P MAC lanes.

The core computes what :class:`eqprop.golden.GoldenModel` computes, bit for bit, in the cycles
:func:`eqprop.schedule.cycle_count` predicts (``tests/test_hw_core.py`` checks both): the free
phase (inference), and for a training sample the nudged phase(s) (one-sided, symmetric, random
sign) with a continual C-EP / C-VF update of every weight and bias after every nudged step
(rounded by the formats' modes or stochastically with the LFSR unit's words), and the local
homeostasis pass every ``homeostasis_period`` samples. With deferred input updates (the default)
``W_0`` is written once per sample and ``W_0 x`` tracked meanwhile (:mod:`eqprop.golden`). Between
samples the ``param`` port loads and reads the stored weights and biases word by word
(:func:`eqprop.layout.parameter_words`).

Memories (``amaranth.lib.memory``, so they map to block RAM), laid out as :mod:`eqprop.layout` says:

* every weight matrix ``W_l`` (and ``B_l`` when untied) in P skewed banks; lane t works on bank
  ``(t + r) mod P`` for row (or column) r;
* states of every layer in P striped banks, three buffers for layers 1..L: a step reads one and
  writes another; during the nudged phases the third keeps ``s*``;
* biases and the per-neuron learning factors (``u, v`` tied, ``d, e`` untied) of every layer in P
  banks; ``W_0 x`` (and the deferred factors F) in one memory each, or P striped banks with packed
  beats (:func:`eqprop.layout.neuron_banks`); x in P banks.

Every write to a state, ``W_0 x``, weight or bias memory is also driven onto the ``trace`` output
(one ``en``/``addr``/``data`` group per memory bank, :func:`trace_ports`), like RISC-V's formal
interface: verification watches the core through it (:mod:`eqprop.sim`), and a design that leaves it
unconnected (the SoC) loses it in synthesis.

Pipeline: the sequencer issues a beat's addresses in one cycle; the memories answer in the next,
and (except on the iCE40, :func:`eqprop.program.pipeline`) their words are registered again.
Then a relaxation or input-drive beat goes through the MAC lanes (:mod:`eqprop.hw.mac`) and, at a
row's end, the neuron unit (:mod:`eqprop.hw.neuron`), which writes the state, the learning factors
and ``W_0 x`` (a packed beat's rows each go to a neuron unit of their own, and ``W_0 x`` and F are
then striped over P banks like the states: :func:`eqprop.program.packing`); an update or homeostasis beat goes through the update lanes (:mod:`eqprop.hw.update`),
which write the weights back. The passes, their parts and the gaps between them come from the
pass program (:class:`eqprop.program.Program`), which the sequencer (:mod:`eqprop.hw.sequencer`)
walks, and the latencies are the program's constants. Passes overlap, so each stage takes the
phase and state buffers of its own beat (:class:`BeatPhase`), not the sequencer's. The parameter port (:mod:`eqprop.hw.param_port`) takes the
``param`` requests between samples.

``elaborate`` wires the units: the memories (``_memories``), the trace, the inputs (``_inputs``),
the issue stage's addresses (``_issue``), the r_ stage's registered words (:class:`RegisteredWords`),
the MAC lanes and neuron unit (``_relaxation``), the update lanes (``_updates``) and, last so that
they take precedence between samples, the parameter requests (``_parameter_access``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import reduce

import numpy as np
from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.golden import Arith
from eqprop.layout import (
    bank_depth, neuron_banks, param_names, param_shapes, parameters_from_words,
    skewed_banks, striped_banks, trace_ports,
)
from eqprop.program import Part, PassKind, neuron_stages, pipeline

from .arith import shape_of, square, times_constant
from .devices import check_device, presynaptic_operand, spram_matrices, spram_segments, update_factor_width
from .lanes import delayed
from .lfsr import LfsrUnit
from .mac import MacLanes
from .memories import ParityStore
from .neuron import NeuronUnit, row_fields
from .param_port import ParameterPort, access_layout, word_shape
from .sequencer import Sequencer, label_layout
from .update import Rounding, UpdateLanes


def check_buildable(cfg: Config) -> Arith:
    """Refuse, before any HDL is built, a configuration the core cannot be built for; returns its constants."""
    arith = Arith.from_config(cfg)
    if not isinstance(cfg.hardware.lanes, int) or cfg.hardware.lanes < 1:
        raise ConfigError(f"hardware.lanes must be a positive integer, got {cfg.hardware.lanes!r}")
    check_device(cfg)
    return arith


def core_signature(cfg: Config) -> wiring.Signature:
    """The core's ports: its streams, the ``param`` access port, counters and the ``trace`` output."""
    trace = wiring.Signature({
        port.name: Out(wiring.Signature({"en": Out(1), "addr": Out(range(port.depth)), "data": Out(signed(port.width))}))
        for port in trace_ports(cfg)
    })
    outputs = range(max(2, cfg.network.sizes[-1]))
    return wiring.Signature({
        "trace": Out(trace),
        "param": In(stream.Signature(access_layout(cfg))),
        "param_read": Out(stream.Signature(word_shape(cfg))),
        "x": In(stream.Signature(shape_of(cfg.fixed.input))),
        "label": In(stream.Signature(label_layout(cfg))),
        "prediction": Out(stream.Signature(outputs)),
        "cycles": Out(32),
        "busy": Out(1),
    })


def select(options: dict, selector, default=None, size=None):
    """``options[key]`` for the ``selector`` value equal to ``key`` (``default``, or the first option,
    for a key not listed): one parallel multiplexer, not a chain, so that a choice among P banks
    stays shallow as P grows."""
    keys = list(options)
    if len(keys) == 1 and default is None:
        return options[keys[0]]
    fill = options[keys[0]] if default is None else default
    return Array([options.get(key, fill) for key in range(size or max(keys) + 1)])[selector]


def of_kind(parts: list[Part], *kinds: PassKind) -> list[int]:
    """The indices of the parts of these kinds."""
    return [i for i, p in enumerate(parts) if p.kind in kinds]


def update_rounding(arith: Arith, part: Part) -> Rounding:
    """How an update or homeostasis part's increments are rounded to the stored word."""
    fx = arith.cfg.fixed
    if part.kind == PassKind.HOMEOSTASIS:
        return Rounding(fx.factor.n + arith.weight_store.n, arith.weight_store)
    if part.target == "b":
        return Rounding(fx.update.n, arith.bias_store)
    return Rounding(fx.update.n + (fx.state.n if part.target == "B" else arith.pre_frac(part.layer)), arith.weight_store)


@dataclass
class MemoryPorts:
    """The core's memory ports, by memory (and bank); states and factors by (layer, buffer) and
    (name, layer). ``state_rd`` reads presynaptic segments (or the one state a column update of
    ``B_l`` multiplies), ``own_rd`` a neuron's old state."""

    weight_rd: dict
    weight_wr: dict
    bias_rd: dict
    bias_wr: dict
    input_rd: list
    input_wr: list
    state_rd: dict
    own_rd: dict
    state_wr: dict
    factor_rd: dict
    factor_wr: dict
    #: W_0 x and F by bank (:func:`eqprop.layout.neuron_banks`; F's empty without deferred input updates)
    w0x_rd: list
    w0x_wr: list
    pending_rd: list
    pending_wr: list
    #: id of a block-RAM read port -> its memory's write port (SPRAM-backed weights have none here)
    writer_of: dict = dataclasses.field(default_factory=dict)

    def parameter(self, name: str) -> tuple[list, list]:
        """The read and write ports of a parameter memory's banks (``W0``, ``B1``, ``b2``, ...)."""
        if name[0] == "b":
            return self.bias_rd[int(name[1:])], self.bias_wr[int(name[1:])]
        return self.weight_rd[name], self.weight_wr[name]


@dataclass
class Issued:
    """What the issue stage decides of a beat beside the memories' addresses."""

    weight_address: Signal  # the word a row's update beat writes back (every bank's)
    column_addresses: list  # bank b's word of a B_l column: a column update's, homeostasis's partner
    layer: Signal  # the layer whose rows a drive or relaxation beat computes
    drive_row: Signal  # a row of the input drive: its drive is W_0 x


@dataclass
class BeatPhase:
    """The sequencer's phase registers as they were when a beat was issued: passes overlap (one
    begins while the last rows of the one before are still in the pipeline), so every stage takes
    the phase, and the state buffers, of its own beat."""

    read_buf: Signal
    write_buf: Signal
    nudged: Signal
    negative: Signal
    step: Signal
    nudge_phase: Signal

    def first_free_step(self):
        """The free phase's first step: the states' memories still hold the last sample's."""
        return ~self.nudged & (self.step == 0)


def phase_of_beat(m: Module, seq: Sequencer, cycles: int, prefix: str) -> BeatPhase:
    """The phase of the beat issued ``cycles`` cycles ago."""
    return BeatPhase(**{name: delayed(m, getattr(seq, name), cycles, f"{prefix}_{name}")
                        for name in ("read_buf", "write_buf", "nudged", "negative", "step", "nudge_phase")})


class RegisteredWords:
    """The r_ stage: the memories' words, registered (their output registers), with the beat they
    belong to, as they are ``pipeline(cfg).read_stages`` cycles after its issue."""

    def __init__(self, m: Module, cfg: Config, ports: MemoryPorts, seq: Sequencer, collisions: str) -> None:
        self.m, self.ports, self.lanes, self.collisions = m, ports, cfg.hardware.lanes, collisions
        self.parts = seq.program.parts()
        self.at_read = at_read = pipeline(cfg).read_stages
        self.part = delayed(m, seq.beat.part, at_read, "r_part")
        self.mod = delayed(m, seq.beat.row_mod, at_read, "r_mod")
        self.valid = delayed(m, seq.issue, at_read, "r_valid")
        self.mask = delayed(m, seq.beat.mask, at_read, "r_mask")
        self.phase = phase_of_beat(m, seq, at_read, "r")
        self._registered: dict[int, Signal] = {}
        #: with ``collisions="checked"``: one flag per block-RAM read port, high in the cycle after a collision
        self.collided: list[Signal] = []

    def r(self, port):
        """A read port's word, registered. With ``collisions="checked"`` a word read in the cycle its
        memory wrote the same address comes inverted, so that a core using one fails against the golden model."""
        if id(port) not in self._registered:
            data, write = port.data, self.ports.writer_of.get(id(port))
            if self.collisions == "checked" and write is not None:
                collided = Signal(name="collided")
                self.m.d.sync += collided.eq(write.en.any() & port.en & (write.addr == port.addr))
                self.collided.append(collided)
                data = Mux(collided, ~port.data, port.data)
            self._registered[id(port)] = delayed(self.m, data, self.at_read - 1, "r")
        return self._registered[id(port)]

    def by_part(self, values: dict):
        """``values[part]`` of the part in the r_ registers; 0 for a part not listed."""
        return select(values, self.part, default=0, size=len(self.parts)) if values else 0

    def in_parts(self, indices: list[int]):
        """The part in the r_ registers is one of these."""
        return reduce(lambda a, b: a | b, [self.part == i for i in indices], 0)

    def pre_values(self, layer: int, buffer) -> list:
        """Lane t's presynaptic value of ``layer`` (0: x), from ``buffer`` for states."""
        if layer == 0:
            return [self.r(port) for port in self.ports.input_rd]
        return [select({buf: self.r(self.ports.state_rd[(layer, buf)][t]) for buf in range(3)}, buffer) for t in range(self.lanes)]


#: What a Core's block-RAM read at the address its memory writes in the same cycle returns (see :class:`Core`).
COLLISIONS = ("checked", "undefined")


def undefined_collisions(module: str) -> str:
    """The Yosys command, run after the design is read, that tells synthesis what a Core built with
    ``collisions="undefined"`` promises: a read of its block RAMs in the cycle that writes the same
    address is undefined (``COLLISION_X_MASK``), so no RAM gets logic that returns the old word.
    ``module``: the Core's module (a Yosys pattern). Each of the core's memories has one write port."""
    return f"setparam -set COLLISION_X_MASK 1 {module}/t:$memrd_v2"


class Core(wiring.Component):
    """The learning core: stream x and a label in, get the (free-phase) prediction out.

    ``params`` are the golden model's stored integers (the memories' initial contents). The
    ``label`` stream's ``train`` bit chooses between learning the sample and inference only. On an
    FPGA with SPRAM the weight matrices W_l live there (:mod:`eqprop.hw.memories`), built from
    SB_SPRAM256KA instances when ``primitives`` (for Verilog) or from a model of them (for the
    Amaranth simulator); SPRAM has no initial contents, so those weights come through ``param``.

    ``collisions`` (:data:`COLLISIONS`) is what a block-RAM read in the cycle that its memory writes
    the same address returns. The core never uses such a word, and the simulations check it:
    ``"checked"`` (the default) inverts the word, so a core that used one would fail against the
    golden model. ``"undefined"`` is for synthesis: the words as the memory gives them, and the
    board build tells Yosys that they are undefined (``COLLISION_X_MASK``), which spares every block
    RAM the logic that would keep the old word (on the iCEBreaker about 760 logic cells).
    """

    def __init__(self, cfg: Config, params: dict[str, np.ndarray] | None = None, primitives: bool = False,
                 collisions: str = "checked") -> None:
        if collisions not in COLLISIONS:
            raise ValueError(f"collisions must be one of {', '.join(COLLISIONS)}, not {collisions!r}")
        self.collisions = collisions
        self.cfg = cfg
        self.arith = check_buildable(cfg)
        self.lanes = P = cfg.hardware.lanes
        fx = cfg.fixed
        sizes, L = cfg.network.sizes, cfg.network.n_layers
        shapes = param_shapes(cfg.network)
        params = params if params is not None else {k: np.zeros(s, dtype=np.int64) for k, s in shapes.items()}
        banks = lambda fmt, contents: [Memory(shape=shape_of(fmt), depth=len(b), init=b.tolist()) for b in contents]  # noqa: E731
        zeros = lambda n: np.zeros(n, dtype=np.int64)  # noqa: E731
        in_spram = spram_matrices(cfg)
        if any(np.any(params[name]) for name in in_spram):
            raise ConfigError(
                f"on the {cfg.hardware.fpga} the weights {', '.join(in_spram)} live in SPRAM, which has no initial "
                "contents: load them through the param port instead"
            )
        self.weights = {
            name: banks(self.arith.weight_store, skewed_banks(np.asarray(params[name]), P))
            for name in shapes
            if name[0] != "b" and name not in in_spram
        }
        # SPRAM-backed weights: one parity store per bank holds that bank of every such matrix
        self.weight_stores = [ParityStore(spram_segments(cfg), shape_of(self.arith.weight_store), primitives) for _ in range(P)] if in_spram else []
        self.weight_segments = {name: [store.segment_ports(name) for store in self.weight_stores] for name in in_spram}
        self.biases = {l: banks(self.arith.bias_store, striped_banks(np.asarray(params[f"b{l}"]), P)) for l in range(1, L + 1)}
        self.inputs = banks(fx.input, striped_banks(zeros(sizes[0]), P))
        self.states = {(l, buf): banks(fx.state, striped_banks(zeros(sizes[l]), P)) for l in range(1, L + 1) for buf in range(3)}
        names = ("u", "v") if cfg.network.tied else ("d", "e")
        self.factors = {
            (name, l): banks(fx.update, striped_banks(zeros(sizes[l]), P))
            for l in range(1, L + 1)
            for name in names
            if not (name == "e" and l == L)
        }
        banks_of_neurons = neuron_banks(cfg)
        neuron_depth = bank_depth((sizes[1],), banks_of_neurons)
        self.w0x = [Memory(shape=shape_of(fx.accumulator), depth=neuron_depth, init=[]) for _ in range(banks_of_neurons)]
        # F, the deferred input-layer row factors (eqprop.golden), when W_0's updates are deferred
        deferred = cfg.hardware.defer_input_updates
        self.pending = [Memory(shape=shape_of(fx.update), depth=neuron_depth, init=[]) for _ in range(banks_of_neurons)] if deferred else []
        self.traced = trace_ports(cfg)
        super().__init__(core_signature(cfg))

    def weight_arrays(self, read) -> dict[str, np.ndarray]:
        """The parameters held in the memories, read with ``read(memory_data, address)`` (for the Amaranth simulator;
        SPRAM-backed weights are read through the ``param`` port instead)."""
        if self.weight_stores:
            raise ValueError("weights in SPRAM are read through the param port")
        memories = [self.biases[int(k[1:])] if k[0] == "b" else self.weights[k] for k in param_names(self.cfg.network)]
        return parameters_from_words(self.cfg, lambda memory, bank, address: read(memories[memory][bank].data, address))

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, fx = self.cfg, self.cfg.fixed
        ports = self._memories(m)
        self._trace(m, ports)
        m.submodules.sequencer = seq = Sequencer(cfg)
        m.submodules.parameters = parameters = ParameterPort(cfg)
        m.submodules.lfsr = lfsr = LfsrUnit(fx.lfsr, self.lanes)
        wiring.connect(m, wiring.flipped(self.label), seq.label)
        wiring.connect(m, wiring.flipped(self.param), parameters.param)
        wiring.connect(m, wiring.flipped(self.param_read), parameters.param_read)
        m.d.comb += [
            self.cycles.eq(seq.cycles), self.busy.eq(seq.busy), seq.sign_bit.eq(lfsr.words[0][0]),
            self.prediction.valid.eq(seq.done), seq.ack.eq(self.prediction.ready), parameters.enable.eq(seq.loading),
        ]
        norm = self._inputs(m, ports, seq)
        issued = self._issue(m, ports, seq)
        words = RegisteredWords(m, cfg, ports, seq, self.collisions)
        self.collision_flags = words.collided  # what the tests watch: the check is not vacuous
        neuron = self._relaxation(m, ports, seq, issued, words, norm)
        m.d.comb += self.prediction.payload.eq(neuron.best_index)
        self._updates(m, ports, seq, issued, words, lfsr)
        # last: between samples a parameter request's addresses and writes take precedence
        self._parameter_access(m, ports, parameters)
        return m

    def _memories(self, m: Module) -> "MemoryPorts":
        """Every memory as a submodule, with the ports the core reads and writes it through."""
        for name, mems in self.weights.items():
            for b, mem in enumerate(mems):
                m.submodules[f"{name}_bank{b}"] = mem
        for b, store in enumerate(self.weight_stores):
            m.submodules[f"weights_bank{b}"] = store
        for l, mems in self.biases.items():
            for b, mem in enumerate(mems):
                m.submodules[f"b{l}_bank{b}"] = mem
        for b, mem in enumerate(self.inputs):
            m.submodules[f"x_bank{b}"] = mem
        for (l, buf), mems in self.states.items():
            for b, mem in enumerate(mems):
                m.submodules[f"s{l}_buf{buf}_bank{b}"] = mem
        for (name, l), mems in self.factors.items():
            for b, mem in enumerate(mems):
                m.submodules[f"{name}{l}_bank{b}"] = mem
        for name, mems in (("w0x", self.w0x), ("pending", self.pending)):
            for b, mem in enumerate(mems):
                m.submodules[f"{name}_bank{b}"] = mem
        reads = lambda memories: {k: [mem.read_port() for mem in v] for k, v in memories.items()}  # noqa: E731
        writes = lambda memories: {k: [mem.write_port() for mem in v] for k, v in memories.items()}  # noqa: E731
        ports = MemoryPorts(
            weight_rd=reads(self.weights) | {k: [segment.read for segment in v] for k, v in self.weight_segments.items()},
            weight_wr=writes(self.weights) | {k: [segment.write for segment in v] for k, v in self.weight_segments.items()},
            bias_rd=reads(self.biases), bias_wr=writes(self.biases),
            input_rd=[mem.read_port() for mem in self.inputs], input_wr=[mem.write_port() for mem in self.inputs],
            state_rd=reads(self.states), own_rd=reads(self.states), state_wr=writes(self.states),
            factor_rd=reads(self.factors), factor_wr=writes(self.factors),
            w0x_rd=[mem.read_port() for mem in self.w0x], w0x_wr=[mem.write_port() for mem in self.w0x],
            pending_rd=[mem.read_port() for mem in self.pending], pending_wr=[mem.write_port() for mem in self.pending],
        )
        for reads_, writes_ in ((ports.weight_rd, ports.weight_wr), (ports.bias_rd, ports.bias_wr), (ports.state_rd, ports.state_wr),
                                (ports.own_rd, ports.state_wr), (ports.factor_rd, ports.factor_wr)):
            for key in reads_:
                if key not in self.weight_segments:
                    ports.writer_of |= {id(r): w for r, w in zip(reads_[key], writes_[key])}
        for reads_, writes_ in ((ports.input_rd, ports.input_wr), (ports.w0x_rd, ports.w0x_wr), (ports.pending_rd, ports.pending_wr)):
            ports.writer_of |= {id(r): w for r, w in zip(reads_, writes_)}
        return ports

    def _trace(self, m: Module, ports: "MemoryPorts") -> None:
        """Every state, W_0 x, weight and bias write on the trace output: what a scoreboard watches
        (:func:`eqprop.schedule.sample_trace` gives each one's cycle and value)."""
        traced = {f"w0x_bank{b}": port for b, port in enumerate(ports.w0x_wr)}
        traced |= {f"s{l}_buf{buf}_bank{b}": port for (l, buf), banks in ports.state_wr.items() for b, port in enumerate(banks)}
        traced |= {f"{name}_bank{b}": port for name, banks in ports.weight_wr.items() for b, port in enumerate(banks)}
        traced |= {f"b{l}_bank{b}": port for l, banks in ports.bias_wr.items() for b, port in enumerate(banks)}
        for port in self.traced:
            out, write = getattr(self.trace, port.name), traced[port.name]
            m.d.comb += [out.en.eq(write.en), out.addr.eq(write.addr), out.data.eq(write.data)]

    def _inputs(self, m: Module, ports: "MemoryPorts", seq: Sequencer) -> Signal:
        """Between samples: a sample's inputs into their banks, and ||x||^2 summed (returned)."""
        cfg, P, n0 = self.cfg, self.lanes, self.cfg.network.sizes[0]
        loaded = Signal(range(n0 + 1))
        loaded_mod, loaded_div = Signal(range(P)), Signal(range(n0 // P + 2))
        norm = Signal(range(self.arith.norm_bound + 1))  # ||x||^2, 2n input fraction bits
        m.d.comb += self.x.ready.eq(seq.loading)
        for b, port in enumerate(ports.input_wr):
            m.d.comb += [port.addr.eq(loaded_div), port.data.eq(self.x.payload), port.en.eq(self.x.valid & seq.loading & (loaded_mod == b))]
        if cfg.hardware.defer_input_updates:
            # ||x||^2 through two registers, the input (i_) and its square (q_), so that no input
            # source's path (a block RAM's unregistered output in the SoC) runs into the squaring
            # adders: the sum is complete two cycles after the last input, long before the first
            # nudged step reads it (the input drive pass and the free phase come first)
            i_valid, i_first, i_x = Signal(), Signal(), Signal.like(self.x.payload)
            m.d.sync += [i_valid.eq(self.x.valid & seq.loading), i_first.eq(loaded == 0), i_x.eq(self.x.payload)]
            q_valid, q_first, q_square = Signal(), Signal(), Signal(2 * len(i_x))
            m.d.sync += [q_valid.eq(i_valid), q_first.eq(i_first), q_square.eq(square(i_x))]
            with m.If(q_valid):
                m.d.sync += norm.eq(Mux(q_first, 0, norm) + q_square)
        with m.If(self.x.valid & seq.loading):
            with m.If(loaded == n0 - 1):
                m.d.comb += seq.loaded.eq(1)
                m.d.sync += [loaded.eq(0), loaded_mod.eq(0), loaded_div.eq(0)]
            with m.Else():
                m.d.sync += loaded.eq(loaded + 1)
                with m.If(loaded_mod == P - 1):
                    m.d.sync += [loaded_mod.eq(0), loaded_div.eq(loaded_div + 1)]
                with m.Else():
                    m.d.sync += loaded_mod.eq(loaded_mod + 1)
        return norm

    def _parameter_access(self, m: Module, ports: "MemoryPorts", parameters: ParameterPort) -> None:
        """Between samples: a parameter request to the memory and bank it names, and the word read."""
        P = self.lanes
        access, read_words = parameters.access.payload, []
        for memory, name in enumerate(param_names(self.cfg.network)):
            reads, writes = ports.parameter(name)
            read_words += [port.data for port in reads]
            with m.If(parameters.access.valid & (access.memory == memory)):
                for b in range(P):
                    with m.If(access.bank == b):
                        m.d.comb += [reads[b].addr.eq(access.address), writes[b].addr.eq(access.address), writes[b].data.eq(access.data)]
                        m.d.comb += [reads[b].en.eq(~access.write), writes[b].en.eq(access.write)]
        m.d.comb += parameters.word.eq(Array(read_words)[times_constant(parameters.reply_from.memory, P) + parameters.reply_from.bank])

    def _issue(self, m: Module, ports: "MemoryPorts", seq: Sequencer) -> "Issued":
        """The addresses of a beat's words, in the cycle the sequencer issues it: one case per part
        (a parallel multiplexer, not a chain of ifs). What the neuron unit needs of a row beside its
        drive (old state, bias, W_0 x, F) is addressed late, so that it arrives with the drive."""
        cfg, P, L = self.cfg, self.lanes, self.cfg.network.n_layers
        beat, shapes, parts, K = seq.beat, param_shapes(cfg.network), seq.program.parts(), PassKind
        depth = max(bank_depth(shape, P) for name, shape in shapes.items() if name[0] != "b")
        issued = Issued(
            weight_address=Signal(range(depth + 1), name="i_waddr"),
            column_addresses=[Signal(range(depth + 1), name=f"i_baddr{b}") for b in range(P)],  # B_l, read by column
            layer=Signal(range(L + 1), name="i_layer"), drive_row=Signal(name="i_drive_row"),
        )
        late_row, late_div, late_mod = (delayed(m, value, MacLanes.latency(P), f"i_late_{name}")
                                        for name, value in (("row", beat.row), ("div", beat.row_div), ("mod", beat.row_mod)))
        packed = seq.program.neuron_units > 1

        def late_address(b: int):
            """Bank b's word of the beat's row, or of a packed beat's row in that bank (row + i * length
            is in bank (row + i * length) mod P, one address on where that wraps past P)."""
            return late_div + (b < late_mod) if packed else late_div

        for l in range(1, L + 1):
            for b in range(P):
                m.d.comb += ports.bias_rd[l][b].addr.eq(late_address(b))
                for buf in range(3):
                    m.d.comb += ports.own_rd[(l, buf)][b].addr.eq(late_address(b))
        for b, port in enumerate(ports.w0x_rd + ports.pending_rd):
            m.d.comb += port.addr.eq(late_address(b % P) if packed else late_row)

        def row_address(matrix: str):
            """The address of this beat's segment of row ``row`` of a skewed matrix (every bank's)."""
            return times_constant(beat.row, math.ceil(shapes[matrix][1] / P)) + beat.segment

        def column_address(b: int, matrix: str):
            """Bank b's address of column ``row`` of a skewed matrix, in this beat's segment."""
            lane = Mux(beat.row_mod <= b, b - beat.row_mod, b + P - beat.row_mod)
            return times_constant(times_constant(beat.segment, P) + lane, math.ceil(shapes[matrix][1] / P)) + beat.row_div

        def packed_address(b: int, part: Part):
            """Bank b's address in a packed beat: lane t holds synapse t mod length of row (or column)
            row + t - t mod length (eqprop.program.Part.slot_rows), its one segment."""
            lane = Mux(beat.row_mod <= b, b - beat.row_mod, b + P - beat.row_mod)
            synapse = Array([t % part.length for t in range(P)])[lane]
            offset = Array([t - t % part.length for t in range(P)])[lane]  # the lane's row, from the beat's first
            if not part.column:  # a row of at most P/2: one word per bank
                return beat.row + offset
            return times_constant(synapse, math.ceil(shapes[part.matrix][1] / P)) + beat.row_div + (beat.row_mod + offset >= P)

        with m.If(seq.issue), m.Switch(beat.part):
            for index, part in enumerate(parts):
                with m.Case(index):
                    if part.matrix:
                        for b, port in enumerate(ports.weight_rd[part.matrix]):
                            m.d.comb += port.en.eq(1)  # SPRAM-backed weights read only when asked
                            if part.packed > 1:
                                m.d.comb += port.addr.eq(packed_address(b, part))
                            else:
                                m.d.comb += port.addr.eq(column_address(b, part.matrix) if part.column else row_address(part.matrix))
                            if part.column and part.kind == K.UPDATE:
                                m.d.comb += issued.column_addresses[b].eq(port.addr)
                        m.d.comb += issued.weight_address.eq(row_address(part.matrix))
                    if part.kind == K.HOMEOSTASIS:  # the partner B_l[j, r] of W_l[r, j], a column of B_l
                        for b, port in enumerate(ports.weight_rd[f"B{part.layer}"]):
                            m.d.comb += [port.addr.eq(column_address(b, f"B{part.layer}")), issued.column_addresses[b].eq(port.addr)]
                    presynaptic = ports.input_rd if part.pre == 0 else [] if part.pre is None else [
                        port for buf in range(3) for port in ports.state_rd[(part.pre, buf)]]
                    for port in presynaptic:
                        m.d.comb += port.addr.eq(beat.segment)
                    if part.kind in (K.INPUT_DRIVE, K.RELAXATION):
                        m.d.comb += [issued.layer.eq(part.layer), issued.drive_row.eq(part.kind == K.INPUT_DRIVE)]
                    if part.kind == K.UPDATE:
                        post = part.layer if part.target == "B" else part.layer + 1
                        lanes_of_factors = part.target == "b" or part.column  # a bias's, or a B_l column's (layer l's e)
                        for port in (port for (_, l), banks in ports.factor_rd.items() if l == post for port in banks):
                            m.d.comb += port.addr.eq(beat.segment if lanes_of_factors else beat.row_div)
                        if part.column:  # a column update of B_l: the column's state s_{l+1, row}
                            for port in (port for buf in range(3) for port in ports.state_rd[(part.layer + 1, buf)]):
                                m.d.comb += port.addr.eq(beat.row_div)
                        if part.target == "b":
                            for port in ports.bias_rd[part.layer + 1]:
                                m.d.comb += port.addr.eq(beat.segment)
                    if part.kind == K.INPUT_UPDATE:
                        for port in ports.pending_rd:
                            m.d.comb += port.addr.eq(beat.row_div if packed else beat.row)
        return issued

    def _relaxation(self, m: Module, ports: "MemoryPorts", seq: Sequencer, issued: "Issued", words: "RegisteredWords", norm) -> NeuronUnit:
        """The rows of the input drive and the relaxation steps: the MAC lanes, then the neuron units
        (one per row of a packed beat), which write the state, the learning factors and W_0 x."""
        cfg, fx, arith, P = self.cfg, self.cfg.fixed, self.arith, self.lanes
        parts, K = words.parts, PassKind
        pre_width, pre_frac = presynaptic_operand(cfg)  # x and states meet the MAC lanes in one format
        pre_shift = {0: pre_frac - fx.input.n, None: pre_frac - fx.state.n}
        mac_parts = [i for i, p in enumerate(parts) if p.kind in (K.INPUT_DRIVE, K.RELAXATION) and p.matrix]
        packed = {i: p for i, p in enumerate(parts) if p.packed > 1}
        packings = list(dict.fromkeys((p.length, p.packed) for p in packed.values()))
        m.submodules.mac = mac = MacLanes(P, arith.weight_store, fx.weight, pre_width, pre_frac, fx.accumulator, tuple(packings))
        first_free_step = words.phase.first_free_step()
        for b in range(P):
            m.d.comb += mac.weights[b].eq(words.by_part({i: words.r(ports.weight_rd[parts[i].matrix][b]) for i in mac_parts}))
        pres = {i: words.pre_values(parts[i].pre, words.phase.read_buf) for i in mac_parts}
        for i, part in packed.items():  # lane t takes synapse t mod length of its row
            pres[i] = [pres[i][t % part.length] if t < part.packed * part.length else 0 for t in range(P)]
        for t in range(P):
            m.d.comb += mac.pres[t].eq(words.by_part({
                i: pres[i][t] << pre_shift[0] if parts[i].pre == 0 else Mux(first_free_step, 0, pres[i][t]) << pre_shift[None]
                for i in mac_parts}))
        at_read = words.at_read
        m.d.comb += [
            # a row without synapses (layer 1 of a network without hidden layers) still passes, masked
            mac.valid.eq(words.valid & words.in_parts(of_kind(parts, K.INPUT_DRIVE, K.RELAXATION))),
            mac.first.eq(delayed(m, seq.beat.first, at_read, "r_first")),
            mac.last.eq(delayed(m, seq.beat.last & seq.beat.ends_row, at_read, "r_last")),
            mac.mask.eq(words.mask),
            mac.rotate.eq(words.mod),
            mac.packing.eq(words.by_part({i: packings.index((p.length, p.packed)) + 1 for i, p in packed.items()})),
        ]
        to_neuron = MacLanes.latency(P) + at_read
        phase = phase_of_beat(m, seq, to_neuron, "n")
        common = {
            "nudged": phase.nudged, "negative": phase.negative,
            "first_update": phase.nudged & (phase.nudge_phase == 0) & (phase.step == 0),  # F starts from 0
            "last_free_step": ~phase.nudged & (phase.step == cfg.learning.T1 - 1),
        }
        units = []
        for unit, (row, mod, div) in enumerate(self._unit_rows(m, seq, packed)):
            at_neuron = {name: delayed(m, value, to_neuron, f"n{unit}_{name}") for name, value in (("row", row), ("mod", mod), ("div", div))}
            if unit == 0:
                at_neuron |= {name: delayed(m, value, to_neuron, f"n_{name}") for name, value in (("drive_row", issued.drive_row), ("layer", issued.layer))}
                valid, drive, layers = mac.done, mac.drive, range(1, cfg.network.n_layers + 1)
            else:  # a packed beat's further rows: layer 1's (eqprop.program.packing)
                at_neuron |= {"drive_row": 0, "layer": 1}
                valid = mac.done & delayed(m, seq.beat.packed_rows[unit], to_neuron, f"n{unit}_valid")
                drive, layers = mac.drives[unit], [1]
            inputs = {"valid": valid, "drive": drive, "label": seq.label_index, "norm": norm}
            units.append(self._neuron_unit(m, ports, words, phase, unit, at_neuron | common, layers, inputs))
        return units[0]

    def _unit_rows(self, m: Module, seq: Sequencer, packed: dict) -> list[tuple]:
        """``(row, row mod P, row // P)`` of each neuron unit's row in the beat issued: unit i takes
        row + i * length of a packed beat (eqprop.program.Part.slot_rows)."""
        beat, P = seq.beat, self.lanes
        rows = [(beat.row, beat.row_mod, beat.row_div)]
        for unit in range(1, seq.program.neuron_units):
            offset = select({i: unit * part.length for i, part in packed.items() if unit < part.packed}, beat.part, default=0,
                            size=len(seq.program.parts()))
            row, mod = Signal.like(beat.row, name=f"i_unit{unit}_row"), Signal(range(2 * P), name=f"i_unit{unit}_mod")
            m.d.comb += [row.eq(beat.row + offset), mod.eq(beat.row_mod + offset)]
            rows.append((row, Mux(mod >= P, mod - P, mod), beat.row_div + (mod >= P)))
        return rows

    def _neuron_unit(self, m: Module, ports: "MemoryPorts", words: "RegisteredWords", phase: BeatPhase, unit: int,
                     fields: dict, layers, inputs: dict) -> NeuronUnit:
        """Neuron unit ``unit``: its row's bias, old state, W_0 x and F from the banks (of ``layers``)
        its row is in, and its writes to them."""
        cfg, P = self.cfg, self.lanes
        m.submodules[f"neuron{unit}" if unit else "neuron"] = neuron = NeuronUnit(self.arith)
        mod, layer = fields["mod"], fields["layer"]
        own = lambda l, buf: select({b: words.r(ports.own_rd[(l, buf)][b]) for b in range(P)}, mod)  # noqa: E731
        fields |= {
            "bias": select({l: select({b: words.r(ports.bias_rd[l][b]) for b in range(P)}, mod) for l in layers}, layer),
            "w0x": self._neuron_word(words, ports.w0x_rd, mod),
            "old": select({l: select({buf: own(l, buf) for buf in range(3)}, phase.read_buf) for l in layers}, layer),
            "pending": self._neuron_word(words, ports.pending_rd, mod) if ports.pending_rd else 0,
        }
        for name in row_fields(self.arith):
            m.d.comb += getattr(neuron, name).eq(fields[name])
        m.d.comb += [getattr(neuron, name).eq(value) for name, value in inputs.items()]
        out_mod, out_div, out_write_buf, out_nudged = (delayed(m, value, neuron_stages(cfg), f"out{unit}_{name}") for name, value in (
            ("mod", mod), ("div", fields["div"]), ("write_buf", phase.write_buf), ("nudged", phase.nudged)))
        for l in layers:
            with m.If(neuron.state_valid & (neuron.out_layer == l)):
                for buf in range(3):
                    with m.If(out_write_buf == buf):
                        for b, port in enumerate(ports.state_wr[(l, buf)]):
                            with m.If(out_mod == b):
                                m.d.comb += [port.addr.eq(out_div), port.data.eq(neuron.state), port.en.eq(1)]
                for (name, layer_of), banks in ports.factor_wr.items():
                    if layer_of == l:
                        for b, port in enumerate(banks):
                            with m.If(out_mod == b):
                                m.d.comb += [port.addr.eq(out_div), port.data.eq(getattr(neuron.factors, name)), port.en.eq(out_nudged)]
        for banks, data, enable in ((ports.w0x_wr, neuron.out_w0x, neuron.w0x_valid), (ports.pending_wr, neuron.out_pending, neuron.pending_valid)):
            if len(banks) == 1:
                m.d.comb += [banks[0].addr.eq(neuron.out_row), banks[0].data.eq(data), banks[0].en.eq(enable)]
                continue
            for b, port in enumerate(banks):
                with m.If(enable & (out_mod == b)):
                    m.d.comb += [port.addr.eq(out_div), port.data.eq(data), port.en.eq(1)]
        return neuron

    def _neuron_word(self, words: "RegisteredWords", banks: list, mod):
        """A neuron's word of W_0 x or F: its bank's, where they are striped (:func:`eqprop.layout.neuron_banks`)."""
        return select({b: words.r(port) for b, port in enumerate(banks)}, mod) if len(banks) > 1 else words.r(banks[0])

    def _updates(self, m: Module, ports: "MemoryPorts", seq: Sequencer, issued: "Issued", words: "RegisteredWords", lfsr: LfsrUnit) -> None:
        """Continual updates, the deferred input-layer update and homeostasis: the update lanes read
        each word with its operands and write it back."""
        cfg, fx, arith, P, tied = self.cfg, self.cfg.fixed, self.arith, self.lanes, self.cfg.network.tied
        parts, K = words.parts, PassKind
        update_parts = of_kind(parts, K.UPDATE, K.INPUT_UPDATE, K.HOMEOSTASIS)
        phase = words.phase
        roundings = {i: update_rounding(arith, parts[i]) for i in update_parts}
        distinct = list(dict.fromkeys(roundings.values()))
        stages = pipeline(cfg)
        m.submodules.update = update = UpdateLanes(
            P, max(arith.weight_store.width, arith.bias_store.width), max(fx.state.width, fx.input.width + 1, fx.update.width),
            update_factor_width(cfg), distinct, arith.lam, fx.stochastic_rounding, fx.lfsr.width, stages=stages.update_stages,
        )

        def factor_of(name: str, layer: int):
            """The row's learning factor (bank ``row mod P`` of its memory)."""
            return select({b: words.r(ports.factor_rd[(name, layer)][b]) for b in range(P)}, words.mod)

        def lanes_factors(name: str, layer: int) -> list:
            """Lane t's learning factor: bank t's word, of the beat's segment."""
            return [words.r(ports.factor_rd[(name, layer)][t]) for t in range(P)]

        stored, partner, pre_a, pre_b, fa, fb = ({} for _ in range(6))
        for i in update_parts:
            part, l = parts[i], parts[i].layer
            if part.target == "b":
                stored[i] = [words.r(ports.bias_rd[l + 1][b]) for b in range(P)]
                names = ("u", "v") if tied else ("d", None)
                pre_a[i] = lanes_factors(names[0], l + 1)
                pre_b[i] = lanes_factors(names[1], l + 1) if names[1] else [0] * P
                continue
            stored[i] = [words.r(ports.weight_rd[part.matrix][b]) for b in range(P)]
            if part.kind == K.HOMEOSTASIS:
                partner[i] = [words.r(ports.weight_rd[f"B{l}"][b]) for b in range(P)]
            elif part.kind == K.INPUT_UPDATE:  # F_i x_j: the sign is in F already
                pre_a[i], fa[i] = words.pre_values(0, phase.read_buf), self._neuron_word(words, ports.pending_rd, words.mod)
            elif part.target == "B" and part.column:  # lane t: e_t of the segment times the column's s_{l+1}
                pre_a[i] = lanes_factors("e", l)
                fa[i] = select(dict(enumerate(words.pre_values(l + 1, phase.read_buf))), words.mod)
            elif part.target == "B":
                pre_a[i], fa[i] = words.pre_values(l + 1, phase.read_buf), factor_of("e", l)
            elif tied:
                pre_a[i], fa[i] = words.pre_values(l, phase.write_buf), factor_of("u", l + 1)
                pre_b[i], fb[i] = words.pre_values(l, phase.read_buf), factor_of("v", l + 1)
            else:
                pre_a[i], fa[i] = words.pre_values(l, phase.read_buf), factor_of("d", l + 1)
        lane = lambda values, t: words.by_part({i: v[t] for i, v in values.items()})  # noqa: E731
        for t in range(P):
            m.d.comb += [
                update.stored[t].eq(lane(stored, t)), update.partner[t].eq(lane(partner, t)),
                update.pre_a[t].eq(lane(pre_a, t)), update.pre_b[t].eq(lane(pre_b, t)), update.noise[t].eq(lfsr.words[t]),
            ]
        m.d.comb += [
            update.valid.eq(words.valid & words.in_parts(update_parts)),
            update.mask.eq(words.mask),
            update.rotate.eq(words.mod),
            update.bias.eq(words.in_parts([i for i in update_parts if parts[i].target == "b"])),
            update.homeostasis.eq(words.in_parts(of_kind(parts, K.HOMEOSTASIS))),
            update.negate.eq(phase.negative & words.in_parts(of_kind(parts, K.UPDATE))),
            update.rounding.eq(words.by_part({i: distinct.index(rounding) for i, rounding in roundings.items()})),
            update.fa.eq(words.by_part(fa)),
            update.fb.eq(words.by_part(fb)),
            # a random-sign phase's sign is drawn between passes, when the lanes draw nothing
            lfsr.advance.eq(Mux(seq.draw, 1, update.draws)),
        ]
        # the new words leave the lanes this many cycles after their beat's issue
        latency = stages.weight_write_latency
        w_part = delayed(m, seq.beat.part, latency, "w_part")
        w_addr, w_segment = delayed(m, issued.weight_address, latency, "w_addr"), delayed(m, seq.beat.segment, latency, "w_segment")
        w_baddr = [delayed(m, issued.column_addresses[b], latency, f"w_baddr{b}") for b in range(P)]
        for i in update_parts:
            part = parts[i]
            with m.If(w_part == i):
                if part.target == "b":
                    targets = [(ports.bias_wr[part.layer + 1], update.words, [w_segment] * P)]
                else:
                    targets = [(ports.weight_wr[part.matrix], update.words, w_baddr if part.column else [w_addr] * P)]
                if part.kind == K.HOMEOSTASIS:
                    targets.append((ports.weight_wr[f"B{part.layer}"], update.partner_words, w_baddr))
                for banks, new_words, addresses in targets:
                    for b, port in enumerate(banks):
                        m.d.comb += [port.addr.eq(addresses[b]), port.data.eq(new_words[b]), port.en.eq(update.write[b])]
