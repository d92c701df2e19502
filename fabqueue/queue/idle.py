"""An idle machine's loop, made cheap: it looks for work when something may have changed.

Looking for work is four or five database queries (the machine's row, its start gate, the
site's heating count, the queues' jobs, fair shares); with both queues empty, only the first
two (nothing to pick: ``DeviceWorkerBase.queued``). Done every poll by every idle machine,
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

from fabqueue.queue import control
from fabqueue.queue.device_base import DeviceWorkerBase

# polls between looks of a machine with nothing queued and no command: the gate's verdict
# reaches the board, a repair is made, within 10 s (5 was ~a fifth of an idle farm's CPU)
LOOK_EVERY = 10
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
        if woken or now - self._looked_at >= LOOK_EVERY * self.poll_s or self.queued():
            self._looked_at = now
            return True
        return False
