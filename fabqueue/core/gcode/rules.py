"""What each kind of machine may be sent: an explicit allow-list, the volume, temperatures.

Anything not listed is refused, so a new firmware command is refused until someone decides it
is safe. Refused on purpose (examples): ``G53`` (machine coordinates), ``G54``–``G59`` and
``G10`` (work offsets), ``M92`` (steps/mm), ``M500``–``M502`` (save/load/reset settings),
``M211`` (software endstops), ``M851``/``M206``/``M290`` (probe, home and baby-step offsets),
``M303`` (PID autotune), ``M997`` (firmware update), ``M999`` (restart), GRBL ``$`` commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MachineKind(StrEnum):
    PRINTER = "printer"
    LASER = "laser"


PRINTER_COMMANDS = frozenset({
    "G0", "G1", "G2", "G3",  # moves and arcs (checked against the build volume)
    "G4",  # dwell
    "G20", "G21",  # inches / millimetres
    "G28",  # home
    "G29",  # bed levelling probe
    "G90", "G91", "G92",  # absolute / relative / set position (followed)
    "M73",  # progress
    "M82", "M83",  # absolute / relative extrusion
    "M84", "M18",  # motors off
    "M104", "M109",  # nozzle temperature (within the material's limit)
    "M140", "M190",  # bed temperature (within the material's limit)
    "M105",  # report temperatures
    "M106", "M107",  # part fan
    "M117",  # message on the display
    "M400",  # wait for moves
    "M486",  # label objects (cancel object)
})
# Settings that stay in the printer after the print (RAM until a reset, or saved by M500) and
# change the next person's job: refused with their own reason, so staff know why.
PERSISTENT_SETTINGS = frozenset({
    "M92",  # steps per mm
    "M201", "M202", "M203", "M204", "M205",  # acceleration, speed and jerk limits
    "M220", "M221",  # speed and flow factor
    "M851",  # probe offset
    "M900",  # linear advance
    "M500", "M502",  # save settings to EEPROM / reset them to the firmware's defaults
})
# What PrusaSlicer itself writes from FabQueue's profiles (machine limits, acceleration):
# accepted in a program FabQueue sliced, never in staff G-code.
SLICER_SETTINGS = frozenset({"M201", "M203", "M204", "M205", "M220", "M221", "M900"})
# Bare letters Marlin reads as flags (``G28 X Y`` homes X and Y); anywhere else a letter
# without a number is ignored by Marlin while it looks like a value: moves and G92 take an axis
# only if ``parser.seenval()`` (Marlin/src/gcode/gcode.cpp, get_destination_from_command():
# ``if ( (seen[i] = parser.seenval(AXIS_CHAR(i))) )``; G92.cpp the same), and Klipper stops
# with "Unable to parse move".
FLAG_WORDS = {"G28": frozenset("XYZ"), "M84": frozenset("XYZE"), "M18": frozenset("XYZE")}
# Marlin's serial and SD readers keep MAX_CMD_SIZE - 1 characters of a line and skip the rest:
# Marlin/src/gcode/queue.cpp, process_stream_char() (read at MarlinFirmware/Marlin 012c1a4):
#     buff[ind++] = c;
#     if (ind >= MAX_CMD_SIZE - 1)
#       sis = PS_EOL;             // Skip the rest on overflow
# and Marlin/Configuration_adv.h, "@section serial" (at c612b56):
#     // The ASCII buffer for serial input
#     #define MAX_CMD_SIZE 96
# Characters after ";" are never stored (same function: "Start end-of-line comment"), so only
# the command part counts.
MAX_COMMAND_CHARS = 95
# What every printer program ends with, whatever the file said: wait for the last move,
# heaters off (nozzle, bed), part fan off, motors released.
SAFE_ENDING = ("M400", "M104 S0", "M140 S0", "M107", "M84")
LASER_COMMANDS = frozenset({
    "G0", "G1", "G2", "G3",  # moves and arcs (checked against the bed)
    "G4",  # dwell
    "G17",  # XY plane (the only one followed)
    "G20", "G21",  # inches / millimetres
    "G90", "G91",  # absolute / relative
    "G94",  # feed per minute
    "M2", "M30",  # program end
    "M3", "M4", "M5",  # laser on (constant / dynamic power), off
    "M8", "M9",  # air assist on / off
})
# Words (other than the command itself) each kind may use.
PRINTER_WORDS = frozenset("XYZEFSPRIJTDKQC")
LASER_WORDS = frozenset("XYZFSPIJR")
# Slack on X/Y: slicers put purge lines and skirts right at the edge.
TOLERANCE_MM = 0.5
# The hottest a material's profile asks for, plus this much, is the most a program may ask.
TEMPERATURE_MARGIN_C = 10.0


@dataclass(frozen=True)
class MachineLimits:
    """One machine, as the check sees it. Z of a laser is its focus travel (0: no Z moves)."""

    kind: MachineKind
    volume_mm: tuple[float, float, float]
    nozzle_max_c: float = 0.0  # printers: the material's limit
    bed_max_c: float = 0.0
    tools: int = 1
    max_power_s: float | None = None  # lasers: GRBL $30
    tolerance_mm: float = TOLERANCE_MM
    sliced: bool = False  # a program FabQueue's slicer wrote (SLICER_SETTINGS allowed)


def allowed_commands(kind: MachineKind | str) -> frozenset[str]:
    return PRINTER_COMMANDS if MachineKind(kind) == MachineKind.PRINTER else LASER_COMMANDS


def allowed_words(kind: MachineKind | str) -> frozenset[str]:
    return PRINTER_WORDS if MachineKind(kind) == MachineKind.PRINTER else LASER_WORDS


def temperature_limit(*temperatures: float, margin: float = TEMPERATURE_MARGIN_C) -> float:
    """The most a program may ask for, given a material profile's temperatures."""
    return max(temperatures) + margin


def safe_ending(tools: int = 1) -> tuple[str, ...]:
    """FabQueue's own last lines of a printer program; every nozzle's heater when there are
    several (``M104 S0`` alone switches off only the active tool's)."""
    nozzles = tuple(f"M104 T{tool} S0" for tool in range(1, tools))
    return (*SAFE_ENDING[:2], *nozzles, *SAFE_ENDING[2:])
