"""Issue 19: the last active administrator can't be demoted or disabled (nobody could add
one back). The handler runs on a database of this test's own (SQLite; PostgreSQL on the
external pass), since the shared stack always has the demo admin besides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabqueue.core.access import Role
from fabqueue.store.db import Database
from fabqueue.store.models import User
from fabqueue.store.users import create_user
from fabqueue.web.api.users import UserPatch, _handle_patch
from fabqueue.web.deps import ApiError
from tests.conftest import own_database

pytestmark = pytest.mark.stack


def patch(db: Database, target: int, actor: int, **fields: object) -> int:
    """The PATCH handler in one transaction; the status it answers (200 or its ApiError)."""
    try:
        with db.session() as s:
            _handle_patch(user_id=target, body=UserPatch(**fields),
                          request=None, user=s.get(User, actor), db=s)  # type: ignore[arg-type]
    except ApiError as exc:
        return exc.status_code
    return 200


def test_the_last_active_admin_stays(tmp_path: Path) -> None:
    url = own_database(str(tmp_path)).get("DATABASE_URL") or \
        f"sqlite:///{tmp_path / 'admins.sqlite3'}"
    db = Database(url)
    db.migrate()
    try:
        with db.session() as s:
            a = create_user(s, "wh-admin-a", "password-a1", "admin").id
            b = create_user(s, "wh-admin-b", "password-b1", "admin").id
        assert patch(db, b, a, disabled=True) == 200  # a remains
        assert patch(db, a, a, role=Role.STAFF.value, site=None) == 409
        with db.session() as s:
            assert s.get(User, a).role == "admin"
        assert patch(db, b, a, role=Role.RESIDENT.value) == 200  # b is disabled anyway
        assert patch(db, b, a, disabled=False, role=Role.ADMIN.value) == 200
        assert patch(db, b, b, role=Role.RESIDENT.value) == 200  # a is still there
        assert patch(db, a, a, role=Role.RESIDENT.value) == 409
        with db.session() as s:
            assert s.get(User, a).role == "admin" and not s.get(User, a).disabled
    finally:
        db.engine.dispose()
