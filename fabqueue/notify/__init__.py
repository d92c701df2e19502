"""Notifications (issue 18): events become messages in each reader's language, on the
channels they chose (any Apprise URL, or e-mail over FabQueue's SMTP) and on a site's staff
channels; quiet hours hold them until morning; a failing channel is retried, never blocks.

Other domains call one function, in the transaction of the change they announce::

    from fabqueue import notify
    notify.publish(db, "filament_low", site="kc",
                   params={"device": "mk4-1", "material": "PLA", "grams": 80})

(see ``outbox.publish``); ``serve`` sends what is due (``sender.deliver``, periodic).
"""

from __future__ import annotations

from fabqueue.notify.catalog import DEFAULT_EVENTS, EVENTS, STAFF_EVENTS
from fabqueue.notify.outbox import configure, publish, publish_quietly

__all__ = ["DEFAULT_EVENTS", "EVENTS", "STAFF_EVENTS", "configure", "publish", "publish_quietly"]
