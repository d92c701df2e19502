"""GRBL 1.1h settings (`$$`): the 34 values, their printed form and the write rules."""

from __future__ import annotations

# Build constants of a stock GRBL 1.1h on an ATmega328p (`$I` reports `[OPT:V,15,128]`).
BANNER = "Grbl 1.1h ['$' for help]"
UNLOCK_MESSAGE = "[MSG:'$H'|'$X' to unlock]"
PLANNER_BLOCKS = 15
RX_BUFFER_BYTES = 128
LINE_MAX_CHARS = 80

#: Integer-valued settings (printed without decimals).
INTEGER_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})


def default_settings(
    *,
    laser_mode: bool = True,
    max_s: float = 1000,
    homing: bool = False,
    soft_limits: bool = False,
    travel_mm: tuple[float, float, float] = (400.0, 300.0, 50.0),
    status_mask: int = 1,
) -> dict[int, float]:
    """A diode/CO2 laser's settings; rapid rates are a typical 6000 mm/min for X and Y."""
    return {
        0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0,
        10: status_mask, 11: 0.010, 12: 0.002, 13: 0,
        20: 1 if soft_limits else 0, 21: 0, 22: 1 if homing else 0, 23: 0,
        24: 25.0, 25: 500.0, 26: 250, 27: 1.0,
        30: max_s, 31: 0, 32: 1 if laser_mode else 0,
        100: 80.0, 101: 80.0, 102: 250.0,
        110: 6000.0, 111: 6000.0, 112: 1000.0,
        120: 1000.0, 121: 1000.0, 122: 100.0,
        130: travel_mm[0], 131: travel_mm[1], 132: travel_mm[2],
    }  # fmt: skip


def format_setting(number: int, value: float) -> str:
    if number in INTEGER_SETTINGS:
        return f"${number}={round(value)}"
    return f"${number}={value:.3f}"


def validate_write(settings: dict[int, float], number: int, value: float) -> int | None:
    """The GRBL error code a write `$number=value` gets, or None when it is accepted."""
    if number not in settings:
        return 3  # invalid $ statement
    if value < 0:
        return 4  # negative value
    if number == 20 and value and not settings[22]:
        return 10  # soft limits need homing
    return None
