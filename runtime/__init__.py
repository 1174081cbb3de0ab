"""The aiosrun runtime: the trio interpreter, the event log, projections and the CLI."""
