"""Boards and the host link (SPEC section 7).

:mod:`eqprop.boards.protocol` is the framing the board's SoC and the host driver exchange over
the UART, :mod:`eqprop.boards.uart` the SoC's UART and :mod:`eqprop.boards.link` its frame
receiver and sender. The board registry, the SoC, bitstream builds, flashing and the host driver are not
built yet: see the open issues.
"""
