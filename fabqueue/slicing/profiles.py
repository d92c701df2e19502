"""PrusaSlicer profiles: which files to ``--load`` for a printer, material and quality.

Layout of the folder (``slicer_profiles/printers/``, see its README):

* ``<printer>.ini``              machine: bed, height, nozzle, G-code, speeds. Its header comments
                                 ``# fabqueue.materials = PLA, PETG`` and
                                 ``# fabqueue.qualities = draft, normal, fine`` say what it takes.
* ``filaments/<MATERIAL>.ini``   temperatures, diameter, density and cost.
* ``qualities/<quality>.ini``    layer height, shells, infill.

They are loaded in that order (later files win), so a full config exported from the PrusaSlicer
GUI works as a printer file. Everything is read and checked once at start-up: a broken or
missing file raises ``ProfileError`` naming it, instead of failing on the first job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from fabqueue.core.estimates import PrintParams

FILAMENTS_DIR = "filaments"
QUALITIES_DIR = "qualities"
META_PREFIX = "# fabqueue."

PRINTER_KEYS = ("bed_shape", "max_print_height", "nozzle_diameter")
FILAMENT_KEYS = ("filament_diameter", "filament_density", "filament_cost")
QUALITY_KEYS = ("layer_height",)


class ProfileError(Exception):
    """A profile file is missing or broken; ``path`` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class IniFile:
    path: Path
    settings: dict[str, str]
    meta: dict[str, str]  # from "# fabqueue.<key> = <value>" comments


@dataclass(frozen=True)
class PrinterProfile:
    id: str
    name: str
    ini: IniFile
    materials: tuple[str, ...]
    qualities: tuple[str, ...]
    build_volume: tuple[float, float, float]


def read_ini(path: Path) -> IniFile:
    """Parse a flat PrusaSlicer ``key = value`` file (the GUI's "Export Config")."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ProfileError(path, "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(path, f"cannot be read ({exc})") from exc
    settings: dict[str, str] = {}
    meta: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith(META_PREFIX) and "=" in line:
            key, _, value = line[len(META_PREFIX):].partition("=")
            meta[key.strip()] = value.strip()
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            raise ProfileError(
                path,
                f"line {number} is a section header: this looks like a config bundle; export a "
                "single profile with File > Export > Export Config instead",
            )
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ProfileError(path, f"line {number} is not 'key = value': {raw!r}")
        settings[key.strip()] = value.strip()
    return IniFile(path, settings, meta)


def number(ini: IniFile, key: str, *, base: float | None = None) -> float:
    """A numeric setting; ``50%`` is read against ``base`` (PrusaSlicer's relative values)."""
    raw = ini.settings.get(key)
    if raw is None:
        raise ProfileError(ini.path, f"setting '{key}' is missing")
    return parse_number(ini.path, key, raw, base)


def parse_number(path: Path, key: str, raw: str, base: float | None = None) -> float:
    text = raw.split(",")[0].strip()  # per-extruder lists: the first extruder
    try:
        if text.endswith("%"):
            if base is None:
                raise ValueError("percentage not allowed here")
            return float(text[:-1]) / 100.0 * base
        value = float(text)
    except ValueError as exc:
        raise ProfileError(path, f"setting '{key}' = {raw!r} is not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise ProfileError(path, f"setting '{key}' = {raw!r} must be a positive number")
    return value


def bed_size(ini: IniFile) -> tuple[float, float]:
    """Width and depth of ``bed_shape`` (``0x0,250x0,250x210,0x210``)."""
    raw = ini.settings.get("bed_shape", "")
    try:
        points = [tuple(float(v) for v in p.split("x")) for p in raw.split(",")]
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
    except (ValueError, IndexError) as exc:
        raise ProfileError(ini.path, f"bed_shape {raw!r} is not a list of XxY points") from exc
    if len(points) < 3 or max(xs) - min(xs) <= 0 or max(ys) - min(ys) <= 0:
        raise ProfileError(ini.path, f"bed_shape {raw!r} does not describe a bed")
    return max(xs) - min(xs), max(ys) - min(ys)


def require(ini: IniFile, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in ini.settings:
            raise ProfileError(ini.path, f"setting '{key}' is missing")
        if key != "bed_shape":
            number(ini, key)


def check_relative_e(ini: IniFile) -> None:
    """PrusaSlicer 2.5 refuses relative E unless each layer resets E (verified)."""
    if ini.settings.get("use_relative_e_distances", "0") == "1" and "G92 E0" not in (
        ini.settings.get("layer_gcode", "")
    ):
        raise ProfileError(
            ini.path, "use_relative_e_distances = 1 needs 'layer_gcode = G92 E0' as well"
        )


def meta_list(
    ini: IniFile, key: str, available: dict[str, IniFile], folder: str
) -> tuple[str, ...]:
    if key not in ini.meta:
        return tuple(sorted(available))
    names = tuple(n.strip() for n in ini.meta[key].split(",") if n.strip())
    for name in names:
        if name not in available:
            raise ProfileError(
                ini.path, f"fabqueue.{key} names '{name}' but there is no {folder}/{name}.ini"
            )
    return names


class ProfileSet:
    """All profiles of one folder, checked; the lookups FabQueue needs."""

    def __init__(
        self,
        folder: Path,
        printers: dict[str, PrinterProfile],
        filaments: dict[str, IniFile],
        qualities: dict[str, IniFile],
    ) -> None:
        self.folder = folder
        self.printers = printers
        self.filaments = filaments
        self.qualities_by_name = qualities

    def printer_profiles(self) -> list[str]:
        return sorted(self.printers)

    def printer(self, printer: str) -> PrinterProfile:
        try:
            return self.printers[printer]
        except KeyError:
            raise ProfileError(
                self.folder / f"{printer}.ini", f"no printer profile '{printer}'"
            ) from None

    def materials(self, printer: str) -> list[str]:
        return list(self.printer(printer).materials)

    def qualities(self, printer: str) -> list[str]:
        return list(self.printer(printer).qualities)

    def build_volume(self, printer: str) -> tuple[float, float, float]:
        return self.printer(printer).build_volume

    def _check_combination(self, printer: str, material: str, quality: str) -> PrinterProfile:
        profile = self.printer(printer)
        if material not in profile.materials:
            raise ProfileError(
                profile.ini.path, f"printer '{printer}' does not take material '{material}'"
            )
        if quality not in profile.qualities:
            raise ProfileError(
                profile.ini.path, f"printer '{printer}' has no quality '{quality}'"
            )
        return profile

    def profile_files(self, printer: str, material: str, quality: str) -> list[Path]:
        """The files to pass as ``--load`` in this order (later files win)."""
        profile = self._check_combination(printer, material, quality)
        return [
            profile.ini.path,
            self.filaments[material].path,
            self.qualities_by_name[quality].path,
        ]

    def merged(self, printer: str, material: str, quality: str) -> IniFile:
        """The settings PrusaSlicer ends up with (same override order as ``--load``)."""
        profile = self._check_combination(printer, material, quality)
        settings: dict[str, str] = {}
        for ini in (profile.ini, self.filaments[material], self.qualities_by_name[quality]):
            settings.update(ini.settings)
        return IniFile(profile.ini.path, settings, {})

    def material_props(self, material: str) -> tuple[float, float]:
        """``(density g/cm³, cost per kg)`` of a filament."""
        try:
            ini = self.filaments[material]
        except KeyError:
            raise ProfileError(
                self.folder / FILAMENTS_DIR / f"{material}.ini", f"no filament '{material}'"
            ) from None
        return number(ini, "filament_density"), number(ini, "filament_cost")

    def print_params(self, printer: str, material: str, quality: str) -> PrintParams:
        return print_params_from(self.merged(printer, material, quality))


def print_params_from(ini: IniFile) -> PrintParams:
    """PrintParams from merged settings, resolving PrusaSlicer's relative and auto values."""
    nozzle = number(ini, "nozzle_diameter")
    layer = number(ini, "layer_height")
    first_layer = number(ini, "first_layer_height", base=layer) if (
        "first_layer_height" in ini.settings
    ) else layer

    def width(key: str) -> float:
        raw = ini.settings.get(key, "0")
        value = parse_number(ini.path, key, raw, base=nozzle)
        if value == 0 and key != "extrusion_width":
            return width("extrusion_width")
        return value or 1.125 * nozzle  # PrusaSlicer's automatic width

    def value(key: str, default: float, base: float | None = None) -> float:
        raw = ini.settings.get(key)
        return default if raw is None else parse_number(ini.path, key, raw, base)

    def first_layer_width() -> float:
        """Its percentages are of the first layer's height, not the nozzle (PrusaSlicer)."""
        raw = ini.settings.get("first_layer_extrusion_width", "0")
        value = parse_number(ini.path, "first_layer_extrusion_width", raw, base=first_layer)
        return value or width("extrusion_width")

    extrusion_width = width("perimeter_extrusion_width")
    # filament_max_volumetric_speed caps every extrusion move (PrusaSlicer does the same).
    max_flow = value("filament_max_volumetric_speed", 0.0)
    cap = max_flow / (extrusion_width * layer) if max_flow > 0 else math.inf

    perimeter = value("perimeter_speed", 45.0)
    infill = value("infill_speed", 80.0)
    solid = value("solid_infill_speed", 20.0, base=infill)

    def shell_layers(key: str, default: int, thickness_key: str) -> int:
        """Solid layers, raised to reach the minimum shell thickness (PrusaSlicer's rule)."""
        layers = int(value(key, default))
        least = value(thickness_key, 0.0)
        if layers > 0 and least > 0:
            layers = max(layers, math.ceil(least / layer - 1e-9))
        return layers

    def machine(key: str, default: float) -> float:
        """The normal-mode machine limit (first of its comma list), as the estimate uses it."""
        raw = ini.settings.get(key, "").split(",")[0].strip()
        return default if not raw else parse_number(ini.path, key, raw, None)

    # PrusaSlicer's time estimate: each feature's M204, 0 meaning the default, all capped by
    # the machine's extruding limit; corners at the classic jerk
    ceiling = machine("machine_max_acceleration_extruding", 1500.0) or math.inf
    default_accel = value("default_acceleration", 0.0) or ceiling

    def accel(key: str) -> float:
        return min(value(key, 0.0) or default_accel, ceiling)

    return PrintParams(
        perimeter_acceleration=accel("perimeter_acceleration"),
        infill_acceleration=accel("infill_acceleration"),
        default_acceleration=min(default_accel, ceiling),
        first_layer_acceleration=accel("first_layer_acceleration"),
        jerk_mm_s=machine("machine_max_jerk_x", 10.0),
        retract_length_mm=value("retract_length", 2.0),
        retract_speed_mm_s=value("retract_speed", 40.0),
        retract_lift_mm=value("retract_lift", 0.0),
        retract_acceleration=machine("machine_max_acceleration_retracting", 1500.0),
        z_acceleration=machine("machine_max_acceleration_z", 500.0),
        z_jerk_mm_s=machine("machine_max_jerk_z", 0.2),
        small_perimeter_speed_mm_s=value("small_perimeter_speed", 15.0, base=perimeter),
        bridge_speed_mm_s=value("bridge_speed", 60.0),
        slowdown_below_layer_time_s=value("slowdown_below_layer_time", 5.0),
        min_print_speed_mm_s=value("min_print_speed", 10.0),
        layer_height_mm=layer,
        first_layer_height_mm=first_layer,
        nozzle_diameter_mm=nozzle,
        extrusion_width_mm=extrusion_width,
        perimeters=int(value("perimeters", 2)),
        top_solid_layers=shell_layers("top_solid_layers", 5, "top_solid_min_thickness"),
        bottom_solid_layers=shell_layers("bottom_solid_layers", 4, "bottom_solid_min_thickness"),
        fill_density=parse_number(ini.path, "fill_density",
                                  ini.settings.get("fill_density", "15%"), base=1.0),
        filament_diameter_mm=number(ini, "filament_diameter"),
        perimeter_speed_mm_s=min(perimeter, cap),
        external_perimeter_speed_mm_s=min(
            value("external_perimeter_speed", 25.0, base=perimeter), cap
        ),
        infill_speed_mm_s=min(infill, cap),
        solid_infill_speed_mm_s=min(solid, cap),
        top_solid_infill_speed_mm_s=min(value("top_solid_infill_speed", 15.0, base=solid), cap),
        travel_speed_mm_s=value("travel_speed", 130.0),
        first_layer_speed_mm_s=min(value("first_layer_speed", 30.0, base=perimeter), cap),
        solid_infill_below_area_mm2=value("solid_infill_below_area", 70.0),
        skirts=int(value("skirts", 1)),
        skirt_distance_mm=value("skirt_distance", 6.0),
        skirt_height_layers=int(value("skirt_height", 1)),
        min_skirt_length_mm=value("min_skirt_length", 0.0),
        first_layer_extrusion_width_mm=first_layer_width(),
    )


def load_kind(folder: Path, required: tuple[str, ...]) -> dict[str, IniFile]:
    if not folder.is_dir():
        raise ProfileError(folder, "folder not found")
    found: dict[str, IniFile] = {}
    for path in sorted(folder.glob("*.ini")):
        ini = read_ini(path)
        require(ini, required)
        found[path.stem] = ini
    if not found:
        raise ProfileError(folder, "no .ini profiles in this folder")
    return found


def load_profiles(folder: Path) -> ProfileSet:
    """Read and check every profile under ``folder``; raise ProfileError naming a bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProfileError(folder, "profile folder not found")
    filaments = load_kind(folder / FILAMENTS_DIR, FILAMENT_KEYS)
    qualities = load_kind(folder / QUALITIES_DIR, QUALITY_KEYS)
    printers: dict[str, PrinterProfile] = {}
    for path in sorted(folder.glob("*.ini")):
        ini = read_ini(path)
        require(ini, PRINTER_KEYS)
        check_relative_e(ini)
        width, depth = bed_size(ini)
        height = number(ini, "max_print_height")
        if height <= 0:
            raise ProfileError(path, "max_print_height must be above 0")
        printers[path.stem] = PrinterProfile(
            id=path.stem,
            name=ini.meta.get("name", path.stem),
            ini=ini,
            materials=meta_list(ini, "materials", filaments, FILAMENTS_DIR),
            qualities=meta_list(ini, "qualities", qualities, QUALITIES_DIR),
            build_volume=(width, depth, height),
        )
    if not printers:
        raise ProfileError(folder, "no printer .ini profiles in this folder")
    return ProfileSet(folder, printers, filaments, qualities)


def default_profiles_folder() -> Path:
    """``slicer_profiles/printers`` of the source tree."""
    return Path(__file__).resolve().parents[2] / "slicer_profiles" / "printers"
