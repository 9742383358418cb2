"""Pieces every lane-parallel unit of the core uses: rotation across the lanes, delay lines, trees.

The weight banks are skewed (:mod:`eqprop.layout`): in a beat for row r, bank b holds the word of
lane ``(b - r) mod P``. :func:`rotate` turns bank order into lane order (and back, with the
opposite amount) as a barrel of ``ceil(log2 P)`` levels of 2-to-1 multiplexers, so its logic
grows as ``P log P``, not ``P^2``.
"""

from __future__ import annotations

import math
from functools import reduce

from amaranth.hdl import Module, Mux, Signal, Value

from .arith import add_pairs


def rotate(m: Module, values: list, amount: Value, name: str) -> list[Value]:
    """``out[t] = values[(t + amount) mod P]`` for ``0 <= amount < P`` (combinational)."""
    lanes = len(values)
    current = list(values)
    for level in range(math.ceil(math.log2(lanes)) if lanes > 1 else 0):
        step = (1 << level) % lanes
        shifted = [current[(t + step) % lanes] for t in range(lanes)]
        nxt = []
        for t in range(lanes):
            signal = Signal.like(Value.cast(current[t]), name=f"{name}_rot{level}_lane{t}")
            m.d.comb += signal.eq(Mux(amount[level], shifted[t], current[t]))
            nxt.append(signal)
        current = nxt
    return current


def delayed(m: Module, value: Value, cycles: int, name: str) -> Value:
    """``value`` as it was ``cycles`` clock cycles ago (a chain of registers)."""
    for stage in range(cycles):
        register = Signal.like(Value.cast(value), name=f"{name}_d{stage + 1}")
        m.d.sync += register.eq(value)
        value = register
    return value


def stage(m: Module, prefix: str, values: dict) -> dict:
    """A pipeline stage: each value registered as ``{prefix}_{name}``."""
    registers = {}
    for name, value in values.items():
        registers[name] = Signal.like(Value.cast(value), name=f"{prefix}_{name}")
        m.d.sync += registers[name].eq(value)
    return registers


def stage_lanes(m: Module, prefix: str, name: str, values: list) -> list:
    """A pipeline stage of per-lane values, registered as ``{prefix}_{name}{lane}``."""
    return list(stage(m, prefix, {f"{name}{t}": value for t, value in enumerate(values)}).values())


def staged_sum(m: Module, terms: list[Value], shape, levels_per_stage: int, name: str) -> tuple[Value, int]:
    """An adder tree over ``terms`` with a register after every ``levels_per_stage`` levels;
    returns the sum and the number of registers it went through."""
    level = stages = 0
    while len(terms) > 1:
        terms = add_pairs(terms)
        level += 1
        if level % levels_per_stage == 0 or len(terms) == 1:
            registered = []
            for i, term in enumerate(terms):
                register = Signal(shape, name=f"{name}_tree{stages}_{i}")
                m.d.sync += register.eq(term)
                registered.append(register)
            terms, stages = registered, stages + 1
    return reduce(lambda a, b: a + b, terms), stages
