"""Start the real PrusaLink (run with ITS venv's python) with three test-only changes.

PrusaLink 0.8.1 has no setting for any of them, so this launcher patches them before its
``main()`` runs (nothing else of PrusaLink is touched):
- mDNS/zeroconf: ``printer_adapter/prusa_link.py`` always advertises the printer on every
  interface; a test peer must not, so ``ServiceDiscovery`` is a no-op here.
- the fixed 8 s "waiting for the printer to boot" after opening a non-RPi port
  (``serial/serial_adapter.py``): our responder is ready at once, so that sleep is skipped.
- a race in PrusaLink 0.8.1 that kills its serial sender: the sender's thread writes the
  power-panic record (``FilePrinter.write_file_stats``: ``PPData.connect_path`` must be a
  string) for every line it sends, and a print's first lines can go out before the command
  thread has set the job's path (``job.set_file_path``). The thread then dies with a
  ``ValidationError`` ("This instance is now broken": PrusaLink restarts itself only as a
  daemon), and the print shows PRINTING for ever with nothing sent. Seen on a loaded 2-core
  machine in about one print in five. Here the record names the file's own path until the
  job has one.

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


def patch_pp_record_race(file_printer_class: type) -> None:
    """``FilePrinter.write_file_stats`` as 0.8.1 has it, but with the file's own path in the
    record while the job has none yet (see above); the next line's record names the job's.
    A record is still written for every line: the print's end removes it."""
    import json
    import os

    from prusa.link.printer_adapter.structures.model_classes import PPData

    def write_file_stats(self, file_path, message_number, gcode_number):  # type: ignore[no-untyped-def]
        data = PPData(
            file_path=file_path,
            connect_path=self.model.job.selected_file_path or file_path,
            message_number=message_number,
            gcode_number=gcode_number,
            using_rip_port=self.model.serial_adapter.using_port.is_rpi_port,
        )
        with open(self.data.pp_file_path, "w", encoding="UTF-8") as pp_file:
            pp_file.write(json.dumps(data.dict()))
            os.fsync(pp_file)

    file_printer_class.write_file_stats = write_file_stats  # type: ignore[attr-defined]


def main() -> int:
    from prusa.link import __main__ as link_main
    from prusa.link.printer_adapter import file_printer, prusa_link
    from prusa.link.serial import serial_adapter

    prusa_link.ServiceDiscovery = NoDiscovery  # type: ignore[misc,assignment]
    serial_adapter.sleep = quick_sleep  # type: ignore[assignment]
    patch_pp_record_race(file_printer.FilePrinter)
    return int(link_main.main() or 0)


if __name__ == "__main__":
    sys.exit(main())
