"""The operator's page (DESIGN section 11): ``/ui/``, server-rendered over the Engine.

:mod:`.sessions` keeps logins (an HttpOnly, SameSite=Strict cookie naming a session held in
memory, with its CSRF token); :mod:`.gantt` draws a run's timeline as SVG geometry;
:mod:`.render` is the Jinja2 environment (autoescaping on); :mod:`.pages` the routes. No
CDN, no inline script: the page's JavaScript is ``static/ui.js``, allowed by a strict
Content-Security-Policy.
"""

from __future__ import annotations

from .pages import ui_routes

__all__ = ["ui_routes"]
