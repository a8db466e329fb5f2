"""The composition root: settings, the `inferq` command, the all-in-one process."""

__version__ = "0.1.0"
