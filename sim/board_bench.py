"""The cocotb side of the simulated board (run by :class:`eqprop.sim.board.SimulatedTransport`).

Bytes from the host's socket are driven onto the SoC's ``rx`` pin as UART frames (8N1 at the
board's divisor); bytes the SoC sends on ``tx`` are decoded and written back to the socket. The
simulation ends when the host closes the socket.
"""

import os
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from .board import DIVISOR_ENV, PORT_ENV

CLOCK_NS = 10
#: Simulated time between looks at the socket while the host is silent.
IDLE_CYCLES = 2000


@cocotb.test()
async def board(dut):
    divisor = int(os.environ[DIVISOR_ENV])

    def bit():
        return Timer(divisor * CLOCK_NS, "ns")

    host = socket.create_connection(("127.0.0.1", int(os.environ[PORT_ENV])))
    host.setblocking(False)
    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await Timer(5 * CLOCK_NS, "ns")
    dut.rst.value = 0

    async def listen():
        """Decode the SoC's tx line: sample each bit in its middle."""
        while True:
            await FallingEdge(dut.tx)
            await Timer(divisor * CLOCK_NS // 2, "ns")
            value = 0
            for i in range(8):
                await bit()
                await ReadOnly()
                value |= int(dut.tx.value) << i
            await bit()  # the stop bit
            host.setblocking(True)
            host.sendall(bytes([value]))
            host.setblocking(False)

    cocotb.start_soon(listen())
    while True:
        try:
            data = host.recv(65536)
        except BlockingIOError:
            await Timer(IDLE_CYCLES * CLOCK_NS, "ns")
            continue
        if not data:
            break  # the host is done
        for byte in data:
            for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.rx.value = level
                await bit()
    host.close()
