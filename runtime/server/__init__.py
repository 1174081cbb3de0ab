"""The HTTP server of ``aiosrun serve --http``: the run API, live events and webhooks.

A thin front end over the Engine (DESIGN section 10): :mod:`.app` routes, :mod:`.auth`
bearer tokens, :mod:`.webhooks` signatures, :mod:`.sse` live streams, :mod:`.bodies`
request limits, :mod:`.responses` the error shape, :mod:`.config` the ``server`` settings,
:mod:`.openapi` the API described, and :mod:`.serve` the process that runs it beside
schedules and timers. Imported only by the code that serves HTTP, so the CLI starts fast.
"""
