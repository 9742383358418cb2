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
  banks; ``W_0 x`` (and the deferred factors F) in one memory each; x in P banks.

Every write to a state, ``W_0 x``, weight or bias memory is also driven onto the ``trace`` output
(one ``en``/``addr``/``data`` group per memory bank, :func:`trace_ports`), like RISC-V's formal
interface: verification watches the core through it (:mod:`eqprop.sim`), and a design that leaves it
unconnected (the SoC) loses it in synthesis.

Pipeline: the sequencer issues a beat's addresses in one cycle; the memories answer in the next,
and (except on the iCE40, :func:`eqprop.program.pipeline`) their words are registered again.
Then a relaxation or input-drive beat goes through the MAC lanes (:mod:`eqprop.hw.mac`) and, at a
row's end, the neuron unit (:mod:`eqprop.hw.neuron`), which writes the state, the learning factors
and ``W_0 x``; an update or homeostasis beat goes through the update lanes (:mod:`eqprop.hw.update`),
which write the weights back. The passes, their parts and drains come from the pass program
(:class:`eqprop.program.Program`): the sequencer has one state per part and one drain state per
pass, named after them, and the latencies are the program's constants.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqprop.config import Config, phase_count
from eqprop.errors import ConfigError
from eqprop.golden import Arith
from eqprop.layout import (
    bank_depth, param_names, param_shapes, parameter_depths, parameters_from_words,
    skewed_banks, striped_banks, trace_ports,
)
from eqprop.program import PassKind, Program, neuron_stages, pipeline

from .arith import shape_of, square
from .devices import check_device, presynaptic_operand, spram_matrices
from .lanes import delayed
from .lfsr import LfsrUnit
from .mac import MacLanes
from .memories import ParityStore
from .neuron import NeuronUnit, row_fields
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
    arith, sizes, P = Arith.from_config(cfg), cfg.network.sizes, cfg.hardware.lanes
    word = signed(max(arith.weight_store.width, arith.bias_store.width))
    access = data.StructLayout({
        "memory": range(max(2, len(param_names(cfg.network)))),
        "bank": range(max(2, P)),
        "address": range(max(parameter_depths(cfg)) + 1),
        "write": 1,
        "data": word,
    })
    trace = wiring.Signature({
        port.name: Out(wiring.Signature({"en": Out(1), "addr": Out(range(port.depth)), "data": Out(signed(port.width))}))
        for port in trace_ports(cfg)
    })
    return wiring.Signature({
        "trace": Out(trace),
        "param": In(stream.Signature(access)),
        "param_read": Out(stream.Signature(word)),
        "x": In(stream.Signature(shape_of(cfg.fixed.input))),
        "label": In(stream.Signature(data.StructLayout({"index": range(max(2, sizes[-1])), "train": 1}))),
        "prediction": Out(stream.Signature(range(max(2, sizes[-1])))),
        "cycles": Out(32),
        "busy": Out(1),
    })


class Core(wiring.Component):
    """The learning core: stream x and a label in, get the (free-phase) prediction out.

    ``params`` are the golden model's stored integers (the memories' initial contents). The
    ``label`` stream's ``train`` bit chooses between learning the sample and inference only. On an
    FPGA with SPRAM the weight matrices W_l live there (:mod:`eqprop.hw.memories`), built from
    SB_SPRAM256KA instances when ``primitives`` (for Verilog) or from a model of them (for the
    Amaranth simulator); SPRAM has no initial contents, so those weights come through ``param``.
    """

    def __init__(self, cfg: Config, params: dict[str, np.ndarray] | None = None, primitives: bool = False) -> None:
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
        depths = {name: bank_depth(shapes[name], P) for name in in_spram}
        self.weight_stores = [ParityStore(depths, shape_of(self.arith.weight_store), primitives) for _ in range(P)] if in_spram else []
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
        self.w0x = Memory(shape=shape_of(fx.accumulator), depth=sizes[1], init=[])
        # F, the deferred input-layer row factors (eqprop.golden), when W_0's updates are deferred
        self.pending = Memory(shape=shape_of(fx.update), depth=sizes[1], init=[]) if cfg.hardware.defer_input_updates else None
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
        cfg, fx, arith, P = self.cfg, self.cfg.fixed, self.arith, self.lanes
        n, L, tied, learn = cfg.network.sizes, cfg.network.n_layers, cfg.network.tied, cfg.learning

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
        m.submodules.w0x = self.w0x
        if self.pending is not None:
            m.submodules.pending = self.pending

        weight_rd = {k: [mem.read_port() for mem in v] for k, v in self.weights.items()}
        weight_rd |= {k: [segment.read for segment in v] for k, v in self.weight_segments.items()}
        weight_wr = {k: [mem.write_port() for mem in v] for k, v in self.weights.items()}
        weight_wr |= {k: [segment.write for segment in v] for k, v in self.weight_segments.items()}
        bias_rd = {k: [mem.read_port() for mem in v] for k, v in self.biases.items()}
        bias_wr = {k: [mem.write_port() for mem in v] for k, v in self.biases.items()}
        input_rd = [mem.read_port() for mem in self.inputs]
        input_wr = [mem.write_port() for mem in self.inputs]
        state_rd = {k: [mem.read_port() for mem in v] for k, v in self.states.items()}  # presynaptic segments
        own_rd = {k: [mem.read_port() for mem in v] for k, v in self.states.items()}  # a neuron's old state
        state_wr = {k: [mem.write_port() for mem in v] for k, v in self.states.items()}
        factor_rd = {k: [mem.read_port() for mem in v] for k, v in self.factors.items()}
        factor_wr = {k: [mem.write_port() for mem in v] for k, v in self.factors.items()}
        w0x_rd, w0x_wr = self.w0x.read_port(), self.w0x.write_port()
        pending_rd, pending_wr = (self.pending.read_port(), self.pending.write_port()) if self.pending is not None else (None, None)
        # Every state, W_0 x, weight and bias write on the trace output: what a scoreboard watches
        # (eqprop.schedule.sample_trace gives each one's cycle and value).
        traced = {"w0x": w0x_wr}
        traced |= {f"s{l}_buf{buf}_bank{b}": port for (l, buf), ports in state_wr.items() for b, port in enumerate(ports)}
        traced |= {f"{name}_bank{b}": port for name, ports in weight_wr.items() for b, port in enumerate(ports)}
        traced |= {f"b{l}_bank{b}": port for l, ports in bias_wr.items() for b, port in enumerate(ports)}
        for port in self.traced:
            out, write = getattr(self.trace, port.name), traced[port.name]
            m.d.comb += [out.en.eq(write.en), out.addr.eq(write.addr), out.data.eq(write.data)]

        m.submodules.lfsr = lfsr = LfsrUnit(fx.lfsr, P)
        program = Program.of(cfg)
        parts = program.parts()
        K = PassKind
        # the parts whose rows interleave with part i's (a relaxation layer's forward and backward rows)
        siblings = {parts.index(part): [parts.index(p) for p in group.parts] for p in program.passes() for group in p.groups for part in group.parts}
        of_kind = lambda *kinds: [i for i, p in enumerate(parts) if p.kind in kinds]  # noqa: E731
        deferred = cfg.hardware.defer_input_updates
        shapes = param_shapes(cfg.network)

        # -- controller state ------------------------------------------------------------------
        row = Signal(range(max(n) + 1))
        row_mod = Signal(range(P))  # row % P
        row_div = Signal(range(max(n) // P + 2))  # row // P
        segment = Signal(range(max(p.beats for p in parts) + 1))
        step = Signal(range(max(learn.T1, learn.T2) + 1))
        nudged = Signal()  # in the nudged phases (else the free phase)
        phase = Signal(range(phase_count(learn.nudging) + 1))
        negative = Signal()  # this phase nudges with -beta
        read_buf, write_buf, star_buf = Signal(2), Signal(2, init=1), Signal(2, init=2)
        train, label = Signal(), Signal(range(max(2, n[-1])))
        drain = Signal(range(max(p.drain for p in program.passes()) + 1))
        loaded = Signal(range(n[0] + 1))
        loaded_mod, loaded_div = Signal(range(P)), Signal(range(n[0] // P + 2))
        issue = Signal()
        part_index = Signal(range(len(parts)))
        last_free_step = Signal()
        m.d.comb += last_free_step.eq(~nudged & (step == learn.T1 - 1))

        stages = pipeline(cfg)
        pre_width, pre_frac = presynaptic_operand(cfg)  # x and states meet the MAC lanes in one format
        update_pre_width = max(fx.state.width, fx.input.width + 1, fx.update.width)

        # -- issue: what a beat is, in the cycle its addresses go out -------------------------
        i_first, i_last, i_ends_row = Signal(), Signal(), Signal()
        i_mask = Signal(P)
        waddr_range = range(max(bank_depth(shape, P) for name, shape in shapes.items() if name[0] != "b") + 1)
        i_waddr = Signal(waddr_range)
        i_baddr = [Signal(waddr_range, name=f"i_baddr{b}") for b in range(P)]  # B_l, read by column
        norm = Signal(range(n[0] * (1 << 2 * fx.input.width) + 1))  # ||x||^2, 2n input fraction bits

        def issued(value, cycles: int, name: str):
            """An issue-time value as it is ``cycles`` cycles after the beat's issue."""
            return delayed(m, value, cycles, f"i_{name}")

        # What the neuron unit needs of a row beside its drive (old state, bias, W_0 x, F) is read
        # late, so that it arrives with the drive: the addresses wait, not the words.
        i_layer, i_drive_row = Signal(range(L + 1)), Signal()
        arrive = MacLanes.latency(P)  # the row's drive leaves the lanes this many cycles after its operands
        late = {name: issued(value, arrive, f"late_{name}") for name, value in (("row", row), ("div", row_div))}
        for l in range(1, L + 1):
            for b in range(P):
                m.d.comb += bias_rd[l][b].addr.eq(late["div"])
                for buf in range(3):
                    m.d.comb += own_rd[(l, buf)][b].addr.eq(late["div"])
        m.d.comb += w0x_rd.addr.eq(late["row"])
        if pending_rd is not None:
            m.d.comb += pending_rd.addr.eq(late["row"])

        # one case per part (a parallel multiplexer, not a chain of ifs)
        with m.If(issue), m.Switch(part_index):
            for index, part in enumerate(parts):
                with m.Case(index):
                    if part.matrix:
                        per_row = math.ceil(shapes[part.matrix][1] / P)
                        for b, port in enumerate(weight_rd[part.matrix]):
                            m.d.comb += port.en.eq(1)  # SPRAM-backed weights read only when asked
                            if part.column:
                                lane = Mux(row_mod <= b, b - row_mod, b + P - row_mod)
                                m.d.comb += port.addr.eq((segment * P + lane) * per_row + row_div)
                            else:
                                m.d.comb += port.addr.eq(row * per_row + segment)
                        m.d.comb += i_waddr.eq(row * per_row + segment)
                    if part.kind == K.HOMEOSTASIS:  # the partner B_l[j, r] of W_l[r, j], a column of B_l
                        per_row_b = math.ceil(shapes[f"B{part.layer}"][1] / P)
                        for b, port in enumerate(weight_rd[f"B{part.layer}"]):
                            lane = Mux(row_mod <= b, b - row_mod, b + P - row_mod)
                            address = (segment * P + lane) * per_row_b + row_div
                            m.d.comb += [port.addr.eq(address), i_baddr[b].eq(address)]
                    if part.pre == 0:
                        for port in input_rd:
                            m.d.comb += port.addr.eq(segment)
                    elif part.pre is not None:
                        for buf in range(3):
                            for port in state_rd[(part.pre, buf)]:
                                m.d.comb += port.addr.eq(segment)
                    if part.kind in (K.INPUT_DRIVE, K.RELAXATION):
                        m.d.comb += [i_layer.eq(part.layer), i_drive_row.eq(part.kind == K.INPUT_DRIVE)]
                    if part.kind == K.UPDATE:
                        post = part.layer if part.target == "B" else part.layer + 1
                        for (_, l), ports in factor_rd.items():
                            if l == post:
                                for port in ports:
                                    m.d.comb += port.addr.eq(segment if part.target == "b" else row_div)
                        if part.target == "b":
                            for port in bias_rd[part.layer + 1]:
                                m.d.comb += port.addr.eq(segment)
                    if part.kind == K.INPUT_UPDATE:
                        m.d.comb += pending_rd.addr.eq(row)
                    m.d.comb += [
                        i_first.eq((segment == 0) if index == siblings[index][0] else 0),
                        i_last.eq(segment == part.beats - 1),
                        i_ends_row.eq(index == siblings[index][-1]),
                        i_mask.eq(Cat(*[(segment * P + t) < part.length for t in range(P)]) if part.length else 0),
                    ]

        # -- r_: the memories' words, registered (their output registers) --------------------
        registered: dict[int, Signal] = {}

        def r(port):
            if id(port) not in registered:
                registered[id(port)] = delayed(m, port.data, stages.read_stages - 1, "r")
            return registered[id(port)]

        def select(options: dict, selector, default=None, size=None):
            """``options[key]`` for the ``selector`` value equal to ``key`` (``default``, or the first
            option, for a key not listed): one parallel multiplexer, not a chain, so that a choice
            among P banks stays shallow as P grows."""
            keys = list(options)
            if len(keys) == 1 and default is None:
                return options[keys[0]]
            fill = options[keys[0]] if default is None else default
            return Array([options.get(key, fill) for key in range(size or max(keys) + 1)])[selector]

        at_read = stages.read_stages  # the beat's words are in the r_ registers this many cycles after issue
        r_part, r_mod = issued(part_index, at_read, "part"), issued(row_mod, at_read, "mod")
        r_valid, r_mask = issued(issue, at_read, "valid"), issued(i_mask, at_read, "mask")
        in_parts = lambda selector, indices: reduce(lambda a, b: a | b, [selector == i for i in indices], 0)  # noqa: E731

        def by_part(values: dict):
            """``values[part]`` of the part in the r_ registers; 0 for a part not listed."""
            return select(values, r_part, default=0, size=len(parts)) if values else 0

        pre_shift = {"x": pre_frac - fx.input.n, "s": pre_frac - fx.state.n}

        def pre_values(layer: int, buffer) -> list:
            """Lane t's presynaptic value of ``layer`` (0: x) from the r_ registers, ``buffer`` for states."""
            if layer == 0:
                return [r(input_rd[t]) for t in range(P)]
            return [select({buf: r(state_rd[(layer, buf)][t]) for buf in range(3)}, buffer) for t in range(P)]

        # -- MAC lanes: the rows of the input drive and the relaxation steps -------------------
        mac_parts = [i for i, p in enumerate(parts) if p.kind in (K.INPUT_DRIVE, K.RELAXATION) and p.matrix]
        m.submodules.mac = mac = MacLanes(P, arith.weight_store, fx.weight, pre_width, pre_frac, fx.accumulator)
        first_free_step = ~nudged & (step == 0)  # the states' memories still hold the last sample's
        for b in range(P):
            m.d.comb += mac.weights[b].eq(by_part({i: r(weight_rd[parts[i].matrix][b]) for i in mac_parts}))
        for t in range(P):
            pres = {}
            for i in mac_parts:
                values = pre_values(parts[i].pre, read_buf)
                pres[i] = values[t] << pre_shift["x"] if parts[i].pre == 0 else Mux(first_free_step, 0, values[t]) << pre_shift["s"]
            m.d.comb += mac.pres[t].eq(by_part(pres))
        m.d.comb += [
            # a row without synapses (layer 1 of a network without hidden layers) still passes, masked
            mac.valid.eq(r_valid & in_parts(r_part, of_kind(K.INPUT_DRIVE, K.RELAXATION))),
            mac.first.eq(issued(i_first, at_read, "first")),
            mac.last.eq(issued(i_last & i_ends_row, at_read, "last")),
            mac.mask.eq(r_mask),
            mac.rotate.eq(r_mod),
        ]

        # -- the neuron unit: a row's drive, with what the row read beside its synapses ---------
        m.submodules.neuron = neuron = NeuronUnit(arith)
        at_neuron = {name: issued(value, arrive + at_read, f"n_{name}")
                     for name, value in (("drive_row", i_drive_row), ("layer", i_layer), ("row", row), ("mod", row_mod), ("div", row_div))}
        at_neuron |= {
            "bias": select({l: select({b: r(bias_rd[l][b]) for b in range(P)}, at_neuron["mod"]) for l in range(1, L + 1)}, at_neuron["layer"]),
            "w0x": r(w0x_rd),
            "old": select({l: select({buf: select({b: r(own_rd[(l, buf)][b]) for b in range(P)}, at_neuron["mod"]) for buf in range(3)}, read_buf)
                           for l in range(1, L + 1)}, at_neuron["layer"]),
            "pending": r(pending_rd) if pending_rd is not None else 0,
        }
        for name in row_fields(arith):
            m.d.comb += getattr(neuron, name).eq(at_neuron[name])
        m.d.comb += [
            neuron.valid.eq(mac.done), neuron.drive.eq(mac.drive),
            neuron.nudged.eq(nudged), neuron.negative.eq(negative), neuron.first_update.eq(nudged & (phase == 0) & (step == 0)),
            neuron.last_free_step.eq(last_free_step), neuron.label.eq(label), neuron.norm.eq(norm),
        ]
        out_mod, out_div = (delayed(m, at_neuron[name], neuron_stages(cfg), f"out_{name}") for name in ("mod", "div"))
        for l in range(1, L + 1):
            with m.If(neuron.state_valid & (neuron.out_layer == l)):
                for buf in range(3):
                    with m.If(write_buf == buf):
                        for b, port in enumerate(state_wr[(l, buf)]):
                            m.d.comb += [port.addr.eq(out_div), port.data.eq(neuron.state), port.en.eq(out_mod == b)]
                for (name, layer), ports in factor_wr.items():
                    if layer == l:
                        for b, port in enumerate(ports):
                            m.d.comb += [port.addr.eq(out_div), port.data.eq(getattr(neuron.factors, name)), port.en.eq(nudged & (out_mod == b))]
        m.d.comb += [w0x_wr.addr.eq(neuron.out_row), w0x_wr.data.eq(neuron.out_w0x), w0x_wr.en.eq(neuron.w0x_valid)]
        if pending_wr is not None:
            m.d.comb += [pending_wr.addr.eq(neuron.out_row), pending_wr.data.eq(neuron.out_pending), pending_wr.en.eq(neuron.pending_valid)]

        # -- update lanes: continual updates, the deferred input-layer update, homeostasis ------
        update_parts = [i for i, p in enumerate(parts) if p.kind in (K.UPDATE, K.INPUT_UPDATE, K.HOMEOSTASIS)]
        roundings, rounding_of = [], {}
        for i in update_parts:
            part = parts[i]
            if part.kind == K.HOMEOSTASIS:
                rounding = Rounding(fx.factor.n + arith.weight_store.n, arith.weight_store)
            elif part.target == "b":
                rounding = Rounding(fx.update.n, arith.bias_store)
            else:
                rounding = Rounding(fx.update.n + (fx.state.n if part.target == "B" else arith.pre_frac(part.layer)), arith.weight_store)
            if rounding not in roundings:
                roundings.append(rounding)
            rounding_of[i] = roundings.index(rounding)
        word_width = max(arith.weight_store.width, arith.bias_store.width)
        m.submodules.update = update = UpdateLanes(
            P, word_width, update_pre_width, fx.update, roundings, arith.lam, fx.stochastic_rounding, fx.lfsr.width,
            stages=stages.update_stages,
        )

        def factor_of(name: str, layer: int):
            """The row's learning factor (bank ``row mod P`` of its memory)."""
            return select({b: r(factor_rd[(name, layer)][b]) for b in range(P)}, r_mod)

        stored, partner, pre_a, pre_b, fa, fb = ({} for _ in range(6))
        for i in update_parts:
            part, l = parts[i], parts[i].layer
            if part.target == "b":
                stored[i] = [r(bias_rd[l + 1][b]) for b in range(P)]
                names = ("u", "v") if tied else ("d", None)
                pre_a[i] = [r(factor_rd[(names[0], l + 1)][t]) for t in range(P)]
                pre_b[i] = [r(factor_rd[(names[1], l + 1)][t]) for t in range(P)] if names[1] else [0] * P
                continue
            stored[i] = [r(weight_rd[part.matrix][b]) for b in range(P)]
            if part.kind == K.HOMEOSTASIS:
                partner[i] = [r(weight_rd[f"B{l}"][b]) for b in range(P)]
            elif part.kind == K.INPUT_UPDATE:  # F_i x_j: the sign is in F already
                pre_a[i], fa[i] = pre_values(0, read_buf), r(pending_rd)
            elif part.target == "B":
                pre_a[i], fa[i] = pre_values(l + 1, read_buf), factor_of("e", l)
            elif tied:
                pre_a[i], fa[i] = pre_values(l, write_buf), factor_of("u", l + 1)
                pre_b[i], fb[i] = pre_values(l, read_buf), factor_of("v", l + 1)
            else:
                pre_a[i], fa[i] = pre_values(l, read_buf), factor_of("d", l + 1)
        lanes_of = lambda values, t: {i: v[t] for i, v in values.items()}  # noqa: E731
        for t in range(P):
            m.d.comb += [
                update.stored[t].eq(by_part(lanes_of(stored, t))),
                update.partner[t].eq(by_part(lanes_of(partner, t)) if partner else 0),
                update.pre_a[t].eq(by_part(lanes_of(pre_a, t)) if pre_a else 0),
                update.pre_b[t].eq(by_part(lanes_of(pre_b, t)) if pre_b else 0),
                update.noise[t].eq(lfsr.words[t]),
            ]
        m.d.comb += [
            update.valid.eq(r_valid & in_parts(r_part, update_parts)),
            update.mask.eq(r_mask),
            update.rotate.eq(r_mod),
            update.bias.eq(in_parts(r_part, [i for i in update_parts if parts[i].target == "b"])),
            update.homeostasis.eq(in_parts(r_part, [i for i in update_parts if parts[i].kind == K.HOMEOSTASIS])),
            update.negate.eq(negative & in_parts(r_part, [i for i in update_parts if parts[i].kind == K.UPDATE])),
            update.rounding.eq(by_part(rounding_of)),
            update.fa.eq(by_part(fa) if fa else 0),
            update.fb.eq(by_part(fb) if fb else 0),
            lfsr.advance.eq(update.draws),
        ]
        # the new words leave the lanes this many cycles after their beat's issue
        write_latency = stages.weight_write_latency
        w_part = issued(part_index, write_latency, "w_part")
        w_addr, w_segment = issued(i_waddr, write_latency, "w_addr"), issued(segment, write_latency, "w_segment")
        w_baddr = [issued(i_baddr[b], write_latency, f"w_baddr{b}") for b in range(P)]
        for i in update_parts:
            part = parts[i]
            with m.If(w_part == i):
                if part.target == "b":
                    targets = [(bias_wr[part.layer + 1], update.words, [w_segment] * P)]
                else:
                    targets = [(weight_wr[part.matrix], update.words, [w_addr] * P)]
                if part.kind == K.HOMEOSTASIS:
                    targets.append((weight_wr[f"B{part.layer}"], update.partner_words, w_baddr))
                for ports, words, addresses in targets:
                    for b, port in enumerate(ports):
                        m.d.comb += [port.addr.eq(addresses[b]), port.data.eq(words[b]), port.en.eq(update.write[b])]

        # -- controller ----------------------------------------------------------------------
        def restart_rows():
            m.d.sync += [segment.eq(0), row.eq(0), row_mod.eq(0), row_div.eq(0)]

        def next_row():
            m.d.sync += [segment.eq(0), row.eq(row + 1)]
            with m.If(row_mod == P - 1):
                m.d.sync += [row_mod.eq(0), row_div.eq(row_div + 1)]
            with m.Else():
                m.d.sync += row_mod.eq(row_mod + 1)

        def third(a, b):
            """The buffer that is neither ``a`` nor ``b``."""
            return (3 - a - b)[:2]

        counting = Signal()
        with m.If(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += self.busy.eq(counting)
        # the param port's read replies: the word is captured the cycle after its request
        reply_pending, reply_capture = Signal(), Signal()
        reply_memory, reply_bank = Signal.like(self.param.payload.memory), Signal.like(self.param.payload.bank)
        reply_word = Signal.like(self.param_read.payload)
        m.d.sync += reply_capture.eq(0)
        with m.If(reply_capture):
            for memory, name in enumerate(param_names(cfg.network)):
                reads = bias_rd[int(name[1:])] if name[0] == "b" else weight_rd[name]
                with m.If(reply_memory == memory):
                    for b in range(P):
                        with m.If(reply_bank == b):
                            m.d.sync += reply_word.eq(reads[b].data)
        m.d.comb += [self.param_read.valid.eq(reply_pending & ~reply_capture), self.param_read.payload.eq(reply_word)]
        with m.If(self.param_read.valid & self.param_read.ready):
            m.d.sync += reply_pending.eq(0)
        period = learn.homeostasis_period
        since = Signal(range(period + 1))  # training samples since the last homeostasis pass
        first_part = {p.kind: p.parts[0].name for p in program.passes()}

        def start_phase(first: bool):
            """The sign of a nudged phase: symmetric alternates, random-sign draws bit 0 of an LFSR word."""
            if learn.nudging == "random-sign":
                m.d.comb += lfsr.advance.eq(1)
                m.d.sync += negative.eq(lfsr.words[0][0])
            else:
                m.d.sync += negative.eq(0 if first else 1)

        def next_step():
            m.d.sync += [step.eq(step + 1), read_buf.eq(write_buf), write_buf.eq(third(star_buf, write_buf))]
            m.next = first_part[K.RELAXATION]

        def finish_sample():
            if program.homeostasis is None:
                m.next = "OUTPUT"
                return
            with m.If(since == period - 1):
                m.d.sync += since.eq(0)
                m.next = first_part[K.HOMEOSTASIS]
            with m.Else():
                m.d.sync += since.eq(since + 1)
                m.next = "OUTPUT"

        def after_relaxation():
            with m.If(nudged):
                m.next = first_part[K.UPDATE]
            with m.Elif(step != learn.T1 - 1):
                next_step()
            with m.Elif(train):  # s* is in write_buf: keep it for every nudged phase
                m.d.sync += [
                    nudged.eq(1), step.eq(0), star_buf.eq(write_buf), read_buf.eq(write_buf),
                    write_buf.eq(Mux(write_buf == 2, 0, write_buf + 1)),
                ]
                start_phase(first=True)
                m.next = first_part[K.RELAXATION]
            with m.Else():
                m.next = "OUTPUT"

        def after_update():
            if program.input_update is None:  # literal input updates: W_0 x again, from the new W_0
                m.next = first_part[K.INPUT_DRIVE]
            else:
                after_nudged_step()

        def after_nudged_step():
            with m.If(step != learn.T2 - 1):
                next_step()
            with m.Elif(phase != phase_count(learn.nudging) - 1):
                m.d.sync += [phase.eq(phase + 1), step.eq(0), read_buf.eq(star_buf), write_buf.eq(Mux(star_buf == 2, 0, star_buf + 1))]
                start_phase(first=False)
                m.next = first_part[K.RELAXATION]
            with m.Else():
                if program.input_update is not None:
                    m.next = first_part[K.INPUT_UPDATE]
                else:
                    finish_sample()

        def after_input_drive():
            with m.If(nudged):
                after_nudged_step()
            with m.Else():
                m.next = first_part[K.RELAXATION]

        def after_homeostasis():
            m.next = "OUTPUT"

        after = {
            K.INPUT_DRIVE: after_input_drive, K.RELAXATION: after_relaxation, K.UPDATE: after_update,
            K.INPUT_UPDATE: finish_sample, K.HOMEOSTASIS: after_homeostasis,
        }

        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += [self.x.ready.eq(1), self.param.ready.eq(~reply_pending)]
                request = self.param.payload
                with m.If(self.param.valid & ~reply_pending):
                    for memory, name in enumerate(param_names(cfg.network)):
                        reads, writes = (bias_rd[int(name[1:])], bias_wr[int(name[1:])]) if name[0] == "b" else (weight_rd[name], weight_wr[name])
                        with m.If(request.memory == memory):
                            for b in range(P):
                                with m.If(request.bank == b):
                                    m.d.comb += [reads[b].addr.eq(request.address), writes[b].addr.eq(request.address), writes[b].data.eq(request.data)]
                                    m.d.comb += [reads[b].en.eq(~request.write), writes[b].en.eq(request.write)]
                    with m.If(~request.write):
                        m.d.sync += [reply_pending.eq(1), reply_capture.eq(1), reply_memory.eq(request.memory), reply_bank.eq(request.bank)]
                for b, port in enumerate(input_wr):
                    m.d.comb += [port.addr.eq(loaded_div), port.data.eq(self.x.payload), port.en.eq(self.x.valid & (loaded_mod == b))]
                with m.If(self.x.valid):
                    if deferred:
                        m.d.sync += norm.eq(Mux(loaded == 0, 0, norm) + square(self.x.payload))
                    with m.If(loaded == n[0] - 1):
                        m.d.sync += [loaded.eq(0), loaded_mod.eq(0), loaded_div.eq(0)]
                        m.next = "LABEL"
                    with m.Else():
                        m.d.sync += loaded.eq(loaded + 1)
                        with m.If(loaded_mod == P - 1):
                            m.d.sync += [loaded_mod.eq(0), loaded_div.eq(loaded_div + 1)]
                        with m.Else():
                            m.d.sync += loaded_mod.eq(loaded_mod + 1)
            with m.State("LABEL"):
                m.d.comb += self.label.ready.eq(1)
                with m.If(self.label.valid):
                    m.d.sync += [
                        label.eq(self.label.payload.index), train.eq(self.label.payload.train), self.cycles.eq(0),
                        step.eq(0), nudged.eq(0), phase.eq(0), negative.eq(0),
                        read_buf.eq(0), write_buf.eq(1), star_buf.eq(2),
                    ]
                    restart_rows()
                    m.next = parts[0].name
            for pass_ in program.passes():
                for part in pass_.parts:
                    index, group = parts.index(part), siblings[parts.index(part)]
                    with m.State(part.name):
                        m.d.comb += [issue.eq(1), part_index.eq(index), counting.eq(1)]
                        with m.If(segment == part.beats - 1):
                            if index != group[-1]:  # the row goes on in the group's next part
                                m.d.sync += segment.eq(0)
                                m.next = parts[index + 1].name
                            else:
                                with m.If(row == part.rows - 1):
                                    restart_rows()
                                    if part is not pass_.parts[-1]:
                                        m.next = parts[index + 1].name
                                    else:
                                        m.d.sync += drain.eq(0)
                                        m.next = f"drain_{pass_.kind.name.lower()}"
                                with m.Else():
                                    next_row()
                                    m.next = parts[group[0]].name
                        with m.Else():
                            m.d.sync += segment.eq(segment + 1)
                # the pass's last writes land before the next pass reads them
                with m.State(f"drain_{pass_.kind.name.lower()}"):
                    m.d.comb += counting.eq(1)
                    m.d.sync += drain.eq(drain + 1)
                    with m.If(drain == pass_.drain - 1):
                        after[pass_.kind]()
            with m.State("OUTPUT"):
                m.d.comb += [self.prediction.valid.eq(1), self.prediction.payload.eq(neuron.best_index)]
                with m.If(self.prediction.ready):
                    m.next = "LOAD"
        return m
