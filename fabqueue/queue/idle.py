"""An idle machine's loop, made cheap: it looks for work when something may have changed.

Looking for work is four or five database queries (the machine's row, its start gate, the
site's heating count, the queues' jobs, fair shares). Done every poll by every idle machine,
it was most of an idle farm's CPU (~0.5% of a core per machine in a device host). Nothing of
it can change the answer while both of the machine's queues are empty and nobody sent it a
command: new work arrives as a queue entry, a bed-clear or a confirmation as a command
(which wakes the loop's blocking wait at once). So the loop looks at once after a command or
whenever the queues' lengths are not both zero, and otherwise every :data:`LOOK_EVERY`
polls, for what changes in the database alone (a maintenance task falling due, a machine
left busy to repair, one back from an error). A machine with work waiting (for the site's
heating limit, another material) looks every poll, as before.
"""

from __future__ import annotations

import time

from rq import Queue

from fabqueue.queue import control
from fabqueue.queue.device_base import DeviceWorkerBase

LOOK_EVERY = 5  # polls between looks of a machine with nothing queued and no command
BEAT_EVERY_S = 3.0  # the worker-alive key lives 10 s: a beat this often keeps it


class IdleLooks(DeviceWorkerBase):
    _looked_at = 0.0  # monotonic time of the last look for work
    _beat_at = 0.0

    def beat(self) -> None:
        now = time.monotonic()
        if now - self._beat_at >= BEAT_EVERY_S:
            control.beat(self.ctx.redis, self.device_id)
            self._beat_at = now

    def look_due(self, woken: bool) -> bool:
        """Whether this step looks for work (``woken``: a command came in this step)."""
        now = time.monotonic()
        if woken or now - self._looked_at >= LOOK_EVERY * self.poll_s or self._queued():
            self._looked_at = now
            return True
        return False

    def _queued(self) -> bool:
        """Any entry on the machine's own queue or its pool (one round trip)."""
        prefix = Queue.redis_queue_namespace_prefix
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.llen(prefix + self.own)
        pipe.llen(prefix + self.pool)
        return any(pipe.execute())
