"""User-facing errors.

Anything a user can get wrong (a configuration, a file, a command-line value) raises an
:class:`EqpropError`. The command line prints its message as one line and exits non-zero;
library callers can catch it. Programming errors stay ordinary exceptions with tracebacks.
"""


class EqpropError(Exception):
    """A mistake in what the user asked for; the message says which input and why."""


class ConfigError(EqpropError):
    """An invalid or inconsistent configuration."""


class DataError(EqpropError):
    """A data set that is unknown, missing, corrupt or does not fit the network."""


class CheckpointError(EqpropError):
    """A checkpoint that is missing, corrupt, or does not match its configuration."""


class SimulationError(EqpropError):
    """A simulator that is missing or too old, or a design that does not match its configuration."""
