"""Accounts: creation and password checks (Argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from fabqueue.core.access import SITE_ROLES, Role
from fabqueue.store.models import Site, User
from fabqueue.store.queries import get_user

_hasher = PasswordHasher()


class AccountError(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, name: str, password: str, role: str,
                site: str | None = None, email: str | None = None) -> User:
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("a user name needs 1 to 100 characters")
    if len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    try:
        role_ = Role(role)
    except ValueError:
        raise AccountError(f"unknown role {role!r}; use one of "
                           + ", ".join(r.value for r in Role)) from None
    if role_ in SITE_ROLES and not site:
        raise AccountError(f"a {role_.value} belongs to a site: give --site")
    if site and session.get(Site, site) is None:
        raise AccountError(f"no site {site!r}")
    if get_user(session, name):
        raise AccountError(f"the user {name!r} exists already")
    user = User(name=name, password_hash=hash_password(password), role=role_.value,
                site_id=site, email=email)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    user = get_user(session, name)
    if user is None or user.disabled:
        _hasher.hash(password)  # same work either way: don't leak which names exist
        return None
    return user if verify_password(user, password) else None
