"""One process, one trio nursery: the HTTP server beside schedules, timers and recovery.

Hypercorn's trio worker serves the app in the same nursery as :meth:`Engine.serve`, so a
run started over HTTP executes in the Engine's nursery next to the scheduled ones, at most
``server.max_concurrent_runs`` at a time. SIGINT/SIGTERM (caught by ``Engine.serve``) stop
both: runs stop at their next step, streams end, the listener closes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, cast

import trio
from starlette.routing import BaseRoute

from .app import build_app
from .config import ServerConfig, load_config

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine

GRACEFUL_SECONDS = 5.0


def config_for(engine: Engine, listen: str | None) -> ServerConfig:
    """The server's settings from the workspace (raises ``BadRequest`` when unusable)."""
    return load_config(engine.ws.settings.data, engine.ws.secrets, listen)


async def serve_http(engine: Engine, config: ServerConfig, say: Callable[[str], None], *,
                     interval: float = 1.0, extra: Sequence[BaseRoute] = ()) -> None:
    """Serve HTTP and run ``engine.serve`` until a signal stops them."""
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from hypercorn.typing import ASGIFramework

    engine.run_slots.total_tokens = config.max_concurrent_runs
    app = build_app(engine, config, engine.stop_requested, extra)
    hyper = Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    hyper.keep_alive_timeout = config.read_timeout
    hyper.graceful_timeout = GRACEFUL_SECONDS
    hyper.accesslog = None
    hyper.errorlog = None
    gc.freeze()  # what start-up built lives as long as the server: no collection walks it
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, cast(ASGIFramework, app), hyper,
                                            shutdown_trigger=engine.stop_requested.wait))
        for bind in binds:
            say(f"listening on {bind}" + ("" if config.tokens else
                                          " (no server.tokens: loopback only, no auth)"))
        try:
            await engine.serve(say, interval=interval)
        finally:
            engine.request_stop()  # serve ended (a signal, an error): the listener too
