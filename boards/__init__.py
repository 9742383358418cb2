"""Boards and the host link (SPEC section 7).

:mod:`eqprop.boards.protocol` is the framing the board's SoC and the host exchange over the UART,
:mod:`eqprop.boards.requests` the payloads of its requests and answers. Gateware:
:mod:`eqprop.boards.uart` (the UART), :mod:`eqprop.boards.link` (frame receiver and sender),
:mod:`eqprop.boards.engine` (the command engine around the core) and :mod:`eqprop.boards.soc`
(all of it on two UART pins). :mod:`eqprop.boards.registry` lists the boards and
:mod:`eqprop.boards.build` builds their bitstreams, :mod:`eqprop.boards.flash` writes them. The
host driver and the simulated board are not built yet.
"""
