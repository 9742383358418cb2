"""Amaranth HDL of the on-chip learning core (SPEC section 5).

Built so far: :mod:`eqprop.hw.arith` (the golden model's rounding and saturation as Amaranth
expressions) and :mod:`eqprop.hw.lfsr` (the LFSR unit). The core itself is being built.
"""
