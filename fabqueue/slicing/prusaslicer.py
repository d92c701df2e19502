"""Run the PrusaSlicer CLI on one model, with a time and memory limit, and read its totals.

Verified on PrusaSlicer 2.5 (see /work/shared/notes/prusaslicer.md): a part taller than
``max_print_height`` is sliced anyway (exit 0), so the height is checked here first; a part
larger than the bed aborts (exit 134, SIGABRT) with "Objects could not fit on the bed".

Uploaded 3MF files can carry a whole PrusaSlicer config, applied under our ``--load`` files
but for every key those don't set. Verified: a 3MF whose config says
``post_process = <command>`` makes PrusaSlicer run that command on the server, and one whose
config member is named with a backslash escaped a filter by name. So PrusaSlicer never sees
the upload: ``clean_model.rewrite_model`` parses it and writes a fresh file holding only
meshes and their placements, and every setting comes from our profiles on the command line.
As a second wall, a guard file empties every script and custom G-code key before the
profiles, and another after them empties ``post_process`` whatever the profiles say.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabqueue.core.findings import N_, Refused, finding
from fabqueue.slicing.clean_model import rewrite_model
from fabqueue.slicing.gcode_meta import parse_totals
from fabqueue.slicing.profiles import IniFile, ProfileError, bed_size, number, read_ini

SLICER_ENV = "FABQUEUE_PRUSA_SLICER"
DEFAULT_SLICER = "prusa-slicer"
OVERRIDE_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
INFO_SIZE_RE = re.compile(r"^size_([xyz])\s*=\s*(-?[\d.]+)", re.MULTILINE)
HEIGHT_TOLERANCE_MM = 0.01
# Keys a 3MF could use to run commands or inject G-code when our profiles leave them unset.
UNSET_BY_DEFAULT = (
    "post_process", "gcode_substitutions", "start_gcode", "end_gcode", "layer_gcode",
    "before_layer_gcode", "between_objects_gcode",
    "color_change_gcode", "end_filament_gcode", "pause_print_gcode", "start_filament_gcode",
    "template_custom_gcode", "toolchange_gcode",
)
PER_EXTRUDER = frozenset({"start_filament_gcode", "end_filament_gcode"})
# What PrusaSlicer (or the loader, when even its libraries don't fit) says when the address
# space limit bites.
MEMORY_SIGNS = ("bad_alloc", "out of memory", "cannot allocate", "failed to map segment")


class SliceError(Exception):
    """Slicing failed; ``code`` is stable, ``reason`` is plain words for staff and residents.

    ``text`` is an English template marked with ``N_`` and filled from ``params``; ``finding``
    carries both, so the web can show it in the reader's language.
    """

    def __init__(self, code: str, text: str, **params: Any) -> None:
        self.finding = finding(code, text, **params)
        self.code = code
        self.reason = self.finding.render()
        super().__init__(self.reason)


@dataclass(frozen=True)
class SliceResult:
    gcode: Path
    estimated_seconds: float
    filament_mm: float
    filament_cm3: float
    filament_g: float | None  # None when the profile sets no filament_density
    cost: float | None  # None when the profile sets no filament_cost


def slicer_binary() -> str:
    """The PrusaSlicer CLI (``$FABQUEUE_PRUSA_SLICER`` or ``prusa-slicer`` on PATH)."""
    configured = os.environ.get(SLICER_ENV, DEFAULT_SLICER)
    found = shutil.which(configured)
    if found is None:
        raise SliceError("slicer_missing", N_("PrusaSlicer is not installed ({program})."),
                         program=configured)
    return found


def volume_from_files(files: list[Path]) -> tuple[float, float, float]:
    """Build volume from the ``--load`` files (the last one to set a key wins)."""
    settings: dict[str, str] = {}
    for path in files:
        settings.update(read_ini(path).settings)
    merged = IniFile(files[0], settings, {})
    try:
        width, depth = bed_size(merged)
        return width, depth, number(merged, "max_print_height")
    except ProfileError as exc:
        raise SliceError("bad_profile", N_("The printer profile is incomplete: {problem}"),
                         problem=exc.reason) from exc


def limit_memory(megabytes: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_slicer(args: list[str], timeout_s: float, memory_limit_mb: int) -> tuple[int, str]:
    """Run PrusaSlicer in its own process group; kill the group on timeout."""
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit_memory(memory_limit_mb),
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise SliceError(
            "timeout", N_("Slicing took longer than {seconds} s and was stopped."),
            seconds=f"{timeout_s:g}",
        ) from None
    return process.returncode, output.decode("utf-8", errors="replace")


def model_size(model: Path, timeout_s: float, memory_limit_mb: int) -> tuple[float, float, float]:
    """The model's size as PrusaSlicer reads it (same units handling as the slice itself)."""
    code, output = run_slicer(
        [slicer_binary(), "--loglevel", "1", "--info", str(model)], timeout_s, memory_limit_mb
    )
    sizes: dict[str, float] = {}
    for axis, value in INFO_SIZE_RE.findall(output):  # one block per object in a 3MF
        sizes[axis] = max(sizes.get(axis, 0.0), float(value))
    if code != 0 or len(sizes) != 3:
        raise explain_failure(code, output, memory_limit_mb)
    return sizes["x"], sizes["y"], sizes["z"]


def explain_failure(code: int, output: str, memory_limit_mb: int) -> SliceError:
    """Turn an exit code and PrusaSlicer's output into plain words."""
    text = output.lower()
    if "unable to create convex hull" in text:
        # Verified: when memory runs short, the hull fails first and PrusaSlicer then
        # claims the objects do not fit; don't blame the model's size for that.
        return SliceError(
            "no_outline",
            N_("PrusaSlicer could not work out the model's outline (the model may be broken, "
               "or slicing ran out of its {megabytes} MB of memory)."),
            megabytes=memory_limit_mb,
        )
    if "could not fit on the bed" in text:
        return SliceError(
            "too_big", N_("The model (or its copies) does not fit on the printer's bed.")
        )
    if any(sign in text for sign in MEMORY_SIGNS):
        return SliceError(
            "out_of_memory",
            N_("Slicing needed more than the {megabytes} MB of memory it is allowed."),
            megabytes=memory_limit_mb,
        )
    if "no such file" in text:
        return SliceError("unreadable", N_("The model file is missing."))
    if "loading of a model file failed" in text or "failed loading" in text:
        return SliceError("unreadable", N_("PrusaSlicer could not read the model file."))
    if code < 0 and -code == signal.SIGKILL:
        return SliceError(
            "killed", N_("The slicer was killed (most likely it ran out of memory).")
        )
    if code in (-signal.SIGSEGV, 128 + signal.SIGSEGV, -signal.SIGABRT, 128 + signal.SIGABRT):
        return SliceError(
            "crashed", N_("The slicer crashed on this model (it may be too complex or broken).")
        )
    last = output.strip().splitlines()[-1:] or ["no output"]
    return SliceError(
        "failed", N_("The slicer failed (exit {exit_code}): {detail}"), exit_code=code,
        detail=last[0][:300],
    )


def write_guards(folder: Path) -> tuple[Path, Path]:
    """Guard profiles loaded before (empty scripts and custom G-code) and after ours."""
    first = folder / "guard-first.ini"
    # Per-extruder lists must be written as "" (an empty value fails as "Invalid utf8").
    first.write_text("".join(
        f'{key} = ""\n' if key in PER_EXTRUDER else f"{key} = \n" for key in UNSET_BY_DEFAULT
    ))
    last = folder / "guard-last.ini"
    last.write_text("post_process = \n")
    return first, last


def clean_copy(model: Path, folder: Path,
               volume: tuple[float, float, float] | None = None) -> Path:
    """The model as FabQueue rewrote it from its geometry (see ``clean_model``), turned to
    fit ``volume`` as the analysis judged it would."""
    try:
        return rewrite_model(model, model.suffix, folder, volume)
    except (Refused, OSError, MemoryError) as exc:
        raise SliceError("unreadable", N_("PrusaSlicer could not read the model file.")) from exc


def override_args(overrides: dict[str, str] | None) -> list[str]:
    args: list[str] = []
    for key, value in (overrides or {}).items():
        if not OVERRIDE_KEY_RE.match(key) or "\n" in value:
            raise SliceError("bad_override", N_("Not a slicer setting: {key}"), key=repr(key))
        args.append(f"--{key.replace('_', '-')}={value}")
    return args


def slice_model(
    model: Path,
    out: Path,
    files: list[Path],
    *,
    copies: int = 1,
    timeout_s: float = 600,
    memory_limit_mb: int = 2048,
    build_volume: tuple[float, float, float] | None = None,
    overrides: dict[str, str] | None = None,
) -> SliceResult:
    """Slice ``model`` with the profile ``files`` into ``out``; ``copies`` are arranged on the bed.

    Raises SliceError with plain words: ``too_tall`` (checked before slicing), ``too_big``,
    ``timeout``, ``out_of_memory``/``killed``, ``unreadable``, ``no_totals``.
    """
    if not files:
        raise SliceError("bad_profile", N_("No slicer profile was given."))
    if copies < 1:
        raise SliceError("bad_copies", N_("The number of copies must be at least 1."))
    if not model.is_file():
        raise SliceError("unreadable", N_("The model file is missing."))
    volume = build_volume or volume_from_files(files)
    with tempfile.TemporaryDirectory(prefix="fabqueue-slice-") as tmp:
        work = Path(tmp)
        model = clean_copy(model, work, volume)
        guard_first, guard_last = write_guards(work)
        return run_slice(model, out, [guard_first, *files, guard_last], copies=copies,
                         timeout_s=timeout_s, memory_limit_mb=memory_limit_mb, volume=volume,
                         overrides=overrides)


def run_slice(
    model: Path,
    out: Path,
    files: list[Path],
    *,
    copies: int,
    timeout_s: float,
    memory_limit_mb: int,
    volume: tuple[float, float, float],
    overrides: dict[str, str] | None,
) -> SliceResult:
    _, _, height = model_size(model, timeout_s, memory_limit_mb)
    if height > volume[2] + HEIGHT_TOLERANCE_MM:
        raise SliceError(
            "too_tall",
            N_("The model is {height} mm tall; this printer prints up to {limit} mm."),
            height=round(height, 1), limit=round(volume[2]),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [slicer_binary(), "--loglevel", "1", "--export-gcode"]
    for path in files:
        args += ["--load", str(path)]
    args += override_args(overrides)
    args += ["--remaining-times"]
    if copies > 1:
        args += ["--duplicate", str(copies)]  # arranged on the bed (arrange is the default)
    args += ["-o", str(out), str(model)]
    code, output = run_slicer(args, timeout_s, memory_limit_mb)
    if code != 0 or not out.is_file():
        raise explain_failure(code, output, memory_limit_mb)
    totals = parse_totals(out)
    if "estimated_seconds" not in totals or "filament_mm" not in totals:
        raise SliceError("no_totals", N_("The slicer wrote G-code without its print estimates."))
    return SliceResult(
        gcode=out,
        estimated_seconds=totals["estimated_seconds"],
        filament_mm=totals["filament_mm"],
        filament_cm3=totals.get("filament_cm3", 0.0),
        filament_g=totals.get("filament_g"),
        cost=totals.get("cost"),
    )
