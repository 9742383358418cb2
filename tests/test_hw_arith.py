"""The HDL's rounding, saturation and constant products against the golden model's, in the Amaranth simulator."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from eqprop import fixed
from eqprop.fixed import ROUNDING_MODES, Format
from eqprop.hw.arith import requantize, saturate, shift_round, square, times_constant

N = 300


def evaluate(shape, build, values):
    """Drive ``values`` into a signal of ``shape`` and read ``build(signal)`` back for each."""
    m = Module()
    a = Signal(shape)
    expr = build(a)
    out = Signal(expr.shape())
    m.d.comb += out.eq(expr)
    got = []

    async def bench(ctx):
        for v in values:
            ctx.set(a, int(v))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, dtype=np.int64)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("shape", [signed(24), unsigned(20)], ids=["signed", "unsigned"])
def test_shift_round_matches_the_golden_model(mode, shape):
    rng = np.random.default_rng(ROUNDING_MODES.index(mode))
    lo, hi = (-(1 << 23), 1 << 23) if shape.signed else (0, 1 << 20)
    values = rng.integers(lo, hi, N)
    for shift in (1, 5, 11):
        np.testing.assert_array_equal(evaluate(shape, lambda a: shift_round(a, shift, mode), values), fixed.shift_round(values, shift, mode))
    np.testing.assert_array_equal(evaluate(shape, lambda a: shift_round(a, -3, mode), values), values << 3)


@pytest.mark.parametrize("fmt", [Format(True, 2, 14), Format(False, 1, 7), Format(True, 1, 3)], ids=str)
def test_saturate_and_requantize_match_the_golden_model(fmt):
    rng = np.random.default_rng(fmt.width)
    values = rng.integers(-(1 << 22), 1 << 22, N)
    np.testing.assert_array_equal(evaluate(signed(23), lambda a: saturate(a, fmt), values), fixed.saturate(values, fmt))
    np.testing.assert_array_equal(evaluate(signed(23), lambda a: requantize(a, fmt.n + 6, fmt), values), fixed.requantize(values, fmt.n + 6, fmt))


@pytest.mark.parametrize("constant", [0, 1, 3, 7, 1000, 26214, 65535, -5])
def test_products_by_constants_and_squares_are_exact(constant):
    value = Signal(signed(18))
    product, squared_in = Signal(signed(40)), Signal(8)
    squared = Signal(16)
    m = Module()
    m.d.comb += [product.eq(times_constant(value, constant)), squared.eq(square(squared_in))]
    samples = np.random.default_rng(constant & 0xFF).integers(-(1 << 17), 1 << 17, 200)

    async def bench(ctx):
        for v in samples.tolist():
            ctx.set(value, v)
            ctx.set(squared_in, v & 0xFF)
            assert ctx.get(product) == v * constant
            assert ctx.get(squared) == (v & 0xFF) ** 2

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
