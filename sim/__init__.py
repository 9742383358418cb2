"""Co-simulation (SPEC section 6): the core's Verilog under cocotb against the golden model.

``runner.cosim`` is the entry point (``eqprop cosim``); ``harness`` is the top that hashes the
core's write trace, ``testbench`` the cocotb test, ``trace`` the expected hashes and the
write-by-write comparison, ``random_configs`` the randomized configurations; ``wishbone`` a cocotb
Wishbone master and the job that trains the core through its Wishbone slave.
"""
