"""The Jinja2 environment of the operator's page: templates from this package, autoescaping
always on (whatever a template's name), and the few helpers the templates need to show JSON
readably. A key that a record lacks renders as nothing (plans and items are dicts whose keys
vary by kind); the browser tests load every page and fail on an error page."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader

MAX_DEPTH = 6


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("aiosrun.runtime.server.ui", "templates"),
                      autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["pretty"] = pretty
    env.filters["usd"] = usd
    env.filters["when"] = when
    env.tests["mapping"] = lambda v: isinstance(v, dict)
    env.tests["sequence"] = lambda v: isinstance(v, (list, tuple))
    env.globals["MAX_DEPTH"] = MAX_DEPTH
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def pretty(value: Any) -> str:
    """JSON, indented, for values too deep for the tree or for a textarea."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def usd(value: Any) -> str:
    amount = float(value or 0)
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


def when(stamp: Any) -> str:
    """A record's UTC timestamp as ``2026-12-02 06:16:38 UTC``."""
    if not stamp:
        return ""
    try:
        moment = dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return str(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
