"""eqprop: equilibrium propagation from a PyTorch reference model to FPGA gateware that learns on chip.

This package (the ``sw/`` folder) holds the configuration, the float reference model, training,
baselines and the command line. ``eqprop.hw``, ``eqprop.sim`` and ``eqprop.boards`` are the HDL,
co-simulation and board layers.
"""

__version__ = "0.1.0"
