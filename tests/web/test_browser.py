"""FabQueue in a real browser (Debian's Chromium via Playwright) against ``fabqueue serve
--demo``: what residents, staff and teachers do, languages, a phone screen, and security."""

from __future__ import annotations

import base64
import csv
import io
import re
import zipfile
from typing import Any

import httpx
import pytest
import trimesh
from babel.messages.pofile import read_po

from tests.web.conftest import ARTIFACTS, Server, login, sample, shot

pytestmark = pytest.mark.browser

RECORD_PROGRESS = """() => {
  const bar = document.querySelector('#submit-form progress, #class-form progress');
  new MutationObserver(() => sessionStorage.setItem('fq-progress', JSON.stringify(
    {visible: !bar.hidden, value: Number(bar.value), max: Number(bar.max)})))
    .observe(bar, {attributes: true});
}"""
DROP_FILE = """([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, {type: 'application/octet-stream'}));
  return dt;
}"""


def box_stl(size_mm: float) -> bytes:
    return bytes(trimesh.creation.box(extents=(size_mm,) * 3).export(file_type="stl"))


def api_upload(server: Server, user: str, name: str, data: bytes, **fields: str) -> dict[str, Any]:
    with server.api(user) as c:
        r = c.post("/api/jobs", files={"file": (name, data)},
                   data={"material": "PLA", **fields})
        assert r.status_code == 201, r.text
        return dict(r.json())


def wait_status(server: Server, user: str, job_id: int, statuses: tuple[str, ...],
                page: Any, timeout_ms: int = 30_000) -> str:
    with server.api(user) as c:
        for _ in range(timeout_ms // 250):
            status = c.get(f"/api/jobs/{job_id}").json()["status"]
            if status in statuses:
                return str(status)
            page.wait_for_timeout(250)
    pytest.fail(f"job {job_id} never reached {statuses}")


def test_resident_drags_in_a_model_and_sees_the_staff_approval_live(
        browser: Any, server: Server) -> None:
    cube = sample("20mm-xyz-cube.stl").read_bytes()
    page = login(browser, server, "resident")
    page.evaluate(RECORD_PROGRESS)
    dt = page.evaluate_handle(DROP_FILE, [base64.b64encode(cube).decode(), "cube.stl"])
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dt})
    assert page.inner_text("[data-chosen]") == "cube.stl"
    page.select_option("#material", "PLA")
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    progress = page.evaluate("JSON.parse(sessionStorage.getItem('fq-progress'))")
    assert progress["visible"] and progress["value"] == progress["max"] > 0
    job_id = int(page.url.rsplit("/", 1)[1])
    # The analysis lands while the page is open: thumbnail, estimate, cost, 3D view.
    page.wait_for_selector("#thumbnail", timeout=30_000)
    page.wait_for_selector("#estimate-cost")
    assert "7.94" in page.inner_text("#estimate") or "7,94" in page.inner_text("#estimate")
    page.wait_for_selector("#model-3d[data-state=ready]", timeout=30_000)
    assert page.eval_on_selector("#thumbnail", "img => img.naturalWidth") > 0
    assert page.get_attribute("#job-status", "data-status") == "awaiting_approval"
    page.evaluate("window.noReload = true")
    shot(page, "resident-job-analysed")

    staff = login(browser, server, "staff")
    staff.goto(f"{server.url}/staff")
    assert staff.locator(f"li[data-job='{job_id}'] img").count() == 1
    assert "resident" in staff.inner_text(f"li[data-job='{job_id}'] .owner")
    shot(staff, "staff-inbox")
    staff.click(f"#approve-{job_id}")
    staff.wait_for_url(f"{server.url}/staff")
    assert staff.locator(f"li[data-job='{job_id}']").count() == 0

    # The resident's page changes by itself (server-sent event), without a reload.
    page.wait_for_function(
        # a function, not a string: a string is eval'd in the page, which the CSP forbids
        "() => document.querySelector('#job-status').dataset.status !== 'awaiting_approval'",
        timeout=15_000, polling=250)
    assert page.evaluate("window.noReload") is True
    assert "approved" in page.inner_text("#timeline") or "approved" in page.inner_text(
        "#job-status") or page.get_attribute("#job-status", "data-status") != "rejected"
    shot(page, "resident-job-approved")
    page.context.close()
    staff.context.close()


def test_machine_board_follows_a_print_and_bed_cleared_works(
        browser: Any, server: Server) -> None:
    job = api_upload(server, "resident", "small.stl", box_stl(6))
    wait_status(server, "resident", job["id"], ("awaiting_approval",), _Sleeper())
    with server.api("staff") as c:
        assert c.post(f"/api/jobs/{job['id']}/approve", json={}).status_code == 200
    page = login(browser, server, "staff")
    page.goto(f"{server.url}/staff/machines?site=kc")
    assert page.locator(".machine").count() >= 2
    with server.api("staff") as c:
        for _ in range(240):
            device = c.get(f"/api/jobs/{job['id']}").json()["device"]
            if device:
                break
            page.wait_for_timeout(250)
    assert device, "the job was never given a printer"
    card = f"#device-{device}"
    page.wait_for_selector(f"{card} .dstate[data-state=busy], "
                           f"{card} .dstate[data-state=needs_bed_clear]", timeout=60_000)
    shot(page, "board-printing")
    page.wait_for_selector(f"{card} .dstate[data-state=needs_bed_clear]", timeout=90_000)
    shot(page, "board-needs-bed-clear")
    page.click(f"#bed-cleared-{device}")
    page.wait_for_function(
        f"() => document.querySelector('{card} .dstate').dataset.state !== 'needs_bed_clear'",
        timeout=10_000, polling=250)
    with server.api("staff") as c:
        assert c.get(f"/api/devices/{device}").json()["state"] != "needs_bed_clear"
        assert c.get(f"/api/jobs/{job['id']}").json()["status"] == "done"
    page.context.close()


class _Sleeper:
    def wait_for_timeout(self, ms: int) -> None:
        import time

        time.sleep(ms / 1000)


def english_phrases() -> list[str]:
    from fabqueue.web.i18n.refresh import HERE

    with (HERE / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        ids = [m.id for m in read_po(f) if m.id and "{" not in m.id]
    # Phrases that can't be mistaken for data (user names, file names, material codes).
    return [i for i in ids if " " in i or (i[:1].isupper() and len(i) > 3)]


def test_language_switch_turns_every_visible_string(browser: Any, server: Server) -> None:
    first = browser.new_context(locale="ru-RU")
    p = first.new_page()
    p.goto(f"{server.url}/login")
    assert p.inner_text("h1") == "Войти"
    first.close()
    other = browser.new_context(locale="de-DE")
    p = other.new_page()
    p.goto(f"{server.url}/login")
    assert p.inner_text("h1") == "Prisijungti"  # Lithuanian when nothing matches
    other.close()

    page = login(browser, server, "resident", locale="en")
    assert page.inner_text("h1") == "Submit a model"
    phrases = english_phrases()
    for path in ("/", "/notifications"):
        for target, heading in (("ru", None), ("lt", None)):
            page.goto(f"{server.url}{path}")
            page.select_option("#lang-select", target)
            page.wait_for_load_state("load")
            page.wait_for_selector(f"html[lang={target}]", state="attached")
            text = page.inner_text("body")
            left = [ph for ph in phrases if re.search(rf"(?<!\w){re.escape(ph)}(?!\w)", text)]
            assert not left, f"English left on {path} in {target}: {left}"
            del heading
    shot(page, "resident-lithuanian")
    page.goto(f"{server.url}/jobs/1")
    text = page.inner_text("body")
    left = [ph for ph in phrases if re.search(rf"(?<!\w){re.escape(ph)}(?!\w)", text)]
    assert not left, f"English left on a job page: {left}"
    page.context.close()
    # Remembered per user: a new browser asking for English still gets Lithuanian.
    again = login(browser, server, "resident", locale="en")
    assert again.inner_text("h1") == "Pateikti modelį"
    again.select_option("#lang-select", "en")
    again.wait_for_selector("html[lang=en]", state="attached")
    again.context.close()


def test_phone_sized_screen(browser: Any, server: Server) -> None:
    for user, path in (("resident", "/"), ("staff", "/staff/machines"), ("staff", "/staff")):
        page = login(browser, server, user, viewport={"width": 375, "height": 740},
                     is_mobile=True, has_touch=True, device_scale_factor=2)
        page.goto(f"{server.url}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{path} scrolls sideways on a phone by {overflow}px"
        for box in page.locator("main button:visible").all()[:10]:
            bb = box.bounding_box()
            assert bb is None or bb["height"] >= 30, "buttons too small to tap"
        shot(page, f"phone-{user}-{path.strip('/').replace('/', '-') or 'home'}")
        page.context.close()


def test_teacher_uploads_a_class_zip_and_sees_the_board(browser: Any, server: Server) -> None:
    pupils = {"Jonas_Jonaitis.stl": 8, "Олег Петров.stl": 9, "Ona.stl": 10}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, size in pupils.items():
            zf.writestr(name, box_stl(size))
    zip_path = ARTIFACTS / "class-8b.zip"
    zip_path.write_bytes(buf.getvalue())
    page = login(browser, server, "teacher")
    page.goto(f"{server.url}/classes")
    page.fill("#class_name", "8b")
    page.select_option("#c-material", "PLA")
    page.fill("#budget_g", "50")
    page.set_input_files("#class-files", str(zip_path))
    page.click("#class-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/classes/\d+$"), timeout=30_000)
    names = sorted(page.locator(".pupil-name").all_inner_texts())
    assert names == sorted(["Jonas Jonaitis", "Олег Петров", "Ona"])
    page.wait_for_function("() => document.querySelectorAll('.pupil img').length === 3",
                           timeout=60_000, polling=250)
    shot(page, "teacher-class-board")
    csv_url = page.get_attribute("a[href$='export.csv']", "href")
    body = page.request.get(f"{server.url}{csv_url}").text().lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(body)))
    assert {r[0] for r in rows[1:]} == {"Jonas Jonaitis", "Олег Петров", "Ona"}
    page.context.close()


def test_security_in_the_browser(browser: Any, server: Server) -> None:
    # A second resident, made by the admin.
    with server.api("admin") as c:
        r = c.post("/api/users", json={"name": "mallory", "password": "mallory-pass-1",
                                       "role": "resident"})
        assert r.status_code in (201, 422), r.text
    server.passwords["mallory"] = "mallory-pass-1"
    hostile_svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="50mm" height="50mm" '
                   b'viewBox="0 0 50 50" onload="document.title=\'pwned\'">'
                   b'<script>document.title="pwned";alert(1)</script>'
                   b'<rect x="5" y="5" width="40" height="40" fill="none" stroke="#ff0000"/>'
                   b'</svg>')
    svg_job = api_upload(server, "resident", "<b onclick=alert(3)>x.svg", hostile_svg,
                         note='<img src=x onerror="alert(2)">', material="plywood-3mm")
    victim = login(browser, server, "resident")
    dialogs: list[str] = []
    victim.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    victim.goto(f"{server.url}/jobs/{svg_job['id']}")
    assert "<b onclick=alert(3)>x.svg" in victim.inner_text("h1")  # text, not markup
    assert '<img src=x onerror="alert(2)">' in victim.inner_text("#job-note")
    assert victim.locator("main b").count() == 0
    # The uploaded SVG is only ever a download: no script of it runs in our origin.
    assert victim.locator(f"[src$='/api/jobs/{svg_job['id']}/file'], object, iframe, embed"
                          ).count() == 0
    with victim.expect_download() as download:
        victim.evaluate(f"location.href = '/api/jobs/{svg_job['id']}/file'")
    assert download.value.suggested_filename.endswith(".svg")
    victim.wait_for_timeout(500)
    assert dialogs == [] and victim.title() != "pwned"
    headers = victim.request.get(f"{server.url}/api/jobs/{svg_job['id']}/file").headers
    assert headers["content-disposition"].startswith("attachment")
    assert "sandbox" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"

    # Another resident gets 403 for the job page and the file.
    mallory = login(browser, server, "mallory")
    response = mallory.goto(f"{server.url}/jobs/{svg_job['id']}")
    assert response is not None and response.status == 403
    assert mallory.request.get(f"{server.url}/api/jobs/{svg_job['id']}/file").status == 403
    assert mallory.request.get(f"{server.url}/api/jobs/{svg_job['id']}/thumbnail"
                               ).status == 403

    # A form without the session's CSRF token fails, in the page and to the API.
    status = victim.evaluate("""async (id) => {
        const body = new URLSearchParams({csrf_token: 'forged'});
        return (await fetch('/jobs/' + id + '/cancel', {method: 'POST', body})).status;
    }""", svg_job["id"])
    assert status == 403
    status = victim.evaluate("""async (id) =>
        (await fetch('/api/jobs/' + id + '/cancel', {method: 'POST'})).status""",
                             svg_job["id"])
    assert status == 403
    pending = api_upload(server, "resident", "pending.stl", box_stl(7),
                         note='<script>alert(4)</script>')
    wait_status(server, "resident", pending["id"], ("awaiting_approval",), victim)
    staff = login(browser, server, "staff")
    staff.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    staff.goto(f"{server.url}/staff")
    item = f"li[data-job='{pending['id']}']"
    assert "<script>alert(4)</script>" in staff.inner_text(f"{item} .note")
    staff.evaluate("document.querySelectorAll('input[name=csrf_token]')"
                   ".forEach(i => i.value = 'forged')")
    with staff.expect_response(lambda r: r.url.endswith(f"/staff/jobs/{pending['id']}/approve")
                               ) as resp:
        staff.click(f"#approve-{pending['id']}")
    assert resp.value.status == 403
    with server.api("staff") as c:
        assert c.get(f"/api/jobs/{pending['id']}").json()["status"] == "awaiting_approval"
    assert httpx.get(f"{server.url}/api/jobs/{svg_job['id']}").status_code == 401
    assert dialogs == []
    shot(victim, "security-escaped-job")
    for ctx in (victim.context, mallory.context, staff.context):
        ctx.close()


def test_laser_started_with_the_checklist_and_stopped_from_the_board(
        browser: Any, server: Server) -> None:
    drawing = (b'<svg xmlns="http://www.w3.org/2000/svg" width="120mm" height="120mm" '
               b'viewBox="0 0 120 120"><rect x="10" y="10" width="100" height="100" '
               b'fill="#000000"/><rect x="5" y="5" width="110" height="110" fill="none" '
               b'stroke="#ff0000"/></svg>')
    job = api_upload(server, "resident", "plate.svg", drawing, material="plywood-3mm")
    wait_status(server, "resident", job["id"], ("awaiting_approval", "invalid"), _Sleeper())
    with server.api("staff") as c:
        r = c.post(f"/api/jobs/{job['id']}/approve", json={"device": "laser-1"})
        assert r.status_code == 200, r.text
    wait_status(server, "resident", job["id"], ("ready",), _Sleeper(), timeout_ms=60_000)
    page = login(browser, server, "staff")
    page.goto(f"{server.url}/staff/machines?site=kc")
    card = "#device-laser-1"
    page.wait_for_selector(f"{card} form.checklist")
    page.select_option("#laser-job-laser-1", str(job["id"]))
    # A missing checklist item is refused, naming it.
    page.check(f"{card} input[name='checklist.material']")
    page.click("#start-laser-1")
    page.wait_for_selector("#flash:not([hidden])")
    assert "Focus is set" in page.inner_text("#flash")  # the item as staff read it
    for item in ("focus", "air", "lid"):
        page.check(f"{card} input[name='checklist.{item}']")
    page.click("#start-laser-1")
    page.wait_for_selector(f"{card} .dstate[data-state=busy]", timeout=30_000)
    shot(page, "board-laser-running")
    page.click("#stop-laser-1")
    status = wait_status(server, "resident", job["id"], ("interrupted", "cancelled", "failed"),
                         page)
    assert status == "interrupted"
    page.wait_for_function(
        f"() => document.querySelector('{card} .dstate').dataset.state !== 'busy'",
        timeout=10_000, polling=250)
    shot(page, "board-laser-stopped")
    page.context.close()


def test_staff_history_statistics_and_admin_pages(browser: Any, server: Server) -> None:
    job = api_upload(server, "resident", "stats.stl", box_stl(5))
    wait_status(server, "resident", job["id"], ("awaiting_approval",), _Sleeper())
    staff = login(browser, server, "staff")
    staff.goto(f"{server.url}/staff/history?status=awaiting_approval&owner=resident")
    assert "stats.stl" in staff.inner_text("table")
    staff.goto(f"{server.url}/staff/history?status=done&q=stats.stl")
    # Nothing matches: the page says so instead of showing an empty table's headers.
    assert staff.locator("table").count() == 0 and staff.locator("#history-empty").count() == 1
    assert "stats.stl" not in staff.inner_text("main")
    staff.goto(f"{server.url}/staff/stats")
    assert staff.locator("svg.chart[role=img] rect").count() >= 1
    body = staff.request.get(f"{server.url}/staff/stats.csv").text()
    rows = list(csv.DictReader(io.StringIO(body)))
    kc = [r for r in rows if r["site"] == "kc"]
    assert kc and sum(int(r["jobs"]) for r in kc) >= 1
    shot(staff, "staff-statistics")
    assert staff.goto(f"{server.url}/admin").status == 403
    staff.context.close()

    admin = login(browser, server, "admin")
    admin.goto(f"{server.url}/admin")
    admin.fill("#new-name", "ona")
    admin.select_option("#new-role", "resident")
    admin.click("form[action='/admin/users'] button")
    password = admin.inner_text("#invited code")
    assert len(password) >= 8
    r = httpx.post(f"{server.url}/api/auth/token", data={"username": "ona", "password": password})
    assert r.status_code == 200
    row = admin.locator("tr", has=admin.locator("td", has_text="ona")).first
    row.locator("input[name=quota]").fill("250")
    row.locator("button").click()
    admin.wait_for_url(re.compile(r".*/admin(#users)?$"))
    with server.api("admin") as c:
        ona = next(u for u in c.get("/api/users").json() if u["name"] == "ona")
    assert ona["quota_g_month"] == 250
    shot(admin, "admin")
    admin.context.close()


def test_a_model_drawn_in_inches_gets_the_scale_suggestion(
        browser: Any, server: Server) -> None:
    job = api_upload(server, "resident", "inches.stl", box_stl(20 / 25.4))
    # analysed first (on a loaded host the shared workers may take longer than a page wait)
    wait_status(server, "resident", job["id"], ("awaiting_approval", "invalid"), _Sleeper(),
                timeout_ms=120_000)
    page = login(browser, server, "resident")
    page.goto(f"{server.url}/jobs/{job['id']}")
    page.wait_for_selector("#scale-suggestion", timeout=30_000)
    assert "×25.4" in page.inner_text("#scale-suggestion")
    assert page.locator("li.warning[data-code=units_suspect]").count() == 1
    shot(page, "resident-scale-suggestion")
    page.context.close()
