"""Exceptions that reach the user: each carries a message that names the problem."""


class GenregError(Exception):
    """Base class of every error genreg reports to a user (the CLI prints the message, no traceback)."""


class DataError(GenregError):
    """A data file is missing, corrupt, truncated or inconsistent."""


class CheckpointError(GenregError):
    """A checkpoint file is unreadable, hostile, truncated or of the wrong shape."""


class ConfigError(GenregError):
    """A configuration value is invalid; the message names the key."""


class PopulationError(GenregError):
    """A population cannot be built (too large for memory, NaN weights, ...)."""


class TrainingError(GenregError):
    """Gradient training cannot go on (non-finite weights or loss)."""


class FitnessError(GenregError):
    """A user's fitness callable raised, or returned something other than one finite number per genome."""


class RunInterrupted(GenregError):
    """A run stopped by SIGINT or SIGTERM after writing its checkpoint; the CLI exits with 128 + the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signal = int(signum)


class ClusterError(GenregError):
    """Ray is missing, a cluster cannot be reached, or every worker of a run was lost."""
