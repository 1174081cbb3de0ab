"""The aiosrun runtime: the trio interpreter, the event log, projections and the CLI."""

__version__ = "0.1.0"
