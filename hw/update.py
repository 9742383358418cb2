"""The update lanes: read-modify-write of P stored words per beat, as the golden model updates them.

A beat carries P stored weights (or biases) of one row, the lanes' presynaptic values and the
row's learning factors (a column of ``B_l``, :func:`eqprop.program.feedback_by_column`: the
lanes' factors e and the column's state); the lanes form each exact increment, round it to the
storage format and add it with saturation (:meth:`eqprop.golden.GoldenModel._update`, ``_add``,
``homeostasis``):

* weights: ``fa * pa - fb * pb`` (tied: ``u s'_j - v s_j``; untied ``d s_j`` or ``e s_j``, or a
  column of ``B_l`` as ``s e_j``; the deferred input-layer update ``F x_j``), negated in a
  ``-beta`` phase;
* biases: ``pa - pb``, the lanes' own factors (``u - v``, or ``d``);
* homeostasis: ``lambda (W - B^T)`` subtracted from the weight and added to its partner in ``B``.

Each kind of increment has its *rounding*: the bits it drops and the store it goes to
(:class:`Rounding`); with stochastic rounding the dropped bits are decided by the LFSR's words,
of which the lanes consume one per active lane (``draws``) in the cycle they round.

Stages (:attr:`eqprop.program.Pipeline.update_stages`): ``o_`` operands in lane order (rotated
from the banks), ``m_`` products, ``d_`` the rounded increment, ``n_`` the saturated sums, and with
5 stages ``b_``, the words rotated back to their banks; the outputs are the last registers (with 4,
rotated back on their way out).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from eqprop.fixed import Format

from .arith import saturate, shift_round, times_constant
from .lanes import rotate, stage, stage_lanes


@dataclass(frozen=True)
class Rounding:
    """An increment with ``frac`` fraction bits added to a word of ``store``."""

    frac: int
    store: Format

    @property
    def shift(self) -> int:
        return self.frac - self.store.n


class UpdateLanes(wiring.Component):
    """P lanes of read-modify-write. ``pre_a``, ``pre_b`` (``pre_width`` bits) are the lanes' own
    operands: presynaptic values, or a bias's or a ``B_l`` column's learning factors; ``fa``, ``fb``
    (``factor_width`` bits) the beat's one factor each: a row's learning factors, or the state a
    ``B_l`` column multiplies."""

    def __init__(self, lanes: int, word_width: int, pre_width: int, factor_width: int, roundings: list[Rounding],
                 lam: int, stochastic: bool, noise_width: int, stages: int = 5) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        if stages not in (4, 5):
            raise ValueError(f"the update lanes have 4 or 5 stages, not {stages}")
        self.stages = stages
        self.lanes, self.roundings, self.lam = lanes, roundings, lam
        self.stochastic, self.noise_width = stochastic, noise_width
        word = signed(word_width)
        super().__init__({
            "valid": In(1),
            "mask": In(lanes),
            "rotate": In(range(max(2, lanes))),
            "bias": In(1),  # the increment is pre_a - pre_b: the lanes' own factors
            "homeostasis": In(1),
            "negate": In(1),
            "rounding": In(range(max(2, len(roundings)))),
            "stored": In(data.ArrayLayout(word, lanes)),  # bank order (lane order for biases: rotate 0)
            "partner": In(data.ArrayLayout(word, lanes)),  # homeostasis: the B_l words, bank order
            "pre_a": In(data.ArrayLayout(signed(pre_width), lanes)),
            "pre_b": In(data.ArrayLayout(signed(pre_width), lanes)),
            "fa": In(signed(factor_width)),
            "fb": In(signed(factor_width)),
            "noise": In(data.ArrayLayout(noise_width, lanes)),
            "draws": Out(range(lanes + 1)),
            # from the b_ registers, in bank order
            "write": Out(lanes),
            "words": Out(data.ArrayLayout(word, lanes)),
            "partner_words": Out(data.ArrayLayout(word, lanes)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        P = self.lanes

        flags = ("valid", "bias", "homeostasis", "negate", "rounding", "rotate")
        # o_: operands in lane order
        o = stage(m, "o", {name: getattr(self, name) for name in flags + ("fa", "fb", "mask")})
        o_stored = stage_lanes(m, "o", "stored", rotate(m, [self.stored[b] for b in range(P)], self.rotate, "upd_in"))
        o_partner = stage_lanes(m, "o", "partner", rotate(m, [self.partner[b] for b in range(P)], self.rotate, "upd_partner"))
        o_pa = stage_lanes(m, "o", "pre_a", [self.pre_a[t] for t in range(P)])
        o_pb = stage_lanes(m, "o", "pre_b", [self.pre_b[t] for t in range(P)])

        # m_: products (the homeostasis gap times the constant lambda is shifts and adds)
        mm = stage(m, "m", {name: o[name] for name in flags + ("fa", "fb", "mask")})
        m_stored = stage_lanes(m, "m", "stored", o_stored)
        m_partner = stage_lanes(m, "m", "partner", o_partner)
        m_a = stage_lanes(m, "m", "product_a", [o["fa"] * o_pa[t] for t in range(P)])
        m_b = stage_lanes(m, "m", "product_b", [o["fb"] * o_pb[t] for t in range(P)])
        m_gap = stage_lanes(m, "m", "gap", [times_constant(o_stored[t] - o_partner[t], self.lam) for t in range(P)])
        m_diff = stage_lanes(m, "m", "diff", [o_pa[t] - o_pb[t] for t in range(P)])  # a bias's u - v (or d)

        # d_: the exact increment, rounded to its store
        d = stage(m, "d", {name: mm[name] for name in flags + ("mask",)})
        d_stored = stage_lanes(m, "d", "stored", m_stored)
        d_partner = stage_lanes(m, "d", "partner", m_partner)
        deltas = []
        for t in range(P):
            exact = Mux(mm["homeostasis"], m_gap[t], Mux(mm["bias"], m_diff[t], m_a[t] - m_b[t]))
            exact = Mux(mm["negate"], -exact, exact)
            delta = 0
            for index, rounding in enumerate(self.roundings):
                delta = Mux(mm["rounding"] == index, self._round(exact, rounding, self.noise[t]), delta)
            deltas.append(delta)
        d_delta = stage_lanes(m, "d", "delta", deltas)
        if self.stochastic:  # an increment that drops bits takes one LFSR word per active lane
            drops = [index for index, rounding in enumerate(self.roundings) if rounding.shift > 0]
            dropping = sum((mm["rounding"] == index for index in drops), start=0) != 0 if drops else 0
            m.d.comb += self.draws.eq(Mux(mm["valid"] & dropping, sum(mm["mask"][t] for t in range(P)), 0))

        # n_: saturated sums
        n = stage(m, "n", {name: d[name] for name in flags + ("mask",)})
        n_words, n_partner = [], []
        for t in range(P):
            delta = d_delta[t]
            new = 0
            partner = 0
            for index, rounding in enumerate(self.roundings):
                new = Mux(d["rounding"] == index, saturate(d_stored[t] + Mux(d["homeostasis"], -delta, delta), rounding.store), new)
                partner = Mux(d["rounding"] == index, saturate(d_partner[t] + delta, rounding.store), partner)
            n_words.append(new)
            n_partner.append(partner)
        n_words = stage_lanes(m, "n", "word", n_words)
        n_partner = stage_lanes(m, "n", "partner", n_partner)

        # b_: back to bank order (registered with 5 stages)
        back = Mux(n["rotate"] == 0, 0, P - n["rotate"])
        b_words = rotate(m, n_words, back, "upd_out")
        b_partner = rotate(m, n_partner, back, "upd_partner_out")
        b_write = rotate(m, [n["valid"] & n["mask"][t] for t in range(P)], back, "upd_mask")
        if self.stages == 5:
            b_words, b_partner, b_write = (stage_lanes(m, "b", name, values) for name, values in (("word", b_words), ("partner", b_partner), ("write", b_write)))
        for b in range(P):
            m.d.comb += [self.words[b].eq(b_words[b]), self.partner_words[b].eq(b_partner[b]), self.write[b].eq(b_write[b])]
        return m

    def _round(self, exact, rounding: Rounding, noise):
        shift = rounding.shift
        if shift > 0 and self.stochastic:
            return (exact + noise[:shift]) >> shift
        return shift_round(exact, shift, rounding.store.rounding)
