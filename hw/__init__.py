"""Amaranth HDL of the on-chip learning core (SPEC section 5).

:mod:`eqprop.hw.arith` (the golden model's rounding and saturation as Amaranth expressions),
:mod:`eqprop.hw.lfsr` (the LFSR unit), :mod:`eqprop.hw.core` (inference and continual C-EP / C-VF
learning with homeostasis over P lanes, bit-exact with the golden model), :mod:`eqprop.hw.memories`
(weights in the iCE40UP5K's single-port SPRAMs), :mod:`eqprop.hw.devices` (FPGA budgets checked
before building), :mod:`eqprop.hw.estimate` (resources and rates before synthesis),
:mod:`eqprop.hw.wishbone` (the core as a Wishbone slave), :mod:`eqprop.hw.verilog` and
:mod:`eqprop.hw.synth` (Yosys synthesis and its cell counts).
"""
