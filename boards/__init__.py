"""Boards and the host link (SPEC section 7).

:mod:`eqprop.boards.protocol` is the framing the board's SoC and the host exchange over the UART,
:mod:`eqprop.boards.requests` the payloads of its requests and answers. Gateware:
:mod:`eqprop.boards.uart` (the UART), :mod:`eqprop.boards.link` (frame receiver and sender),
:mod:`eqprop.boards.engine` (the command engine around the core) and :mod:`eqprop.boards.soc`
(all of it on two UART pins). :mod:`eqprop.boards.registry` lists the boards and
:mod:`eqprop.boards.build` builds their bitstreams, :mod:`eqprop.boards.flash` writes them.
:mod:`eqprop.boards.host` is the host driver (serial transport; the simulated board's transport
is :mod:`eqprop.sim.board`), :mod:`eqprop.boards.train` trains through it.
"""
