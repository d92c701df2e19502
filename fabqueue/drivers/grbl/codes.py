"""What GRBL 1.1's `error:N` and `ALARM:N` codes mean (from the firmware's own tables)."""

from __future__ import annotations

ERRORS: dict[int, str] = {
    1: "G-code words consist of a letter and a value; the letter was not found",
    2: "a G-code word value is missing or its number format is not valid",
    3: "the '$' system command was not recognised or is not supported",
    4: "a negative value was received where a positive value is expected",
    5: "homing is not enabled in the settings ($22)",
    6: "the minimum step pulse time must be greater than 3 microseconds",
    7: "an EEPROM read failed; the affected settings were restored to defaults",
    8: "this '$' command can only be used while GRBL is idle",
    9: "G-code is locked out during an alarm or a jog",
    10: "soft limits cannot be enabled without homing",
    11: "the line is longer than GRBL's 80 characters and was not executed",
    12: "the setting would make the step rate exceed what GRBL supports",
    13: "the safety door is open",
    14: "the build info or startup line is too long to store",
    15: "the jog target is beyond the machine's travel; the jog was ignored",
    16: "the jog command has no '=' or contains prohibited G-code",
    17: "laser mode requires PWM output",
    20: "unsupported or invalid G-code command",
    21: "more than one G-code command from the same modal group in one line",
    22: "the feed rate has not been set",
    23: "the G-code command requires an integer value",
    24: "more than one G-code command that needs axis words in one line",
    25: "a G-code word is repeated in the line",
    26: "no axis words in the line for a command that needs them",
    27: "the line number value is invalid",
    28: "the G-code command is missing a required value word",
    29: "G59.x work coordinate systems are not supported",
    30: "G53 is only allowed with G0 and G1 motion",
    31: "axis words in a line where no command uses them",
    32: "G2/G3 arcs need at least one in-plane axis word",
    33: "the motion command's target is invalid",
    34: "the arc radius value is invalid",
    35: "G2/G3 arcs need at least one in-plane offset word (I, J or K)",
    36: "unused value words in the line",
    37: "the G43.1 tool length offset is not assigned to the tool length axis",
    38: "the tool number is greater than the maximum supported",
}

ALARMS: dict[int, str] = {
    1: "hard limit triggered; the machine position is likely lost, re-homing is recommended",
    2: "a G-code move exceeds the machine's travel (soft limit); position retained",
    3: "reset while in motion; the position may be lost, re-homing is recommended",
    4: "probe fail: the probe was not in the expected state before the probe cycle",
    5: "probe fail: the probe did not touch the workpiece within the programmed travel",
    6: "homing fail: reset during the homing cycle",
    7: "homing fail: the safety door was opened during homing",
    8: "homing fail: the limit switch did not clear on pull-off (check wiring or pull-off)",
    9: "homing fail: the limit switch was not found within the search distance",
    10: "homing fail: the second limit switch of a dual axis was not found",
}


def error_meaning(code: int) -> str:
    return ERRORS.get(code, "an error code this driver does not know")


def alarm_meaning(code: int) -> str:
    return ALARMS.get(code, "an alarm code this driver does not know")
