"""The G-code check's model of the machine, proved against a real firmware's interpreter.

Klippy (Klipper's host program, from ../shared/peers/klipper, installed by
scripts/install_klipper_peer.sh) runs G-code from a file in batch mode, with no printer. Its
``GET_POSITION`` logs the toolhead position (machine mm, G92 offsets applied) and a move
outside the configured volume logs ``Move out of range``. We run the same programs through
Klippy and through ``core.gcode.follow_program`` and compare where each says the head is, or
at which line each refuses.

Where Klipper and Marlin differ, the checker follows the stricter reading:
- Both run only the first command word of a line (``G90 G91`` runs ``G90``; Marlin's
  GCodeParser::parse, Klipper's gcode.py ``_process_commands``); the checker refuses the line.
- A letter without a number (``G92 Z``, ``G1 X``): Marlin ignores the word (``seenval``), Klipper
  stops with "unable to parse"; the checker refuses the line, at the line Klipper stops.
- Klipper's arcs (``[gcode_arcs]``) take only I/J in absolute mode: no ``R``, no relative arcs,
  and ``P`` (Marlin's full circles) is ignored. The generated arcs here are I/J, absolute.
- Klipper ignores commands it does not know (a logged "Unknown command", no error), so ``G20``
  (inches) is left out of the generated programs.
"""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fabqueue.core.gcode import MachineKind, MachineLimits, check_program
from fabqueue.core.gcode.check import follow_program

REPO = Path(__file__).resolve().parents[2]
PEER = Path(os.environ.get("FABQUEUE_KLIPPER_PEER", REPO / ".peers" / "klipper"))
PYTHON = PEER / "klippy-venv/bin/python"
KLIPPY = PEER / "klipper/klippy/klippy.py"
VOLUME = (250.0, 210.0, 220.0)  # the peer's printer.cfg: position_max of X, Y, Z
# No slack: Klipper's range is exactly 0..position_max.
LIMITS = MachineLimits(MachineKind.PRINTER, VOLUME, nozzle_max_c=250, bed_max_c=100,
                       tolerance_mm=0.0)
HANG_GUARD_S = 600  # only against a hung Klippy; a run takes seconds
POSITION_RE = re.compile(r"^toolhead: X:(\S+) Y:(\S+) Z:(\S+)", re.M)
ERROR_RE = re.compile(
    r"^(Move out of range|Must home axis first|Error on '[^']*'|Unable to parse move)", re.M)


@pytest.fixture(scope="module")
def klippy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Run]]:
    """Every Klippy run of this module, started together (each takes seconds, mostly start-up).
    The generated programs run as one batch: each starts with G28 (which also clears G92
    offsets, in Klipper as in Marlin and in the check) and logs its end position."""
    require_klippy()
    batch = [line for program in GENERATED for line in (*program, "GET_POSITION")]
    return klippy({"issue": [traced(program) for program, _, _ in ISSUE],
                   "generated": [batch],
                   "leaving": [traced(program) for program in LEAVING]},
                  tmp_path_factory.mktemp("klippy"))


def require_klippy() -> None:
    missing = [p for p in (PYTHON, KLIPPY, PEER / "klipper.dict", PEER / "printer.cfg")
               if not p.exists()]
    if missing:
        why = f"Klippy is not installed ({missing[0]}): run scripts/install_klipper_peer.sh"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI is set but {why}", pytrace=False)
        pytest.skip(why)


@dataclass
class Run:
    """What Klippy logged, in order: positions (one per GET_POSITION) and errors."""

    events: list[tuple[str, object]]

    def positions(self) -> list[tuple[float, float, float]]:
        return [value for kind, value in self.events if kind == "position"]  # type: ignore[misc]

    def first_error(self) -> tuple[int, str] | None:
        """(positions logged before it, the message) of the first error."""
        for seen, (kind, value) in enumerate(self.events):
            if kind == "error":
                return seen, str(value)
        return None


def klippy(groups: dict[str, list[list[str]]], tmp: Path) -> dict[str, list[Run]]:
    """Each program through its own Klippy, all started at once (an error ends a batch run at
    a point that depends on its read buffer, so a program that fails gets a run of its own)."""
    config = tmp / "printer.cfg"
    config.write_text((PEER / "printer.cfg").read_text().replace("GCODES_DIR", str(tmp))
                      + "\n[gcode_arcs]\nresolution: 1.0\n")
    started: dict[str, list[tuple[subprocess.Popen[bytes], Path]]] = {}
    for name, programs in groups.items():
        for i, lines in enumerate(programs):
            source, log = tmp / f"{name}-{i}.gcode", tmp / f"{name}-{i}.log"
            source.write_text("\n".join(lines) + "\n")
            started.setdefault(name, []).append((subprocess.Popen(
                [str(PYTHON), str(KLIPPY), str(config), "-i", str(source), "-o", "/dev/null",
                 "-d", str(PEER / "klipper.dict"), "-l", str(log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), log))
    return {name: [collect(proc, log) for proc, log in runs] for name, runs in started.items()}


def collect(proc: subprocess.Popen[bytes], log: Path) -> Run:
    proc.wait(timeout=HANG_GUARD_S)
    text = log.read_text()
    events: list[tuple[int, str, object]] = [
        (m.start(), "position", tuple(float(v) for v in m.groups()))
        for m in POSITION_RE.finditer(text)]
    events += [(m.start(), "error", m.group(1)) for m in ERROR_RE.finditer(text)]
    return Run([(kind, value) for _, kind, value in sorted(events)])


def traced(lines: list[str]) -> list[str]:
    """The program with a GET_POSITION after every line (Klippy logs where each line left the
    head; the count before an error is the line that failed)."""
    return [out for line in lines for out in (line, "GET_POSITION")]


def checker_trace(lines: list[str]) -> tuple[list[tuple[float, float, float]],
                                             tuple[str, int] | None]:
    """Where the check says the head is after each line, up to its first refusal."""
    positions = []
    for end in range(1, len(lines) + 1):
        found, at = follow_program(lines[:end], LIMITS)
        if found is not None:
            return positions, (found.code, found.params["line"])
        # Not homed yet: Klipper reports 0 for an axis it does not know.
        positions.append(tuple(at[a] if at[a] is not None else 0.0 for a in "XYZ"))
    return positions, None


def close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) < 1e-4 for x, y in zip(a, b, strict=True))


# The issue's programs: (program, the check's refusal, what Marlin runs: the first command
# word of each line, bare letters dropped; the check must follow that reading as Klipper does).
ISSUE = [
    (["G28", "G1 Z10", "G90 G91", "G1 Z-5"], ("gcode_two_commands", 3),
     ["G28", "G1 Z10", "G90", "G1 Z-5"]),
    (["G28", "G91 G90", "G1 X200", "G1 X200", "G1 X200"], ("gcode_two_commands", 2),
     ["G28", "G91", "G1 X200", "G1 X200", "G1 X200"]),
    (["G90 G28", "G91", "G1 X10"], ("gcode_two_commands", 1),
     ["G90", "G91", "G1 X10"]),
    (["G28", "G1 Z10", "G92 Z", "G1 Z-5"], ("gcode_letter_without_value", 3),
     ["G28", "G1 Z10", "G92", "G1 Z-5"]),
    (["G28", "G1 X200", "G1 X", "G91", "G1 X240"], ("gcode_letter_without_value", 3),
     ["G28", "G1 X200", "G1", "G91", "G1 X240"]),
]


def test_the_issue_programs_against_klipper(klippy_runs: dict[str, list[Run]]) -> None:
    for (program, refusal, marlin), run in zip(ISSUE, klippy_runs["issue"], strict=True):
        assert (found := check_program(program, LIMITS)) is not None
        assert (found.code, found.params["line"]) == refusal, program
        stopped = run.first_error()
        assert stopped is not None, f"Klipper ran {program} without an error"
        line, message = stopped[0] + 1, stopped[1]
        # The firmware's reading is dangerous, and the check's model of it says where.
        positions, refused = checker_trace(marlin)
        assert refused is not None and refused[0] in ("gcode_outside", "gcode_unknown_position")
        if refusal[0] == "gcode_two_commands":
            # Klipper runs the first word, like Marlin: it fails where the check, following
            # that reading, refuses, having been where the check says after every line.
            assert line == refused[1], (program, message)
            assert message in ("Move out of range", "Must home axis first"), message
            for reached, ours in zip(run.positions()[:line - 1], positions, strict=True):
                assert close(reached, ours), (program, reached, ours)
        else:
            # Klipper refuses the bare letter itself ("unable to parse"), at the line the
            # check refuses; Marlin would ignore it and move into the bed or off the bed.
            assert line == refusal[1], (program, message)
            assert message.startswith(("Error on", "Unable to parse")), message
            assert refused[1] > refusal[1]


def generated(seed: int, *, leave_at: int | None = None) -> list[str]:
    """A random program of valid moves: G0/G1 on any axes, G90/G91, G92 offsets, I/J arcs,
    in several spellings, every target inside the volume; with ``leave_at``, the move at that
    step goes 5 to 30 mm beyond an edge."""
    rng = random.Random(seed)
    lines = ["G28", "G90"]
    pos, off, relative = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], False
    for step in range(40):
        roll = rng.random()
        if step == leave_at:
            axis = rng.randrange(3)
            beyond = VOLUME[axis] + rng.uniform(5, 30) if rng.random() < 0.7 \
                else -rng.uniform(5, 30)
            value = beyond - (pos[axis] if relative else off[axis])
            lines.append(f"G1 {'XYZ'[axis]}{value:.3f}")
            return lines
        if roll < 0.12:
            relative = not relative
            lines.append("G91" if relative else "G90")
        elif roll < 0.22:
            axes = rng.sample(range(3), rng.randint(1, 3))
            words = []
            for a in axes:
                value = round(rng.uniform(-80, 160), 3)
                off[a] = pos[a] - value
                words.append(f"{'XYZ'[a]}{value:.3f}")
            lines.append("G92 " + " ".join(words))
        elif roll < 0.40 and not relative:
            arc = random_arc(rng, pos, off)
            if arc:
                lines.append(arc)
        else:
            axes = sorted(rng.sample(range(3), rng.randint(1, 3)))
            words = []
            for a in axes:
                target = rng.uniform(1, VOLUME[a] - 1)
                text = f"{target - (pos[a] if relative else off[a]):.3f}"
                # The machine goes where the written number says, not where we aimed.
                pos[a] = float(text) + (pos[a] if relative else off[a])
                words.append(f"{'XYZ'[a]}{text}")
            if rng.random() < 0.3:
                words.append(f"F{rng.choice([600, 3000, 9000])}")
            command = rng.choice(["G0", "G1", "G1"])
            style = rng.random()
            if style < 0.2:
                lines.append(command + "".join(words))  # G1X10Y5: no spaces
            elif style < 0.35:
                lines.append((command + " " + " ".join(words)).lower())
            else:
                lines.append(command + " " + " ".join(words))
    return lines


def random_arc(rng: random.Random, pos: list[float], off: list[float]) -> str | None:
    """An I/J arc from ``pos`` whose whole circle stays 1 mm inside the bed, or None."""
    for _ in range(10):
        radius = rng.uniform(2, 40)
        start = rng.uniform(0, 2 * math.pi)
        cx = pos[0] - radius * math.cos(start)
        cy = pos[1] - radius * math.sin(start)
        if not (1 + radius < cx < VOLUME[0] - 1 - radius
                and 1 + radius < cy < VOLUME[1] - 1 - radius):
            continue
        end = rng.uniform(0, 2 * math.pi)
        x = f"{cx + radius * math.cos(end) - off[0]:.3f}"
        y = f"{cy + radius * math.sin(end) - off[1]:.3f}"
        i, j = f"{cx - pos[0]:.3f}", f"{cy - pos[1]:.3f}"
        pos[0], pos[1] = float(x) + off[0], float(y) + off[1]
        return f"{rng.choice(['G2', 'G3'])} X{x} Y{y} I{i} J{j}"
    return None


GENERATED = [generated(seed) for seed in range(40)]
LEAVING = [generated(100 + seed, leave_at=5 + 7 * seed) for seed in range(4)]


def test_generated_programs_reach_the_same_positions_in_klipper(
        klippy_runs: dict[str, list[Run]]) -> None:
    assert sum(line.startswith(("G2", "G3")) for p in GENERATED for line in p) >= 20
    assert sum(line.startswith("G92") for p in GENERATED for line in p) >= 20
    for program in GENERATED:
        assert check_program(program, LIMITS) is None, program
    (run,) = klippy_runs["generated"]
    assert run.first_error() is None
    ends = run.positions()
    assert len(ends) == len(GENERATED)
    for program, reached in zip(GENERATED, ends, strict=True):
        _found, at = follow_program(program, LIMITS)
        ours = tuple(at[a] for a in "XYZ")
        assert close(reached, ours), (program, reached, ours)  # type: ignore[arg-type]


def test_generated_programs_that_leave_the_volume_fail_at_the_same_line(
        klippy_runs: dict[str, list[Run]]) -> None:
    for program, run in zip(LEAVING, klippy_runs["leaving"], strict=True):
        found = check_program(program, LIMITS)
        assert found is not None and found.code == "gcode_outside", program
        assert found.params["line"] == len(program)
        stopped = run.first_error()
        assert stopped is not None and stopped[1] == "Move out of range", program
        assert stopped[0] + 1 == len(program)
        positions, _ = checker_trace(program)
        for reached, ours in zip(run.positions()[:len(program) - 1], positions, strict=True):
            assert close(reached, ours), (program, reached, ours)
