"""What can never run is refused with a reason: too big for every printer (at approval),
G-code leaving the bed, a slicer failure, broken profiles at start-up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import trimesh

from fabqueue.store import inventory
from tests.conftest import Stack, needs_prusaslicer
from tests.queue.helpers import cube_file, new_site, printer, upload, wait_status


def test_too_big_for_every_printer_is_refused_at_approval(stack: Stack, client,
                                                           tmp_path: Path) -> None:
    site = new_site(stack, [printer("big-1", ["PLA"])])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    path = tmp_path / "plank.stl"
    trimesh.creation.box(extents=(400, 30, 10)).export(path)  # longer than any diagonal
    job = upload(client, r, path, "PLA", site)
    analysed = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert analysed["analysis"]["fits"] == []
    refused = client.post(f"/api/jobs/{job}/approve", headers=s)
    assert refused.status_code == 409
    assert "does not fit" in refused.json()["detail"] and "400" in refused.json()["detail"]
    assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "awaiting_approval"


def test_tall_part_fits_lying_down_and_too_tall_everywhere_is_refused(
        stack: Stack, client, tmp_path: Path) -> None:
    site = new_site(stack, [printer("tall-1", ["PLA"])])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    lying = tmp_path / "pole.stl"
    trimesh.creation.box(extents=(20, 20, 240)).export(lying)  # taller than 220, fits lying
    cube = tmp_path / "tower.stl"
    trimesh.creation.box(extents=(230, 230, 230)).export(cube)  # fits no way round
    ok = upload(client, r, lying, "PLA", site)
    bad = upload(client, r, cube, "PLA", site)
    assert wait_status(client, r, ok, {"awaiting_approval"})["analysis"]["fits"] == ["tall-1"]
    wait_status(client, r, bad, {"awaiting_approval", "invalid"})
    assert client.post(f"/api/jobs/{bad}/approve", headers=s).status_code == 409


def test_gcode_with_moves_outside_the_bed_is_invalid(stack: Stack, client,
                                                     tmp_path: Path) -> None:
    site = new_site(stack, [printer("g-1", ["PLA"])])
    s = stack.token(client, stack.user("staff", site))
    path = tmp_path / "outside.gcode"
    path.write_text("G28\nG90\nG1 Z0.2 F600\nG1 X10 Y10 F3000\nG1 X300 Y10 E5\nM84\n")
    job = upload(client, s, path, "PLA", site)
    result = wait_status(client, s, job, {"invalid", "awaiting_approval"})
    assert result["status"] == "invalid"
    assert "gcode_outside" in result["analysis"]["error_codes"]
    assert "X" in result["analysis"]["errors"][0]
    inside = tmp_path / "inside.gcode"
    inside.write_text("G28\nG90\nG1 Z0.2 F600\nG1 X10 Y10 F3000\nG1 X100 Y100 E5\nM84\n")
    good = upload(client, s, inside, "PLA", site)
    assert wait_status(client, s, good, {"invalid", "awaiting_approval"})["status"] == \
        "awaiting_approval"


@needs_prusaslicer
def test_slicer_failure_fails_the_job_with_the_reason(stack: Stack, client,
                                                      tmp_path: Path) -> None:
    site = new_site(stack, [printer("sf-1", ["PLA"], profile="no_such_profile")])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    job = upload(client, r, cube_file(tmp_path), "PLA", site)
    wait_status(client, r, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    failed = wait_status(client, r, job, {"failed", "ready"}, timeout=60)
    assert failed["status"] == "failed"
    assert "no_such_profile" in failed["status_reason"]
    # staff may send it round again once the profile is fixed
    assert client.post(f"/api/jobs/{job}/requeue", headers=s).status_code == 200


def test_broken_profile_stops_startup_naming_the_file(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(Path(__file__).resolve().parents[2] / "slicer_profiles", profiles)
    broken = profiles / "printers" / "prusa_mk4.ini"
    broken.write_text("this is not = a [valid profile\nbed_shape = nonsense\n")
    env = {"FABQUEUE_PROFILES_DIR": str(profiles), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "fabqueue", "serve", "--data-dir",
                           str(tmp_path / "data"), "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "prusa_mk4.ini" in proc.stderr


def test_staff_gcode_is_checked_again_for_the_machine_it_goes_to(stack: Stack, client,
                                                                 tmp_path: Path) -> None:
    # Analysed for a 250 mm printer; the admin then changes that machine to 180 mm. The
    # program is checked again at preparation, against the machine as it is now.
    site = new_site(stack, [printer("shrinks-1", ["PLA"])])
    s = stack.token(client, stack.user("staff", site))
    path = tmp_path / "wide.gcode"
    path.write_text("G28\nG90\nM104 S210\nG1 Z0.2 F600\nG1X200Y10E5\nM84\n")
    job = upload(client, s, path, "PLA", site)
    assert wait_status(client, s, job, {"invalid", "awaiting_approval"})["status"] == \
        "awaiting_approval"
    with stack.ctx.db.session() as db:
        inventory.apply(db, {"site": [{"id": site, "name": f"test {site}"}], "device": [
            {**printer("shrinks-1", ["PLA"]), "site": site,
             "build_volume_mm": (180, 180, 180)}]})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    failed = wait_status(client, s, job, {"failed", "ready"}, timeout=60)
    assert failed["status"] == "failed"
    assert failed["status_reason_code"] == "gcode_outside", failed["status_reason"]
    assert failed["slicing"]["code"] == "gcode_outside"


@needs_prusaslicer
def test_a_part_that_fits_only_turned_is_sliced_turned(stack: Stack, client,
                                                        tmp_path: Path) -> None:
    """203 × 305 mm on a 250 × 210 printer fits only stood on its edge and turned: the
    analysis says so, and the slicer gets it turned the same way, so an approved job is
    prepared instead of failing with PrusaSlicer's "does not fit on the printer's bed"."""
    site = new_site(stack, [printer("edge-1", ["PLA"])])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    path = tmp_path / "sign.stl"
    trimesh.creation.box(extents=(203, 305, 3)).export(path)
    job = upload(client, r, path, "PLA", site)
    analysed = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert analysed["analysis"]["fits"] == ["edge-1"]
    assert analysed["analysis"]["orientation"]["edge-1"].startswith("y90+z")
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    prepared = wait_status(client, r, job, {"failed", "ready"}, timeout=240)
    assert prepared["status"] == "ready", prepared.get("status_reason")


def test_a_slicer_failure_reads_whole_in_the_readers_language() -> None:
    """No PrusaSlicer English inside a Lithuanian or Russian reason (issue 19)."""
    from fabqueue.core.reasons import render
    from fabqueue.i18n import gettext
    from fabqueue.queue.pipeline import slicer_failed
    from fabqueue.slicing.prusaslicer import explain_failure

    cause = explain_failure(1, "Objects could not fit on the bed", 2048).finding
    assert cause.code == "too_big"
    stored = slicer_failed(cause)
    english = render(stored)
    assert "does not fit on the printer's bed" in english
    for locale in ("lt", "ru"):
        text = render(stored, lambda m, loc=locale: gettext(loc, m))
        assert "printer" not in text and "bed" not in text, text
        assert gettext(locale, cause.text) in text
