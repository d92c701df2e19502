"""The GRBL 1.1 laser driver: streams G-code over a serial port with pyserial.

Protocol facts are in /work/shared/notes/grbl.md. Modules, one concept each:

- :mod:`.parsing`: GRBL's reply lines → typed items; anything unrecognised is ``Noise``
  (pure, never raises).
- :mod:`.link`: the serial port and a reader thread that survives anything but a closed port.
- :mod:`.streaming`: character counting (≤ 127 bytes in flight in GRBL's 128-byte RX
  buffer) and the ``Bf:`` check that notices a lost or an extra reply.
- :mod:`.driver`: :class:`GrblDriver`, the ``Driver`` protocol on top of them: soft-reset
  and banner handshake, the reader's callbacks, hold/resume/stop; with
- :mod:`.jobs`: jobs and frame runs, streamed by a thread of their own, and how a stop
  becomes the job's outcome (beam off first), and
- :mod:`.reporting`: status and ``laser:*`` events.

Settings writes (``$N=``) go one at a time, each waiting for its ``ok`` (the EEPROM write
stalls the controller's serial interrupt). The job ends on the ``ok`` of a trailing
``G4 P0``, which GRBL answers only once every planned move has run.
"""

from fabqueue.drivers.grbl.driver import GrblDriver
from fabqueue.drivers.grbl.jobs import END_SYNC, LINE_LIMIT, prepare_lines
from fabqueue.drivers.grbl.streaming import RX_BUFFER_LIMIT

__all__ = ["END_SYNC", "LINE_LIMIT", "RX_BUFFER_LIMIT", "GrblDriver", "prepare_lines"]
