"""Amaranth HDL of the on-chip learning core (SPEC section 5).

:mod:`eqprop.hw.arith` (the golden model's rounding and saturation as Amaranth expressions),
:mod:`eqprop.hw.lfsr` (the LFSR unit), :mod:`eqprop.hw.core` (inference and continual C-EP / C-VF
learning with homeostasis over P lanes, bit-exact with the golden model), :mod:`eqprop.hw.devices`
(FPGA budgets checked before building) and :mod:`eqprop.hw.verilog`.
"""
