"""What executes runs: the trio interpreter, llm steps, event dispatch, schedules, leases.

The Engine (:mod:`aiosrun.runtime.engine`) is this package's only client outside it.
"""
