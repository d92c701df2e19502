"""Every printer program ends with FabQueue's own safe ending (issue 19): heaters and fan off,
motors released, whatever the file said, for staff G-code and for sliced programs alike. The
program stored for the job is the one the device worker sends."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fabqueue.core.gcode.rules import SAFE_ENDING
from tests.conftest import Stack
from tests.queue.helpers import cube_file, new_site, printer, upload, wait_status

# Ends with the nozzle and bed hot, the fan on and no newline after the last line.
HOT_END = "G28\nG90\nM83\nM104 S210\nM140 S60\nG1 Z0.2 F600\nG1 X100 Y100 E5\nM106 S255"


def program_of(client, headers: dict[str, str], job: int) -> str:
    r = client.get(f"/api/jobs/{job}/program", headers=headers)
    assert r.status_code == 200, r.text
    return r.text


def ending(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")[-len(SAFE_ENDING):]


def test_staff_gcode_gets_the_safe_ending_after_its_own(stack: Stack, client,
                                                        tmp_path: Path) -> None:
    site = new_site(stack, [printer("se-1", ["PLA"])])
    s = stack.token(client, stack.user("staff", site))
    path = tmp_path / "hot.gcode"
    path.write_text(HOT_END)
    job = upload(client, s, path, "PLA", site)
    wait_status(client, s, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    wait_status(client, s, job, {"ready"})
    text = program_of(client, s, job)
    assert text.startswith(HOT_END + "\n")  # the file itself, unchanged, then a new line
    assert ending(text) == list(SAFE_ENDING)


def test_a_sliced_program_ends_with_the_safe_ending(stack: Stack, client,
                                                    tmp_path: Path) -> None:
    if shutil.which("prusa-slicer") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PrusaSlicer is missing in CI")
        pytest.skip("PrusaSlicer not installed")
    site = new_site(stack, [printer("se-2", ["PLA"])])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    job = upload(client, r, cube_file(tmp_path, 10.0), "PLA", site)
    wait_status(client, r, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    wait_status(client, s, job, {"ready"}, timeout=180)
    text = program_of(client, s, job)
    assert ending(text) == list(SAFE_ENDING)
    assert "; FabQueue's safe ending\n" in text
