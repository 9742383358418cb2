"""eqprop: equilibrium propagation from a PyTorch reference model to FPGA gateware that learns on chip.

This package (the ``sw/`` folder) holds the configuration, the float reference model, training,
baselines and the command line; :class:`eqprop.Flow` runs the stages from Python as the command
line does. ``eqprop.hw``, ``eqprop.sim`` and ``eqprop.boards`` are the HDL,
co-simulation and board layers.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eqprop")  # pyproject.toml's, as installed
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = ["Flow", "__version__"]


def __getattr__(name: str):
    """``eqprop.Flow`` (:mod:`eqprop.flow`), imported when first asked for: ``eqprop --version`` and the
    host driver need none of its imports."""
    if name == "Flow":
        from .flow import Flow

        return Flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
