"""Amaranth HDL of the on-chip learning core (SPEC section 5).

Built so far: :mod:`eqprop.hw.arith` (the golden model's rounding and saturation as Amaranth
expressions), :mod:`eqprop.hw.lfsr` (the LFSR unit) and :mod:`eqprop.hw.core` (the core's
inference: the free phase over P lanes with skewed weight memories, bit-exact with the golden
model). Learning on chip is being built.
"""
