"""Colours to operations, chosen by people (issue 10 item 5): a drawing in other colours than
the convention waits for a choice instead of being unusable; the analysis, estimate and the
program follow the choice; nothing to cut after the choice is refused with that reason.
Real drawings from ../shared/samples (tray-easy1.svg: all black strokes; MIL.svg)."""

from __future__ import annotations

import pytest

from fabqueue.laser.colours import found_colours
from fabqueue.laser.paths import ColourMap, toolpaths_from_drawing
from fabqueue.laser.svg import parse_svg
from tests.conftest import Stack, sample
from tests.queue.helpers import new_site, upload, wait_status
from tests.queue.test_dispatch_lasers import laser


@pytest.mark.parametrize("name", ["tray-easy1.svg", "MIL.svg"])
def test_every_colour_is_listed_and_the_choice_drives_the_toolpaths(name: str) -> None:
    drawing = parse_svg(sample(name).read_bytes())
    found = found_colours(drawing)
    assert [(c["key"], c["preset"]) for c in found] == [("stroke:#000000", "ignore")]
    assert found[0]["length_mm"] > 1000 and found[0]["shapes"] > 10
    convention = toolpaths_from_drawing(drawing)
    assert not convention.paths and convention.ignored
    assert [e.code for e in convention.errors] == ["nothing_to_cut"]
    cut = toolpaths_from_drawing(drawing, ColourMap().with_choice({"stroke:#000000": "cut"}))
    assert cut.paths and {p.operation.value for p in cut.paths} == {"cut"}
    assert sum(p.length_mm for p in cut.paths) == pytest.approx(found[0]["length_mm"], rel=1e-3)
    score = toolpaths_from_drawing(drawing, ColourMap().with_choice({"stroke:#000000": "score"}))
    assert {p.operation.value for p in score.paths} == {"score"}
    nothing = toolpaths_from_drawing(drawing,
                                     ColourMap().with_choice({"stroke:#000000": "ignore"}))
    assert [e.code for e in nothing.errors] == ["nothing_to_cut_chosen"]


def test_the_convention_is_preselected_where_it_matches_and_a_fill_can_be_cut() -> None:
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="50mm" height="50mm" '
           b'viewBox="0 0 50 50"><rect x="5" y="5" width="20" height="20" fill="none" '
           b'stroke="#ff0000"/><rect x="30" y="30" width="10" height="10" fill="#00ff00"/>'
           b'</svg>')
    drawing = parse_svg(svg)
    rows = {c["key"]: c for c in found_colours(drawing)}
    assert rows["stroke:#ff0000"]["preset"] == "cut"
    assert rows["fill:#00ff00"]["preset"] == "ignore"
    assert rows["fill:#00ff00"]["area_mm2"] == pytest.approx(100, rel=1e-3)
    chosen = toolpaths_from_drawing(drawing, ColourMap().with_choice({"fill:#00ff00": "cut"}))
    assert sorted(round(p.length_mm) for p in chosen.paths) == [40, 80]


@pytest.mark.stack
def test_a_black_drawing_waits_for_a_choice_then_its_program_cuts_what_was_chosen(
        stack: Stack, client) -> None:
    site = new_site(stack, [laser("las-col", "/dev/null-no-worker")])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, sample("tray-easy1.svg"), "plywood-3mm", site)
    first = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert first["status"] == "awaiting_approval", first["analysis"]
    assert [c["key"] for c in first["analysis"]["colours"]] == ["stroke:#000000"]
    assert first["thumbnail_url"], "the resident sees the drawing"
    page = client.get(f"/jobs/{job}", headers=r).text
    assert 'name="choice.stroke:#000000"' in page and 'id="colours-needed"' in page
    refused = client.post(f"/api/jobs/{job}/approve", headers=s)
    assert refused.status_code == 409 and "colour" in refused.json()["detail"]
    assert client.post(f"/api/jobs/{job}/colours", headers=r,
                       json={"choice": {"stroke:#123456": "cut"}}).status_code == 422
    assert client.post(f"/api/jobs/{job}/colours", headers=r,
                       json={"choice": {"stroke:#000000": "burn"}}).status_code == 422
    # nothing chosen to cut: refused with that reason
    assert client.post(f"/api/jobs/{job}/colours", headers=r,
                       json={"choice": {"stroke:#000000": "ignore"}}).status_code == 200
    ignored = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert ignored["status"] == "invalid"
    assert "nothing_to_cut_chosen" in str(ignored["analysis"])
    # the resident chooses score; staff change it to cut at approval
    assert client.post(f"/api/jobs/{job}/colours", headers=r,
                       json={"choice": {"stroke:#000000": "score"}}).status_code == 200
    scored = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert scored["status"] == "awaiting_approval", scored["analysis"]
    assert scored["analysis"]["score_length_mm"] > 1000
    assert scored["analysis"]["cut_length_mm"] == 0
    assert client.post(f"/api/jobs/{job}/colours", headers=s,
                       json={"choice": {"stroke:#000000": "cut"}}).status_code == 200
    cut = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert cut["analysis"]["cut_length_mm"] == pytest.approx(
        scored["analysis"]["score_length_mm"], rel=1e-3)
    assert cut["analysis"]["estimated_seconds"] > scored["analysis"]["estimated_seconds"]
    assert cut["colour_map"] == {"stroke:#000000": "cut"}
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    ready = wait_status(client, r, job, {"ready", "failed"})
    assert ready["status"] == "ready", ready
    # the program cuts every black line (once per pass of the material's settings)
    passes = ready["slicing"]["cut_length_mm"] / cut["analysis"]["cut_length_mm"]
    assert round(passes) >= 1 and passes == pytest.approx(round(passes), rel=0.01)
