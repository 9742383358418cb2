"""eqprop: equilibrium propagation from a PyTorch reference model to FPGA gateware that learns on chip.

This package (the ``sw/`` folder) holds the configuration, the float reference model, training,
baselines and the command line. ``eqprop.hw``, ``eqprop.sim`` and ``eqprop.boards`` are the HDL,
co-simulation and board layers.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eqprop")  # pyproject.toml's, as installed
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
