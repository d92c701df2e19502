"""G-code read with a real tokenizer and checked against one machine (pure: no I/O).

``tokens`` splits a line into words; ``rules`` says what each kind of machine may be sent;
``check`` follows the program's state (units, absolute/relative, offsets, arcs) and returns
the first problem as a Finding with its line number.
"""

from fabqueue.core.gcode.check import check_program
from fabqueue.core.gcode.rules import MachineKind, MachineLimits, allowed_commands

__all__ = ["MachineKind", "MachineLimits", "allowed_commands", "check_program"]
