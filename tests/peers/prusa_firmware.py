"""A Prusa MK3S firmware responder on a pseudo-terminal, for the real PrusaLink to talk to.

This is OUR responder, not Prusa's firmware: no emulator of the Prusa firmware exists (the
``prusalink`` package ships none), so the tests put this in front of the real PrusaLink
0.8.1. It answers what PrusaLink sends and expects, read from its own source:

- ``prusa/link/serial/serial_adapter.py`` (``_get_info``: ``PRUSA Fir`` + ``M862.2 Q`` on
  a freshly opened port) and ``serial/serial_queue.py`` (``N<n> <gcode>*<checksum>`` lines,
  each confirmed by ``ok``; ``M110 N0`` resets the line number);
- ``printer_adapter/printer_polling.py`` (``M862.2 Q`` → type code 302 = MK3S,
  ``PRUSA Fir`` → version, ``M862.1 Q`` → nozzle, ``PRUSA SN``, ``D3 Ax… C…`` EEPROM reads,
  ``M220``/``M221`` → ``100%``, ``M27 P``, ``M73`` → ``NORMAL MODE: Percent done: …``
  and its ``SILENT MODE`` twin,
  ``M420``) with the shapes of ``printer_adapter/structures/regular_expressions.py``;
- ``printer_adapter/auto_telemetry.py`` (``M155 S2 C7``: temperatures, position and fans
  every 2 s), ``filesystem/sd_card.py`` (``M21``: we answer that no SD card is in, so the
  printer's one storage is PrusaLink's local folder) and ``state_manager.py`` /
  ``command_handlers.py`` (``M601`` → ``// action:paused``, ``M602`` →
  ``// action:resumed``, ``M603`` → ``// action:cancel``);
- ../shared/peers/prusalink/README.md (what the real pair did on this machine).

Moves take no time (like Klipper's batch mode): PrusaLink's own streaming sets the pace.
Usage: ``python prusa_firmware.py LINK_PATH`` — makes a pty, symlinks its slave to
LINK_PATH, and serves until killed. While ``LINK_PATH.hold`` exists, the next fan-on
(``M106 S>0``) asks PrusaLink to pause (``// action:pause``), so a test is mid-print for sure.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import tty

FIRMWARE = "3.14.1-8237"
SERIAL = "CZPX4720X004XC34242"
NUMBERED = re.compile(r"^N(?P<n>\d+) (?P<gcode>.*)\*(?P<chk>\d+)$")
D3 = re.compile(r"^D3 Ax(?P<addr>[0-9A-Fa-f]+) C(?P<count>\d+)")
PARAM = re.compile(r"([A-Z])(-?\d+(?:\.\d+)?)")


def checksum(text: str) -> int:
    value = 0
    for ch in text.encode():
        value ^= ch
    return value


class Firmware:
    def __init__(self, fd: int, hold_flag: str) -> None:
        self.fd = fd
        self.hold_flag = hold_flag  # a test makes this file: the next fan-on pauses the print
        self.lock = threading.Lock()
        self.temps = {"T": [25.0, 0.0], "B": [24.0, 0.0]}
        self.percent, self.remaining = -1, -1
        self.report_s = 0.0

    def send(self, *lines: str) -> None:
        data = "".join(f"{line}\n" for line in lines).encode()
        with self.lock, contextlib.suppress(OSError):  # nobody on the other end right now
            os.write(self.fd, data)

    def report(self) -> None:
        """The auto-report M155 asked for (C7: temperatures, position, fans)."""
        while True:
            time.sleep(self.report_s or 0.5)
            if not self.report_s:
                continue
            (t, tt), (b, bt) = self.temps["T"], self.temps["B"]
            self.send(f"T:{t:.1f} /{tt:.1f} B:{b:.1f} /{bt:.1f} T0:{t:.1f} /{tt:.1f} "
                      f"@:0 B@:0 P:{b:.1f} A:30.0",
                      "X:0.00 Y:0.00 Z:0.00 E:0.00 Count X: 0.00 Y:0.00 Z:0.00 E:0.00",
                      "E0:0 RPM PRN1:0 RPM E0@:0 PRN1@:0")

    def progress_lines(self) -> list[str]:
        """Both modes, as the firmware prints them: PrusaLink's print_stat_doubler.py waits
        for the pair before it takes either."""
        return [f"{mode} MODE: Percent done: {self.percent}; print time remaining in mins: "
                f"{self.remaining}; Change in mins: -1" for mode in ("NORMAL", "SILENT")]

    def answer(self, raw: str) -> None:
        line = raw.strip()
        if not line:
            return
        numbered = NUMBERED.match(line)
        if numbered:
            line = numbered.group("gcode").strip()
        line = line.split(";", 1)[0].strip()
        word = line.split(" ", 1)[0].upper() if line else ""
        params = dict(PARAM.findall(line[len(word):].upper()))
        out: list[str] = []
        if line == "PRUSA Fir":
            out.append(FIRMWARE)
        elif line == "PRUSA SN":
            out.append(SERIAL)
        elif line.startswith("M862.2 Q"):
            out.append("302")
        elif line.startswith("M862.1 Q"):
            out.append("0.40")
        elif (m := D3.match(line)) is not None:
            addr, count = int(m.group("addr"), 16), int(m.group("count"))
            for start in range(0, count, 16):
                n = min(16, count - start)
                out.append(f"{addr + start:06x}  " + " ".join(["00"] * n))
        elif word in ("M220", "M221") and "S" not in params:
            out.append("100%")
        elif word == "M27":
            out.append("Not SD printing")
        elif word == "M21":
            out.append("echo:SD init fail")
        elif word == "M20":
            out += ["Begin file list", "End file list"]
        elif word == "M420":
            out.append("Mesh bed leveling not active.")
        elif word == "M73":
            if "P" in params:
                self.percent = int(float(params["P"]))
                self.remaining = int(float(params.get("R", -1)))
            out += self.progress_lines()
        elif word == "M155":
            self.report_s = float(params.get("S", 0))
        elif word in ("M104", "M109", "M140", "M190") and "S" in params:
            key = "B" if word in ("M140", "M190") else "T"
            self.temps[key] = [float(params["S"]), float(params["S"])]
        elif word == "M105":
            (t, tt), (b, bt) = self.temps["T"], self.temps["B"]
            out.append(f"T:{t:.1f} /{tt:.1f} B:{b:.1f} /{bt:.1f} T0:{t:.1f} /{tt:.1f} "
                       "@:0 B@:0 P:24.0 A:30.0")
        elif word == "M106" and float(params.get("S", 255)) > 0 and os.path.exists(
                self.hold_flag):
            os.unlink(self.hold_flag)
            # the firmware asking its host to pause (the knob's "Pause print"): PrusaLink
            # answers with M601 itself (prusa_link.py: PAUSE_PRINT_REGEX → fw_pause_print)
            out.append("// action:pause")
        elif word == "M601":
            out.append("// action:paused")
        elif word == "M602":
            out.append("// action:resumed")
        elif word == "M603":
            out.append("// action:cancel")
        self.send(*out, "ok")

    def serve(self) -> None:
        threading.Thread(target=self.report, daemon=True).start()
        self.send("start")
        buffer = b""
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)  # the other side closed the port; it may open it again
                continue
            if not chunk:
                time.sleep(0.05)
                continue
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                self.answer(raw.decode("ascii", "replace"))


def main(link: str) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a serial line, not a terminal
    name = os.ttyname(slave)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(name, link)
    print(name, flush=True)
    # the slave stays open here too, so a reopen by PrusaLink never sees EIO
    Firmware(master, link + ".hold").serve()


if __name__ == "__main__":
    main(sys.argv[1])
