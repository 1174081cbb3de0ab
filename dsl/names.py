"""The shape of names the runtime shares with playbooks: event names are dot-separated words
(``customer.signed_up``). One pattern, so validate, the Engine and the CLI agree."""

from __future__ import annotations

import re

EVENT_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
