"""Admins add and change machines on the web, checked like the devices file."""

from __future__ import annotations

import re

from fabqueue.store.models import Device
from tests.conftest import Stack

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(stack: Stack, role: str):  # type: ignore[no-untyped-def]
    client = stack.client()
    name = stack.user(role)
    page = client.get("/login", headers={"Accept-Language": "en"})
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": name, "password": stack.passwords[name],
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    admin = client.get("/admin", headers={"Accept-Language": "en"})
    return client, CSRF.search(admin.text).group(1) if admin.status_code == 200 else token  # type: ignore[union-attr]


def test_admin_adds_and_changes_a_machine_on_the_web(stack: Stack) -> None:
    client, token = signed_in(stack, "admin")
    form = {"csrf_token": token, "device_id": "web-mk4", "site": "kc", "name": "Web MK4",
            "kind": "printer", "driver": "octoprint", "size": "250x210x220",
            "materials": "PLA, PETG", "profile": "prusa_mk4", "url": "http://127.0.0.1:5999",
            "api_key_env": "FABQUEUE_DEVICE_WEB_MK4_KEY"}
    r = client.post("/admin/devices", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    with stack.ctx.db.session() as s:
        d = s.get(Device, "web-mk4")
        assert d is not None and d.size_mm == [250, 210, 220]
        assert d.materials == ["PLA", "PETG"]
        assert d.connection["api_key_env"] == "FABQUEUE_DEVICE_WEB_MK4_KEY"
    r = client.post("/admin/devices", data={**form, "materials": "PLA"}, follow_redirects=False)
    assert r.status_code == 303
    with stack.ctx.db.session() as s:
        assert s.get(Device, "web-mk4").materials == ["PLA"]  # type: ignore[union-attr]
    bad = client.post("/admin/devices", data={**form, "device_id": "web-bad", "url": ""},
                      headers={"Accept-Language": "en"})
    assert bad.status_code == 422 and "url" in bad.text
    forged = client.post("/admin/devices", data={**form, "csrf_token": "x"},
                         follow_redirects=False)
    assert forged.status_code == 403


def test_only_admins_may_save_machines(stack: Stack) -> None:
    client, token = signed_in(stack, "resident")
    r = client.post("/admin/devices", data={"csrf_token": token, "device_id": "x", "site": "kc",
                                            "size": "1x1x1"}, follow_redirects=False)
    assert r.status_code in (303, 403)
    with stack.ctx.db.session() as s:
        assert s.get(Device, "x") is None


def test_admin_adds_a_bambu_printer_with_its_serial_and_code_variable(stack: Stack) -> None:
    client, token = signed_in(stack, "admin")
    form = {"csrf_token": token, "device_id": "web-p1s", "site": "kc", "kind": "printer",
            "driver": "bambu", "size": "256x256x256", "url": "http://192.0.2.9",
            "serial": "01P00A000000009", "access_code_env": "FABQUEUE_DEVICE_WEB_P1S_CODE"}
    page = client.get("/admin")
    assert '<option value="bambu">Bambu Lab</option>' in page.text and 'name="serial"' in page.text
    r = client.post("/admin/devices", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    with stack.ctx.db.session() as s:
        d = s.get(Device, "web-p1s")
        assert d is not None and d.driver == "bambu"
        assert d.connection == {"url": "http://192.0.2.9", "serial": "01P00A000000009",
                                "access_code_env": "FABQUEUE_DEVICE_WEB_P1S_CODE"}
    bad = client.post("/admin/devices", data={**form, "device_id": "web-p1s-bad", "serial": ""},
                      headers={"Accept-Language": "en"})
    assert bad.status_code == 422 and "serial" in bad.text
