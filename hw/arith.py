"""The golden model's scalar semantics as Amaranth expressions.

:func:`shift_round` and :func:`saturate` build the hardware for :func:`eqprop.fixed.shift_round`
and :func:`eqprop.fixed.saturate`: an arithmetic right shift with the format's rounding mode, and
a clamp to a format's range. Every datapath unit of the core composes these, so the rounding of
the HDL and of the golden model are defined in one pair of places and tested against each other
(``tests/test_hw_arith.py``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, signed, unsigned

from eqprop.fixed import ROUNDING_MODES, Format


def shape_of(fmt: Format):
    """The Amaranth shape of a format's integers."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def shift_round(value: Value, shift: int, mode: str) -> Value:
    """``value * 2^-shift`` rounded with ``mode`` (exact left shift when ``shift <= 0``)."""
    if mode not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {mode!r}")
    value = Value.cast(value)
    if shift <= 0:
        return value << -shift
    half = Const(1 << (shift - 1))
    if mode == "down":
        return value >> shift
    if mode == "up":
        return -((-value) >> shift)
    if mode == "nearest":
        return (value + half) >> shift
    negative = value < 0 if value.shape().signed else Const(0)
    if mode == "in":
        return Mux(negative, -((-value) >> shift), value >> shift)
    if mode == "out":
        return Mux(negative, -((-value + half) >> shift), (value + half) >> shift)
    # convergent: round half to even
    floor = value >> shift
    rest = value[:shift]
    return floor + ((rest > half) | ((rest == half) & floor[0]))


def saturate(value: Value, fmt: Format) -> Value:
    """``value`` clamped to the range of ``fmt``, as a value of the format's shape."""
    value = Value.cast(value)
    clamped = Mux(value > fmt.max_int, fmt.max_int, Mux(value < fmt.min_int, fmt.min_int, value))
    bits = clamped[: fmt.width]
    return bits.as_signed() if fmt.signed else bits.as_unsigned()


def requantize(value: Value, frac_bits: int, fmt: Format, rounding: str | None = None) -> Value:
    """A value with ``frac_bits`` fraction bits into ``fmt``: round with its mode, then saturate."""
    return saturate(shift_round(value, frac_bits - fmt.n, rounding or fmt.rounding), fmt)


def add_pairs(terms: list) -> list:
    """One level of an adder tree: neighbours summed, an odd last term passed on."""
    return [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)] + ([terms[-1]] if len(terms) % 2 else [])


def tree_sum(terms: list) -> Value:
    """The sum of ``terms`` (at least one) as a balanced adder tree: ``log2`` adders deep, not a chain."""
    while len(terms) > 1:
        terms = add_pairs(terms)
    return Value.cast(terms[0])


def times_constant(value: Value, constant: int) -> Value:
    """``value * constant`` as shifts and adds of the constant's signed digits (canonical signed
    digits: no two adjacent), so that a product by a constant takes adders, not a DSP block."""
    value = Value.cast(value)
    if constant == 0:
        return Const(0)
    digits, k, c = [], 0, abs(constant)
    while c:
        if c & 1:
            digit = 2 - (c & 3)  # +1, or -1 when the next bit is set too (then carry)
            digits.append((k, digit))
            c -= digit
        c >>= 1
        k += 1
    # the positive and the negative digits each summed as a balanced tree, then one subtraction
    # (the leading digit is positive)
    positive = tree_sum([value << shift for shift, digit in digits if digit > 0])
    negative = [value << shift for shift, digit in digits if digit < 0]
    total = positive - tree_sum(negative) if negative else positive
    if constant < 0:
        return -total
    # an unsigned value times a positive constant is never negative (an address, a count)
    return total if value.shape().signed else total.as_unsigned()


def square(value: Value) -> Value:
    """``value * value`` of an unsigned value as the balanced sum of its shifted partial products
    (adders, no DSP block)."""
    value = Value.cast(value)
    return tree_sum([Mux(value[bit], value << bit, 0) for bit in range(len(value))])
