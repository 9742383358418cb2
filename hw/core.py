"""The on-chip core: the golden model's free phase (inference), time-multiplexed over P MAC lanes.

This first part of the core runs inference exactly as :meth:`eqprop.golden.GoldenModel.free_phase`
computes it, in the cycles :func:`eqprop.schedule.cycle_count` predicts (``tests/test_hw_core.py``
checks both). The learning passes (nudged phases, continual updates, homeostasis), the weight
register interface and Verilog generation from the command line are still to come; they extend
the same controller and datapath.

Memories (``amaranth.lib.memory``, so they map to block RAM):

* every weight matrix ``W_l`` (and ``B_l`` when untied) in P banks, *skewed*: element (r, c) lives
  in bank ``(r + c) mod P`` at address ``r * ceil(C / P) + c // P``. A row segment (P consecutive
  columns) and a column segment (P consecutive rows) then each touch every bank once, so the
  forward pass (rows of ``W_{l-1}``) and the tied backward pass (columns of ``W_l``) both read P
  weights per beat. Lane t reads bank ``(t + i) mod P`` for neuron i;
* states of every layer in P banks (element j in bank ``j mod P``), two buffers for layers 1..L
  that ping-pong between steps (a step reads one and writes the other), one for x;
* biases of every layer in P banks; ``W_0 x`` in one memory at accumulator width.

Pipeline: a beat's addresses are issued in one cycle (stage 0), the memories answer in the next
(stage 1: multiply, align to the accumulator, adder tree, accumulate), and after a neuron's last
beat stage 2 applies rho and writes the state. A pass (the ``W_0 x`` pass, a relaxation step)
issues one beat per cycle and ends with :data:`eqprop.schedule.PASS_LATENCY` cycles of drain.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.golden import Arith
from eqprop.schedule import PASS_LATENCY

from .arith import requantize, shape_of, shift_round


def skewed_banks(matrix: np.ndarray, lanes: int) -> list[np.ndarray]:
    """The P bank contents of a matrix in the skewed layout (padding is zero)."""
    rows, cols = matrix.shape
    per_row = math.ceil(cols / lanes)
    banks = [np.zeros(rows * per_row, dtype=np.int64) for _ in range(lanes)]
    for r in range(rows):
        for c in range(cols):
            banks[(r + c) % lanes][r * per_row + c // lanes] = matrix[r, c]
    return banks


def unskew(banks: list[list[int]], rows: int, cols: int) -> np.ndarray:
    """The matrix whose skewed bank contents are ``banks``."""
    lanes, per_row = len(banks), math.ceil(cols / len(banks))
    out = np.zeros((rows, cols), dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = banks[(r + c) % lanes][r * per_row + c // lanes]
    return out


def striped_banks(vector: np.ndarray, lanes: int) -> list[np.ndarray]:
    """Element j in bank ``j mod P`` at address ``j // P``."""
    depth = math.ceil(len(vector) / lanes)
    banks = [np.zeros(depth, dtype=np.int64) for _ in range(lanes)]
    for j, value in enumerate(vector):
        banks[j % lanes][j // lanes] = value
    return banks


class _Part:
    """One kind of beat sequence of a pass: which matrix, read how, against which presynaptic layer."""

    def __init__(self, name: str, layer: int, matrix: str | None, column: bool, pre: int | None, length: int, neurons: int, lanes: int):
        self.name, self.layer, self.matrix, self.column, self.pre = name, layer, matrix, column, pre
        self.length, self.neurons = length, neurons
        self.segments = max(1, math.ceil(length / lanes)) if matrix else 1


class Core(wiring.Component):
    """Inference on chip: stream x in, get the prediction out, read the cycle counter.

    ``params`` are the golden model's stored integers (the memories' initial contents).
    """

    def __init__(self, cfg: Config, params: dict[str, np.ndarray] | None = None) -> None:
        self.cfg = cfg
        self.arith = Arith.from_config(cfg)
        self.lanes = cfg.hardware.lanes
        if not isinstance(self.lanes, int) or self.lanes < 1:
            raise ConfigError(f"hardware.lanes must be a positive integer, got {self.lanes!r}")
        fx, sizes, P = cfg.fixed, cfg.network.sizes, self.lanes
        L = cfg.network.n_layers
        from eqprop.network import param_shapes

        shapes = param_shapes(cfg.network)
        params = params if params is not None else {k: np.zeros(s, dtype=np.int64) for k, s in shapes.items()}
        store = shape_of(self.arith.weight_store)
        self.weights = {
            name: [Memory(shape=store, depth=max(1, len(b)), init=b.tolist()) for b in skewed_banks(np.asarray(params[name]), P)]
            for name in shapes
            if name[0] != "b"
        }
        self.biases = {
            l: [Memory(shape=shape_of(self.arith.bias_store), depth=max(1, len(b)), init=b.tolist()) for b in striped_banks(np.asarray(params[f"b{l}"]), P)]
            for l in range(1, L + 1)
        }
        depth = lambda n: max(1, math.ceil(n / P))  # noqa: E731
        self.inputs = [Memory(shape=shape_of(fx.input), depth=depth(sizes[0]), init=[]) for _ in range(P)]
        self.states = {
            (l, buf): [Memory(shape=shape_of(fx.state), depth=depth(sizes[l]), init=[]) for _ in range(P)]
            for l in range(1, L + 1)
            for buf in range(2)
        }
        self.w0x = Memory(shape=shape_of(fx.accumulator), depth=sizes[1], init=[])
        super().__init__({
            "x": In(stream.Signature(shape_of(fx.input))),
            "prediction": Out(stream.Signature(range(max(2, sizes[-1])))),
            "cycles": Out(32),
            "busy": Out(1),
        })

    # -- the pass programs ---------------------------------------------------------------------
    def _parts(self) -> tuple[list[_Part], list[_Part]]:
        """The parts of the ``W_0 x`` pass and of a relaxation step, in issue order."""
        n, L, P, tied = self.cfg.network.sizes, self.cfg.network.n_layers, self.lanes, self.cfg.network.tied
        w0x = [_Part("w0x", 1, "W0", False, 0, n[0], n[1], P)]
        step = []
        for l in range(1, L + 1):
            parts = []
            if l >= 2:
                parts.append(_Part(f"l{l}fwd", l, f"W{l - 1}", False, l - 1, n[l - 1], n[l], P))
            if l < L:
                parts.append(_Part(f"l{l}bwd", l, f"W{l}" if tied else f"B{l}", tied, l + 1, n[l + 1], n[l], P))
            step += parts or [_Part(f"l{l}idle", l, None, False, None, 0, n[l], P)]
        return w0x, step

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, fx, arith, P = self.cfg, self.cfg.fixed, self.arith, self.lanes
        n, L = cfg.network.sizes, cfg.network.n_layers
        for name, banks in self.weights.items():
            for b, mem in enumerate(banks):
                m.submodules[f"{name}_bank{b}"] = mem
        for l, banks in self.biases.items():
            for b, mem in enumerate(banks):
                m.submodules[f"b{l}_bank{b}"] = mem
        for b, mem in enumerate(self.inputs):
            m.submodules[f"x_bank{b}"] = mem
        for (l, buf), banks in self.states.items():
            for b, mem in enumerate(banks):
                m.submodules[f"s{l}_buf{buf}_bank{b}"] = mem
        m.submodules.w0x = self.w0x

        weight_rd = {name: [mem.read_port() for mem in banks] for name, banks in self.weights.items()}
        bias_rd = {l: [mem.read_port() for mem in banks] for l, banks in self.biases.items()}
        input_rd = [mem.read_port() for mem in self.inputs]
        input_wr = [mem.write_port() for mem in self.inputs]
        state_rd = {key: [mem.read_port() for mem in banks] for key, banks in self.states.items()}
        state_wr = {key: [mem.write_port() for mem in banks] for key, banks in self.states.items()}
        w0x_rd, w0x_wr = self.w0x.read_port(), self.w0x.write_port()
        # Every state and W_0 x write, by memory: what a scoreboard watches (see eqprop.schedule).
        self.write_ports = {("w0x", 0): [w0x_wr], **{(f"s{l}", buf): ports for (l, buf), ports in state_wr.items()}}

        w0x_parts, step_parts = self._parts()
        parts = w0x_parts + step_parts

        # -- controller state ------------------------------------------------------------------
        neuron = Signal(range(max(n) + 1))
        neuron_mod = Signal(range(P))  # neuron % P
        neuron_div = Signal(range(max(n) // P + 2))  # neuron // P
        segment = Signal(range(max(p.segments for p in parts) + 1))
        step = Signal(range(cfg.learning.T1 + 1))
        current = Signal()  # the state buffer a step reads; it writes the other
        drain = Signal(range(4))
        loaded = Signal(range(n[0] + 1))
        loaded_mod, loaded_div = Signal(range(P)), Signal(range(n[0] // P + 2))
        best, best_index = Signal(shape_of(fx.state)), Signal(range(max(2, n[-1])))

        # -- stage 0 -> 1 pipeline registers ---------------------------------------------------
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_part = Signal(range(len(parts)))
        s1_rot = Signal(range(P))
        s1_mask = Signal(P)
        s1_neuron, s1_mod, s1_div = Signal.like(neuron), Signal.like(neuron_mod), Signal.like(neuron_div)
        s1_zero_states = Signal()  # the first free step reads states that are still 0
        # -- stage 1 -> 2
        s2_valid = Signal()
        s2_part = Signal.like(s1_part)
        s2_neuron, s2_mod, s2_div = Signal.like(neuron), Signal.like(neuron_mod), Signal.like(neuron_div)
        acc = Signal(shape_of(fx.accumulator))

        issue = Signal()  # a beat is issued this cycle
        part_index = Signal(range(len(parts)))
        first_step, last_step = Signal(), Signal()
        m.d.comb += [first_step.eq(step == 0), last_step.eq(step == cfg.learning.T1 - 1)]

        # stage 0: addresses of the beat (part, neuron, segment)
        for index, part in enumerate(parts):
            with m.If(issue & (part_index == index)):
                if part.matrix:
                    per_row = math.ceil(self._matrix_shape(part.matrix)[1] / P)
                    for b, port in enumerate(weight_rd[part.matrix]):
                        if part.column:
                            # lane t = (b - neuron) mod P reads row segment * P + t, column `neuron`
                            lane = Signal(range(P), name=f"{part.name}_lane{b}")
                            m.d.comb += lane.eq(Mux(neuron_mod <= b, b - neuron_mod, b + P - neuron_mod))
                            m.d.comb += port.addr.eq((segment * P + lane) * per_row + neuron_div)
                        else:
                            m.d.comb += port.addr.eq(neuron * per_row + segment)
                    pre_ports = input_rd if part.pre == 0 else None
                    if pre_ports is not None:
                        for port in pre_ports:
                            m.d.comb += port.addr.eq(segment)
                    else:
                        for buf in range(2):
                            with m.If(current == buf):
                                for port in state_rd[(part.pre, buf)]:
                                    m.d.comb += port.addr.eq(segment)
                    mask = [(segment * P + t) < part.length for t in range(P)]
                    m.d.sync += s1_mask.eq(reduce(lambda a, b: a | b, (bit << t for t, bit in enumerate(mask))))
                else:
                    m.d.sync += s1_mask.eq(0)
                for port in bias_rd[part.layer]:
                    m.d.comb += port.addr.eq(neuron_div)
                m.d.comb += w0x_rd.addr.eq(neuron)
                starts = index == _siblings(parts, index)[0]
                m.d.sync += [
                    s1_first.eq((segment == 0) if starts else 0),
                    s1_last.eq(segment == part.segments - 1),
                ]
        m.d.sync += [
            s1_valid.eq(issue),
            s1_part.eq(part_index),
            s1_rot.eq(neuron_mod),
            s1_neuron.eq(neuron),
            s1_mod.eq(neuron_mod),
            s1_div.eq(neuron_div),
            s1_zero_states.eq(first_step),
        ]

        # stage 1: lane data, products, adder tree, accumulate
        lane_sums = []
        bank_weight = [Signal(shape_of(arith.weight_store), name=f"bank{b}_weight") for b in range(P)]
        lane_pre = [Signal(signed(max(fx.state.width, fx.input.width + 1)), name=f"lane{t}_pre") for t in range(P)]
        with m.Switch(s1_part):
            for index, part in enumerate(parts):
                with m.Case(index):
                    if part.matrix:
                        for b in range(P):
                            m.d.comb += bank_weight[b].eq(weight_rd[part.matrix][b].data)
                        for t in range(P):
                            if part.pre == 0:
                                m.d.comb += lane_pre[t].eq(input_rd[t].data)
                            else:
                                data = Mux(current, state_rd[(part.pre, 1)][t].data, state_rd[(part.pre, 0)][t].data)
                                m.d.comb += lane_pre[t].eq(Mux(s1_zero_states, 0, data))
        is_w0x = s1_part == 0
        for t in range(P):
            weight = Signal(shape_of(arith.weight_store), name=f"lane{t}_stored")
            with m.Switch(s1_rot):
                for rot in range(P):
                    with m.Case(rot):
                        m.d.comb += weight.eq(bank_weight[(t + rot) % P])
            mac_weight = requantize(weight, arith.weight_store.n, fx.weight)
            product = mac_weight * lane_pre[t]
            aligned = Mux(
                is_w0x,
                shift_round(product, fx.weight.n + fx.input.n - fx.accumulator.n, fx.accumulator.rounding),
                shift_round(product, fx.weight.n + fx.state.n - fx.accumulator.n, fx.accumulator.rounding),
            )
            lane_sums.append(Mux(s1_mask[t], aligned, 0))
        beat_sum = reduce(lambda a, b: a + b, lane_sums)
        bias = Signal(shape_of(arith.bias_store))
        with m.Switch(s1_part):
            for index, part in enumerate(parts):
                with m.Case(index):
                    with m.Switch(s1_mod):
                        for b in range(P):
                            with m.Case(b):
                                m.d.comb += bias.eq(bias_rd[part.layer][b].data)
        bias_acc = shift_round(bias, arith.bias_store.n - fx.accumulator.n, fx.accumulator.rounding)
        uses_w0x = Signal()
        m.d.comb += uses_w0x.eq(reduce(lambda a, b: a | b, [s1_part == i for i, p in enumerate(parts) if p.layer == 1 and i > 0], Const(0)))
        init = Mux(is_w0x, 0, bias_acc + Mux(uses_w0x, w0x_rd.data, 0))
        with m.If(s1_valid):
            m.d.sync += acc.eq(Mux(s1_first, init, acc) + beat_sum)
        m.d.sync += [
            s2_valid.eq(s1_valid & s1_last & self._ends_neuron(parts, s1_part)),
            s2_part.eq(s1_part),
            s2_neuron.eq(s1_neuron),
            s2_mod.eq(s1_mod),
            s2_div.eq(s1_div),
        ]

        # stage 2: rho and the state write (or W_0 x)
        state = Signal(shape_of(fx.state))
        rounded = shift_round(acc, fx.accumulator.n - fx.state.n, fx.state.rounding)
        m.d.comb += state.eq(Mux(rounded < 0, 0, Mux(rounded > arith.one, arith.one, rounded)))
        with m.If(s2_valid & (s2_part == 0)):
            m.d.comb += [w0x_wr.addr.eq(s2_neuron), w0x_wr.data.eq(acc), w0x_wr.en.eq(1)]
        for l in range(1, L + 1):
            layer_parts = [i for i, p in enumerate(parts) if i > 0 and p.layer == l]
            with m.If(s2_valid & reduce(lambda a, b: a | b, [s2_part == i for i in layer_parts])):
                for buf in range(2):
                    with m.If(current != buf):
                        for b, port in enumerate(state_wr[(l, buf)]):
                            m.d.comb += [port.addr.eq(s2_div), port.data.eq(state), port.en.eq(s2_mod == b)]
                if l == L:
                    with m.If(last_step & ((s2_neuron == 0) | (state > best))):
                        m.d.sync += [best.eq(state), best_index.eq(s2_neuron)]

        # -- controller ------------------------------------------------------------------------
        def next_neuron():
            m.d.sync += [segment.eq(0), neuron.eq(neuron + 1)]
            with m.If(neuron_mod == P - 1):
                m.d.sync += [neuron_mod.eq(0), neuron_div.eq(neuron_div + 1)]
            with m.Else():
                m.d.sync += neuron_mod.eq(neuron_mod + 1)

        def restart_neurons():
            m.d.sync += [segment.eq(0), neuron.eq(0), neuron_mod.eq(0), neuron_div.eq(0)]

        counting = Signal()
        with m.If(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += self.busy.eq(counting)

        after_w0x = Signal()  # the pass in flight is the W_0 x pass
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.x.ready.eq(1)
                for b, port in enumerate(input_wr):
                    m.d.comb += [port.addr.eq(loaded_div), port.data.eq(self.x.payload), port.en.eq(self.x.valid & (loaded_mod == b))]
                with m.If(self.x.valid):
                    with m.If(loaded == n[0] - 1):
                        m.d.sync += [loaded.eq(0), loaded_mod.eq(0), loaded_div.eq(0), step.eq(0), current.eq(0), self.cycles.eq(0), after_w0x.eq(1)]
                        restart_neurons()
                        m.next = "P0"
                    with m.Else():
                        m.d.sync += loaded.eq(loaded + 1)
                        with m.If(loaded_mod == P - 1):
                            m.d.sync += [loaded_mod.eq(0), loaded_div.eq(loaded_div + 1)]
                        with m.Else():
                            m.d.sync += loaded_mod.eq(loaded_mod + 1)
            for index, part in enumerate(parts):
                with m.State(f"P{index}"):
                    m.d.comb += [issue.eq(1), part_index.eq(index), counting.eq(1)]
                    siblings = _siblings(parts, index)
                    with m.If(segment == part.segments - 1):
                        if index != siblings[-1]:
                            m.d.sync += segment.eq(0)
                            m.next = f"P{index + 1}"
                        else:
                            with m.If(neuron == part.neurons - 1):
                                restart_neurons()
                                if index > 0 and index + 1 < len(parts):
                                    m.next = f"P{index + 1}"
                                else:
                                    m.d.sync += drain.eq(0)
                                    m.next = "DRAIN"
                            with m.Else():
                                next_neuron()
                                m.next = f"P{siblings[0]}"
                    with m.Else():
                        m.d.sync += segment.eq(segment + 1)
            with m.State("DRAIN"):
                m.d.comb += counting.eq(1)
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == PASS_LATENCY - 1):
                    with m.If(after_w0x):
                        m.d.sync += after_w0x.eq(0)
                        m.next = "P1"
                    with m.Else():
                        m.d.sync += current.eq(~current)
                        with m.If(last_step):
                            m.next = "OUTPUT"
                        with m.Else():
                            m.d.sync += step.eq(step + 1)
                            m.next = "P1"
            with m.State("OUTPUT"):
                m.d.comb += [self.prediction.valid.eq(1), self.prediction.payload.eq(best_index)]
                with m.If(self.prediction.ready):
                    m.next = "LOAD"
        return m

    def _matrix_shape(self, name: str) -> tuple[int, int]:
        from eqprop.network import param_shapes

        return param_shapes(self.cfg.network)[name]

    @staticmethod
    def _ends_neuron(parts: list[_Part], part_signal) -> object:
        """Whether ``part_signal`` is the last part of its neuron's beats."""
        return reduce(lambda a, b: a | b, [part_signal == i for i in range(len(parts)) if i == _siblings(parts, i)[-1]])


def _siblings(parts: list[_Part], index: int) -> list[int]:
    """The parts that make up one neuron's beats with part ``index`` (same pass, same layer)."""
    return [i for i, p in enumerate(parts) if p.layer == parts[index].layer and (i == 0) == (index == 0)]
