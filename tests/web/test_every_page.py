"""Every page of every role, in Lithuanian and Russian, on a phone (390 × 844): nothing left
in English or shown as a raw code, nothing wider than the screen, the navigation reachable.

The data it walks is made the way a lab day makes it (through the API and the real workers):
jobs analysed, invalid, rejected, cancelled, printed to the end on the simulated printers, a
class handed in, and a machine whose worker wrote a reason (an API key not set)."""

from __future__ import annotations

import io
import re
import time
import zipfile
from typing import Any

import pytest
import trimesh
from babel.messages.pofile import read_po

from fabqueue.core.devices import DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.web.pages import labels
from tests.web.conftest import ARTIFACTS, Server, login, sample

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
#: The codes a page must never show as they are (statuses, events, machine states).
CODES = ({s.value for s in JobStatus} | {s.value for s in DeviceState} | set(labels.ACTIONS)
         | {"tool0", "tool1", "bed", "chamber", "start_refused", "requeued", "ended_done",
            "filament", "sheet"})
SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
# Words that are the same in every language here, or data rather than our words.
SAME_EVERYWHERE = {"FabQueue", "OctoPrint", "GRBL", "PLA", "PETG", "TPU", "MDF", "SVG", "STL",
                   "3MF", "OBJ", "CSV", "G-code", "ID", "Email", "E-mail"}


#: The elements that make the page wider than the screen (not those inside a box that
#: scrolls by itself), for the failure message.
WIDE = """() => [...document.querySelectorAll('body *')].filter(e => {
  if (e.getBoundingClientRect().right <= 391) return false;
  for (let p = e.parentElement; p; p = p.parentElement) {
    if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return false;
  }
  return true;
}).slice(0, 6).map(e => e.tagName + '.' + e.className + '#' + e.id)"""


def box(size: float) -> bytes:
    return bytes(trimesh.creation.box(extents=(size,) * 3).export(file_type="stl"))


def english() -> dict[str, dict[str, str]]:
    """Per locale, the English msgids whose translation differs (only those can leak), from
    every catalog of the locale: the domain catalogs (pickup.po, spools.po…) too."""
    from fabqueue.web.i18n.refresh import HERE

    out: dict[str, dict[str, str]] = {}
    for loc in ("lt", "ru"):
        out[loc] = {}
        for po in sorted((HERE / loc / "LC_MESSAGES").glob("*.po")):
            with po.open("rb") as f:
                out[loc].update({m.id: m.string for m in read_po(f) if m.id and m.string
                                 and m.string != m.id and "{" not in m.id})
    return out


def leaks(text: str, catalog: dict[str, str]) -> list[str]:
    """English phrases and raw codes in a page's visible text (tokenised: whole lines and
    multi-word phrases from the catalog; codes by name and by their snake_case shape)."""
    found = []
    lines = [ln.strip(" ·—–:()") for ln in text.splitlines()]
    found += [ln for ln in lines if ln in catalog and ln not in SAME_EVERYWHERE]
    # Words, not parts of file names ("rejected.stl") or of hyphenated names.
    found += [w for w in re.findall(r"(?<![\w.-])[A-Za-z][A-Za-z0-9_]*(?![\w.-])", text)
              if w in CODES]
    for phrase in catalog:
        if " " in phrase and len(phrase) > 6 and re.search(
                rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
            found.append(phrase)
    found += [w for w in SNAKE.findall(text) if not w.endswith((".stl", ".svg"))]
    return sorted(set(found))


def wait_status(server: Server, user: str, job_id: int, statuses: tuple[str, ...],
                timeout_s: float = 120) -> str:
    with server.api(user) as c:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = str(c.get(f"/api/jobs/{job_id}").json()["status"])
            if status in statuses:
                return status
            time.sleep(0.5)
    pytest.fail(f"job {job_id} never reached {statuses}")


def upload(server: Server, name: str, data: bytes, material: str = "PLA") -> int:
    with server.api("resident") as c:
        r = c.post("/api/jobs", files={"file": (name, data)}, data={"material": material})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


@pytest.fixture(scope="module")
def lab_day(server: Server) -> dict[str, Any]:
    """A lab day's worth of jobs, events and machine reasons (see the module docstring)."""
    waiting = upload(server, "waiting.stl", box(8))
    printed = upload(server, "printed.stl", box(5))
    rejected = upload(server, "rejected.stl", box(7))
    cancelled = upload(server, "cancelled.stl", box(6))
    invalid = upload(server, "empty.stl", sample("empty.stl").read_bytes())
    laser = upload(server, "tag.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="40mm" '
                   b'height="20mm" viewBox="0 0 40 20"><rect x="1" y="1" width="38" '
                   b'height="18" fill="none" stroke="#ff0000" stroke-width="0.1"/></svg>',
                   material="plywood-3mm")
    for j in (waiting, printed, rejected, cancelled, laser):
        wait_status(server, "resident", j, ("awaiting_approval",))
    wait_status(server, "resident", invalid, ("invalid",))
    with server.api("staff") as c:
        assert c.post(f"/api/jobs/{printed}/approve", json={}).status_code == 200
        assert c.post(f"/api/jobs/{laser}/approve", json={}).status_code == 200
        assert c.post(f"/api/jobs/{rejected}/reject",
                      json={"reason": "The model is too big for our printers."}
                      ).status_code == 200
    with server.api("resident") as c:
        assert c.post(f"/api/jobs/{cancelled}/cancel").status_code == 200
    wait_status(server, "resident", printed, ("done",), timeout_s=240)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, size in (("Jonas.stl", 8), ("Ona.stl", 60)):
            zf.writestr(name, box(size))
    with server.api("teacher") as c:
        r = c.post("/api/batches", files={"files": ("7a.zip", buf.getvalue())},
                   data={"class_name": "7a", "material": "PLA", "budget_g": "10"})
        assert r.status_code == 201, r.text
        batch = int(r.json()["id"])
    with server.api("admin") as c:
        r = c.put("/api/devices/op-nokey", json={
            "id": "op-nokey", "site": "school-b", "kind": "printer", "driver": "octoprint",
            "name": "MK4 without a key", "url": "http://127.0.0.1:9", "build_volume_mm":
            [250, 210, 220], "api_key_env": "FABQUEUE_DEVICE_LAB_DAY_UNSET_KEY",
            "materials": ["PLA"], "profile": "prusa_mk4"})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while not c.get("/api/devices/op-nokey").json().get("state_reason_code"):
            assert time.monotonic() < deadline, "the device worker wrote no reason"
            time.sleep(0.5)
    with server.api("staff") as c:  # the printed part gets its label and a shelf place
        assert c.get(f"/api/jobs/{printed}/label").status_code == 200
        pickup = c.get(f"/api/jobs/{printed}/pickup").json()
        if pickup["suggested"]:
            r = c.post(f"/api/jobs/{printed}/pickup/place", json={"place": pickup["suggested"]})
            assert r.status_code == 200, r.text
        handover = pickup["pickup"]["handover_url"]
    return {"jobs": [waiting, printed, rejected, cancelled, invalid, laser], "batch": batch,
            "printed": printed, "invalid": invalid, "handover": handover}


#: Each role's own main page (screenshots of these are kept as artifacts).
MAIN = {"resident": "/", "teacher": "/classes", "staff": "/staff/machines", "admin": "/admin"}


def pages(role: str, data: dict[str, Any]) -> list[str]:
    own = [f"/jobs/{data['printed']}", f"/jobs/{data['invalid']}", data["handover"]]
    account = ["/account", "/account/notifications", "/privacy"]
    staff = ["/staff", "/staff/machines", "/staff/machines?site=school-b", "/staff/queue",
             "/staff/history", "/staff/stats", "/staff/spools", "/staff/spools?site=school-b",
             "/staff/trainings", "/staff/trainings?site=school-b",
             "/staff/pickup", "/staff/pickup?site=school-b",
             "/classes", f"/classes/{data['batch']}",
             *own]
    return {
        "resident": ["/", "/notifications", *own, *account],
        "teacher": ["/", "/classes", f"/classes/{data['batch']}", "/notifications", *account],
        "staff": ["/", *staff, "/notifications", *account],
        "admin": ["/", "/admin", *staff, *account],
    }[role]


def switch_language(page: Any, server: Server, locale: str) -> None:
    page.goto(f"{server.url}/")
    page.select_option("#lang-select", locale)
    page.wait_for_selector(f"html[lang={locale}]", state="attached")


@pytest.mark.parametrize("locale", ["lt", "ru"])
@pytest.mark.parametrize("role", ["resident", "teacher", "staff", "admin"])
def test_every_page_in_the_language_and_on_a_phone(browser: Any, server: Server,
                                                   lab_day: dict[str, Any], role: str,
                                                   locale: str) -> None:
    catalog = english()[locale]
    page = login(browser, server, role, locale=locale, **PHONE)
    switch_language(page, server, locale)
    # the CSP allows no inline script or style: anything a page needs and the policy blocks
    page.add_init_script("""window.fqCsp = []; document.addEventListener(
      'securitypolicyviolation', e => window.fqCsp.push(e.violatedDirective + ' ' +
      (e.blockedURI || 'inline') + ' ' + (e.sample || '')));""")
    problems: dict[str, list[str]] = {}
    try:
        for i, path in enumerate(pages(role, lab_day)):
            page.goto(f"{server.url}{path}")
            page.wait_for_load_state("load")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide = page.evaluate(WIDE)
                problems.setdefault(path, []).append(f"scrollWidth {width} > 390: {wide}")
            # The navigation is reachable: every link is inside the screen, or in a box that
            # scrolls by itself.
            nav = page.evaluate("""() => [...document.querySelectorAll('header nav a')]
              .filter(a => { const r = a.getBoundingClientRect(), n = a.closest('nav');
                return r.width === 0 || (r.right > 391 && n.scrollWidth <= n.clientWidth); })
              .map(a => a.textContent.trim())""")
            if nav:
                problems.setdefault(path, []).append(f"navigation cut off: {nav}")
            blocked = page.evaluate("() => window.fqCsp || []")
            if blocked:
                problems.setdefault(path, []).append(f"blocked by the CSP: {blocked}")
            left = leaks(page.inner_text("body"), catalog)
            if left:
                problems.setdefault(path, []).append(f"not in {locale}: {left}")
            if i == 0 or path == MAIN[role] or problems.get(path):
                name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
                page.screenshot(path=str(ARTIFACTS / f"phone-{locale}-{role}-{name}.png"),
                                full_page=True)
    finally:
        # The choice is remembered on the account: give the other tests their English back.
        switch_language(page, server, "en")
        page.context.close()
    assert not problems, "\n".join(f"{p}: {'; '.join(v)}" for p, v in problems.items())


def test_the_leak_check_would_catch_english_and_codes() -> None:
    catalog = english()["lt"]
    assert leaks("Pateikti modelį\nwaiting for approval\n", catalog) == ["waiting for approval"]
    assert leaks("Būsena: start_refused", catalog) == ["start_refused"]
    assert leaks("tool0 210 °C, bed 60 °C", catalog) == ["bed", "tool0"]
    assert leaks("Pateikti modelį · PLA · cube.stl · rejected.stl", catalog) == []
