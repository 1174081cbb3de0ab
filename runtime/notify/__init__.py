"""Notifications (DESIGN section 11): tell the operator, by email or webhook, when something
waits for them or went wrong, once per item.

:mod:`.channels` reads ``notify:`` from ``aios.yaml``; :mod:`.messages` turns log records into
notifications (pure); :mod:`.notifier` follows the log from ``serve`` and sends each one once
through the email and http adapters, recording ``NotificationSent`` in the log.
"""

from __future__ import annotations

from .channels import TRIGGERS, Channel, channels_of
from .messages import Notification, notification_for
from .notifier import Notifier

__all__ = ["TRIGGERS", "Channel", "Notification", "Notifier", "channels_of",
           "notification_for"]
