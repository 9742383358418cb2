"""The neuron unit: a row's drive in, the neuron's new state, learning factors and W_0 x out.

One row per cycle at most, in :func:`~eqprop.program.neuron_stages` registered stages, the
arithmetic of :class:`eqprop.golden.GoldenModel` (``step``, ``_row_factor``, the deferred input
updates):

* ``n1_``: the drive plus the neuron's bias (and its cached ``W_0 x`` in layer 1); a row of the
  input drive passes its drive on as ``W_0 x``; beside it the error ``+-(y - s)``, signed by the phase;
* ``n2_``: rounded to the state format, rho (clamped to [0, 1]); in the output layer of a nudged
  phase plus the nudge ``beta`` times the error, saturated;
* ``n3_``: the learning factors ``u = c s', v = c s`` (tied) or ``d = c (s' - s)``, ``e`` (untied),
  each rounded and saturated to the ``update`` format;
* ``n3x_`` (deferred input updates only): the signed change ``f = +-(u - v)`` (or ``+-d``) and the
  product ``f ||x||^2``;
* ``n4_``: with deferred input updates, for layer 1 in a nudged phase, ``F += f`` and
  ``W_0 x += f ||x||^2`` (``f = +-(u - v)`` or ``+-d``); the free phase's last step updates the argmax.

The outputs are the ``n4_`` registers: what the core writes to its memories that cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eqprop.golden import Arith

from .arith import saturate, shape_of, shift_round, times_constant
from .lanes import stage


def row_fields(arith: Arith) -> dict:
    """What the core tells the unit about a row, beside its drive."""
    cfg, fx = arith.cfg, arith.cfg.fixed
    n, L = cfg.network.sizes, cfg.network.n_layers
    return {
        "drive_row": 1,  # a row of the input drive: its drive is W_0 x
        "layer": range(L + 1),
        "row": range(max(n) + 1),
        "bias": shape_of(arith.bias_store),
        "w0x": shape_of(fx.accumulator),
        "old": shape_of(fx.state),
        "pending": shape_of(fx.update),
        # the phase of the row's beats (passes overlap: the sequencer may be in the next one)
        "nudged": 1,
        "negative": 1,
        "first_update": 1,  # the sample's first nudged step: F starts from 0
        "last_free_step": 1,
    }


class NeuronUnit(wiring.Component):
    def __init__(self, arith: Arith) -> None:
        self.arith = arith
        cfg, fx = arith.cfg, arith.cfg.fixed
        n = cfg.network.sizes
        self.factor_names = ("u", "v") if cfg.network.tied else ("d", "e")
        fields = row_fields(arith)
        super().__init__({
            "valid": In(1),
            "drive": In(shape_of(fx.accumulator)),
            **{name: In(shape) for name, shape in fields.items()},
            # constant over a sample
            "label": In(range(max(2, n[-1]))),
            "norm": In(range(arith.norm_bound + 1)),
            # out, from the last stage's registers
            "state_valid": Out(1),
            "w0x_valid": Out(1),
            "pending_valid": Out(1),
            "out_layer": Out(range(cfg.network.n_layers + 1)),
            "out_row": Out(range(max(n) + 1)),
            "state": Out(shape_of(fx.state)),
            "factors": Out(wiring.Signature({name: Out(shape_of(fx.update)) for name in self.factor_names})),
            "out_w0x": Out(shape_of(fx.accumulator)),
            "out_pending": Out(shape_of(fx.update)),
            "best_index": Out(range(max(2, n[-1]))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        arith, fx = self.arith, self.arith.cfg.fixed
        cfg = arith.cfg
        L, tied = cfg.network.n_layers, cfg.network.tied
        deferred = cfg.hardware.defer_input_updates

        # n1_: the neuron's total drive (a drive row's is its drive: the W_0 x it writes) and, beside
        # it, the output's error towards its target, signed by the phase (so that n2_ only scales it)
        bias = shift_round(self.bias, arith.bias_store.n - fx.accumulator.n, fx.accumulator.rounding)
        carried = {"w0x": self.w0x, "pending": self.pending} if deferred else {}
        phase = ("nudged", "negative", "first_update", "last_free_step")
        target = Mux(self.row == self.label, arith.one, 0)
        n1 = stage(m, "n1", {
            "valid": self.valid, "drive_row": self.drive_row, "layer": self.layer, "row": self.row, "old": self.old,
            **{name: getattr(self, name) for name in phase},
            "total": self.drive + Mux(self.drive_row, 0, bias + Mux(self.layer == 1, self.w0x, 0)), **carried,
            "error": Mux(self.negative, self.old - target, target - self.old),
        })

        # n2_: rho and the nudge beta times the error
        rounded = shift_round(n1["total"], fx.accumulator.n - fx.state.n, fx.state.rounding)
        rho = Mux(rounded < 0, 0, Mux(rounded > arith.one, arith.one, rounded))
        nudge = shift_round(times_constant(n1["error"], arith.beta), fx.factor.n, fx.state.rounding)
        state = Signal(shape_of(fx.state))
        m.d.comb += state.eq(Mux(n1["nudged"] & (n1["layer"] == L), saturate(rho + nudge, fx.state), rho))
        # a row writes its state or (a drive row) its W_0 x: one register carries either
        row_tags = ("valid", "drive_row", "layer", "row", *phase, *carried)
        n2 = stage(m, "n2", {**{name: n1[name] for name in row_tags}, "value": Mux(n1["drive_row"], n1["total"], state), "old": n1["old"]})
        n2["state"] = Signal(shape_of(fx.state), name="n2_state")
        m.d.comb += n2["state"].eq(n2["value"])

        # n3_: learning factors: the layer's rate (a constant, chosen by layer) times a state, one
        # multiplier per factor
        def rate(weight_layer_of):
            selected = Signal(range(max(arith.rates) + 1), name="n3_rate")
            value = 0
            for l in range(1, L + 1):
                value = Mux(n2["layer"] == l, arith.rates[weight_layer_of(l)] if weight_layer_of(l) < L else 0, value)
            m.d.comb += selected.eq(value)
            return selected

        def factor(rate_of_layer, value):
            return saturate(shift_round(rate_of_layer * value, fx.factor.n + fx.state.n - fx.update.n, fx.update.rounding), fx.update)

        own_rate = rate(lambda l: l - 1)  # the rate of W_{l-1}, into this layer
        if tied:
            factors = {"u": factor(own_rate, n2["state"]), "v": factor(own_rate, n2["old"])}
        else:
            change = n2["state"] - n2["old"]
            factors = {"d": factor(own_rate, change), "e": factor(rate(lambda l: l), change)}
        n3 = stage(m, "n3", {**{name: n2[name] for name in (*row_tags, "value")}, **factors})
        if deferred:  # n3x_: the change f of the input-layer factor, signed, and f ||x||^2 (a DSP's output register)
            f = n3["u"] - n3["v"] if tied else n3["d"]
            signed_f = Signal(signed(fx.update.width + 2))
            m.d.comb += signed_f.eq(Mux(n3["negative"], -f, f))
            n3 = stage(m, "n3x", {**n3, "f": signed_f, "product": signed_f * self.norm})
        n3["state"] = Signal(shape_of(fx.state), name="n3_state")
        m.d.comb += n3["state"].eq(n3["value"])

        # n4_: deferred input updates (layer 1, nudged), the argmax; the outputs
        n4 = stage(m, "n4", {name: n3[name] for name in ("valid", "drive_row", "layer", "row", "state", "last_free_step")})
        for name in self.factor_names:
            m.d.sync += getattr(self.factors, name).eq(n3[name])
        tracking = n3["nudged"] & (n3["layer"] == 1) & ~n3["drive_row"] if deferred else 0
        w0x_next, pending_next = n3["value"], 0
        if deferred:
            step = shift_round(n3["product"], fx.update.n + 2 * fx.input.n - fx.accumulator.n, fx.accumulator.rounding)
            w0x_next = Mux(tracking, saturate(n3["w0x"] + step, fx.accumulator), n3["value"])
            pending_next = saturate(Mux(n3["first_update"], 0, n3["pending"]) + n3["f"], fx.update)
        m.d.sync += [
            self.out_w0x.eq(w0x_next),
            self.out_pending.eq(pending_next),
            self.state_valid.eq(n3["valid"] & ~n3["drive_row"]),
            self.w0x_valid.eq(n3["valid"] & (n3["drive_row"] | tracking)),
            self.pending_valid.eq(n3["valid"] & tracking),
        ]
        m.d.comb += [self.out_layer.eq(n4["layer"]), self.out_row.eq(n4["row"]), self.state.eq(n4["state"])]
        best = Signal(shape_of(fx.state))
        with m.If(n4["valid"] & ~n4["drive_row"] & (n4["layer"] == L) & n4["last_free_step"]):
            with m.If((n4["row"] == 0) | (n4["state"] > best)):
                m.d.sync += [best.eq(n4["state"]), self.best_index.eq(n4["row"])]
        return m
