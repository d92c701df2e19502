"""Start the real PrusaLink (run with ITS venv's python) with two test-only changes.

PrusaLink 0.8.1 has no setting for either, so this launcher patches them before its
``main()`` runs (nothing else of PrusaLink is touched):
- mDNS/zeroconf: ``printer_adapter/prusa_link.py`` always advertises the printer on every
  interface; a test peer must not, so ``ServiceDiscovery`` is a no-op here.
- the fixed 8 s "waiting for the printer to boot" after opening a non-RPi port
  (``serial/serial_adapter.py``): our responder is ready at once, so that sleep is skipped.

Usage: ``<prusalink venv>/bin/python prusalink_launch.py -f -c prusalink.ini …``
"""

from __future__ import annotations

import sys
import time


class NoDiscovery:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def unregister(self) -> None:
        pass


def quick_sleep(seconds: float) -> None:
    time.sleep(0.2 if seconds == 8 else seconds)


def main() -> int:
    from prusa.link import __main__ as link_main
    from prusa.link.printer_adapter import prusa_link
    from prusa.link.serial import serial_adapter

    prusa_link.ServiceDiscovery = NoDiscovery  # type: ignore[misc,assignment]
    serial_adapter.sleep = quick_sleep  # type: ignore[assignment]
    return int(link_main.main() or 0)


if __name__ == "__main__":
    sys.exit(main())
