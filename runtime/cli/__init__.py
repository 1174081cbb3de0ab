"""The ``aiosrun`` command line: thin front ends over the Engine.

Each module registers its commands on the group of :mod:`app`; a command parses its
arguments, calls :class:`aiosrun.runtime.engine.Engine`, and renders what it returns. Every
user error ends as one positioned line and exit status 1; wrong usage is click's message and
exit status 2.
"""

from __future__ import annotations

import os
import sys

import click


def main() -> None:
    """Entry point: user errors never surface as tracebacks."""
    from . import (  # noqa: F401  (they register their commands on the group)
        events,
        init,
        mcp,
        memory,
        operator,
        plan,
        runs,
        testing,
        timeline,
        token,
        tooling,
    )
    from .app import cli

    try:
        cli.main(prog_name="aiosrun", standalone_mode=True)
    except Exception as exc:
        from aiosrun.dsl.errors import AiosrunError  # here, not at start-up: keeps it cold
        from aiosrun.runtime.cli.masking import masked

        inner: BaseException = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]  # a refusal inside a parallel step (a full disk)
        if isinstance(inner, AiosrunError):
            click.echo(masked(str(inner)), err=True)
            sys.exit(1)
        if os.environ.get("AIOS_DEBUG"):  # a bug: brief by default, traceback on request
            raise
        click.echo(masked(f"internal error: {type(exc).__name__}: {exc} "
                           "(set AIOS_DEBUG=1 to see where)"), err=True)
        sys.exit(1)

