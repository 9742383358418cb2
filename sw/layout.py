"""Where every word of the core lives: the memory layout, stated once, in pure Python.

The core (:mod:`eqprop.hw.core`), the device check (:mod:`eqprop.hw.devices`), the SoC's command
engine, the host driver and the co-simulation's trace all read the layout from here; this module
imports neither Amaranth nor torch, so host-side code can use it on a machine without either.

* Parameters are named as in a checkpoint (:func:`param_names`): ``W{l}`` ``(n_{l+1}, n_l)``,
  ``b{l}`` ``(n_l,)``, ``B{l}`` ``(n_l, n_{l+1})`` (untied only), numbered in that order on the
  ``param`` port.
* A weight matrix is spread over P banks, *skewed*: element (r, c) lives in bank ``(r + c) mod P``
  at address ``r * ceil(C / P) + c // P``. A row segment (P consecutive columns) and a column
  segment (P consecutive rows) then each touch every bank once, so the forward pass (rows of
  ``W_{l-1}``), the tied backward pass (columns of ``W_l``), the homeostasis pass (a row of
  ``W_l`` with a column of ``B_l``) and the untied update of a ``B_l`` walked by column
  (:func:`eqprop.program.feedback_by_column`) all read P weights per beat.
* Vectors (biases, states, inputs, learning factors) are *striped*: element j in bank ``j mod P``
  at address ``j // P``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import Config, NetworkConfig
from .golden import Arith
from .program import Program


def param_names(net: NetworkConfig) -> list[str]:
    """Names of the parameters of ``net`` in a fixed order (the checkpoint's and the ``param`` port's)."""
    L = net.n_layers
    names = [f"W{l}" for l in range(L)] + [f"b{l}" for l in range(1, L + 1)]
    if not net.tied:
        names += [f"B{l}" for l in range(1, L)]
    return names


def param_shapes(net: NetworkConfig) -> dict[str, tuple[int, ...]]:
    n = net.sizes
    shapes: dict[str, tuple[int, ...]] = {}
    for name in param_names(net):
        kind, l = name[0], int(name[1:])
        if kind == "W":
            shapes[name] = (n[l + 1], n[l])
        elif kind == "b":
            shapes[name] = (n[l],)
        else:
            shapes[name] = (n[l], n[l + 1])
    return shapes


def bank_depth(shape: tuple[int, ...], lanes: int) -> int:
    """Words per bank of an array of ``shape``: striped for a vector, skewed for a matrix."""
    if len(shape) == 1:
        return max(1, math.ceil(shape[0] / lanes))
    return shape[0] * math.ceil(shape[1] / lanes)


def parameter_depths(cfg: Config) -> list[int]:
    """Words per bank of each parameter memory, in the ``param`` port's numbering."""
    return [bank_depth(shape, cfg.hardware.lanes) for shape in param_shapes(cfg.network).values()]


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
    depth = max(1, math.ceil(len(vector) / lanes))
    banks = [np.zeros(depth, dtype=np.int64) for _ in range(lanes)]
    for j, value in enumerate(vector):
        banks[j % lanes][j // lanes] = value
    return banks


def unstripe(banks: list[list[int]], length: int) -> np.ndarray:
    lanes = len(banks)
    return np.array([banks[j % lanes][j // lanes] for j in range(length)], dtype=np.int64)


def parameter_words(cfg: Config, params: dict[str, np.ndarray]) -> list[tuple[int, int, int, int]]:
    """``(memory, bank, address, value)`` of every stored parameter word, padding included.

    Memories are numbered in checkpoint order (:func:`eqprop.network.param_names`); weight
    matrices are skewed, biases striped over the P banks. This is what the core's ``param`` port
    takes to load a network and what the host writes over the link.
    """
    words = []
    for memory, name in enumerate(param_names(cfg.network)):
        value = np.asarray(params[name])
        banks = striped_banks(value, cfg.hardware.lanes) if name[0] == "b" else skewed_banks(value, cfg.hardware.lanes)
        words += [(memory, bank, address, int(v)) for bank, contents in enumerate(banks) for address, v in enumerate(contents)]
    return words


def parameters_from_words(cfg: Config, read) -> dict[str, np.ndarray]:
    """The parameters, reading each stored word with ``read(memory, bank, address)``."""
    out, P = {}, cfg.hardware.lanes
    for memory, (name, shape) in enumerate(param_shapes(cfg.network).items()):
        depth = bank_depth(shape, P)
        if name[0] == "b":
            out[name] = unstripe([[read(memory, b, a) for a in range(depth)] for b in range(P)], shape[0])
        else:
            out[name] = unskew([[read(memory, b, a) for a in range(depth)] for b in range(P)], *shape)
    return out


@dataclass(frozen=True)
class TracePort:
    """One memory bank's write port as the ``trace`` output shows it (member ``name``)."""

    name: str
    #: ``w0x``, ``s{l}`` (states of layer l), ``W{l}``, ``B{l}`` or ``b{l}``: as in :class:`eqprop.schedule.Write`.
    memory: str
    #: The state buffer (0..2) for states, else 0.
    buffer: int
    bank: int
    depth: int
    width: int


def neuron_banks(cfg: Config) -> int:
    """Banks of the memories only the neuron units use, ``W_0 x`` and F (one word per layer-1
    neuron): one, or striped over P like the states where packed beats give several neuron units
    a layer-1 row in one cycle (:func:`eqprop.program.packing`)."""
    return cfg.hardware.lanes if Program.of(cfg).neuron_units > 1 else 1


def trace_ports(cfg: Config) -> list[TracePort]:
    """The core's traced write ports, in the order of its ``trace`` signature."""
    arith, fx, P = Arith.from_config(cfg), cfg.fixed, cfg.hardware.lanes
    n, L = cfg.network.sizes, cfg.network.n_layers
    banks = neuron_banks(cfg)
    ports = [TracePort(f"w0x_bank{b}", "w0x", 0, b, bank_depth((n[1],), banks), fx.accumulator.width) for b in range(banks)]
    for l in range(1, L + 1):
        for buf in range(3):
            ports += [TracePort(f"s{l}_buf{buf}_bank{b}", f"s{l}", buf, b, max(1, math.ceil(n[l] / P)), fx.state.width) for b in range(P)]
    for name, shape in param_shapes(cfg.network).items():
        depth, width = bank_depth(shape, P), (arith.bias_store if name[0] == "b" else arith.weight_store).width
        ports += [TracePort(f"{name}_bank{b}", name, 0, b, depth, width) for b in range(P)]
    return ports


def trace_location(cfg: Config, port: TracePort, address: int) -> int:
    """The element a traced write at ``address`` of ``port`` writes: row-major for weights."""
    P = cfg.hardware.lanes
    if port.memory == "w0x":
        return address * neuron_banks(cfg) + port.bank
    if port.memory[0] in "WB":
        cols = param_shapes(cfg.network)[port.memory][1]
        per_row = math.ceil(cols / P)
        r = address // per_row
        return r * cols + (address % per_row) * P + (port.bank - r) % P
    return address * P + port.bank


def trace_address(cfg: Config, memory: str, index: int) -> tuple[int, int]:
    """``(bank, address)`` of element ``index`` of ``memory`` (the inverse of :func:`trace_location`)."""
    P = cfg.hardware.lanes
    if memory == "w0x":
        return index % neuron_banks(cfg), index // neuron_banks(cfg)
    if memory[0] in "WB":
        cols = param_shapes(cfg.network)[memory][1]
        r, c = divmod(index, cols)
        return (r + c) % P, r * math.ceil(cols / P) + c // P
    return index % P, index // P
