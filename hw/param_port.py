"""The parameter port: the stored weights and biases, written and read word by word between samples.

A request on ``param`` names a memory (its index in :func:`eqprop.layout.param_names`), a bank and
an address (:func:`eqprop.layout.parameter_words` maps the parameters onto them). While ``enable`` is
set (between samples) a request passes on ``access`` to the memories in the cycle it is
taken; a read's word comes back on ``param_read``: the memories answer the next cycle, when the
core shows the word of the memory and bank named by ``reply_from`` on ``word``. One read is
outstanding at a time: a request waits while a reply does.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.golden import Arith
from eqprop.layout import param_names, parameter_depths


def word_shape(cfg: Config):
    """A parameter word: wide enough for a weight or a bias."""
    arith = Arith.from_config(cfg)
    return signed(max(arith.weight_store.width, arith.bias_store.width))


def access_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({
        "memory": range(max(2, len(param_names(cfg.network)))),
        "bank": range(max(2, cfg.hardware.lanes)),
        "address": range(max(parameter_depths(cfg)) + 1),
        "write": 1,
        "data": word_shape(cfg),
    })


class ParameterPort(wiring.Component):
    """``param`` requests on to the memories (``access``) between samples, read words back on ``param_read``."""

    def __init__(self, cfg: Config) -> None:
        layout = access_layout(cfg)
        super().__init__({
            "param": In(stream.Signature(layout)),
            "param_read": Out(stream.Signature(word_shape(cfg))),
            "enable": In(1),
            "access": Out(stream.Signature(layout, always_ready=True)),
            "reply_from": Out(data.StructLayout({"memory": layout["memory"].shape, "bank": layout["bank"].shape})),
            "word": In(word_shape(cfg)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        waiting = Signal()  # a read's reply is on its way or not yet taken
        capture = Signal()  # the memories show the requested word this cycle
        reply = Signal.like(self.param_read.payload)
        request = self.param.payload
        m.d.comb += [
            self.param.ready.eq(self.enable & ~waiting),
            self.access.valid.eq(self.param.valid & self.param.ready),
            self.access.payload.eq(request),
        ]
        m.d.sync += capture.eq(self.access.valid & ~request.write)
        with m.If(self.access.valid & ~request.write):
            m.d.sync += [waiting.eq(1), self.reply_from.memory.eq(request.memory), self.reply_from.bank.eq(request.bank)]
        with m.If(capture):
            m.d.sync += reply.eq(self.word)
        m.d.comb += [self.param_read.valid.eq(waiting & ~capture), self.param_read.payload.eq(reply)]
        with m.If(self.param_read.valid & self.param_read.ready):
            m.d.sync += waiting.eq(0)
        return m
