"""Accounts: creation and password checks (Argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
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


def check_email(email: str | None) -> str | None:
    """A deliverable-looking address (no CR/LF or other header tricks), normalised; or None."""
    if email is None or not email.strip():
        return None
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AccountError(f"not an e-mail address: {exc}") from None


def check_membership(session: Session, role: str, site: str | None) -> tuple[Role, str | None]:
    """The one rule for accounts (API, pages, CLI): a known role; staff and teachers belong to
    an existing site; an empty site is no site. Returns the role and the site id."""
    try:
        role_ = Role(role)
    except ValueError:
        raise AccountError(f"unknown role {role!r}; use one of "
                           + ", ".join(r.value for r in Role)) from None
    site = (site or "").strip() or None
    if role_ in SITE_ROLES and not site:
        raise AccountError(f"a {role_.value} belongs to a site: give a site")
    if site and session.get(Site, site) is None:
        raise AccountError(f"no site {site!r}")
    return role_, site


def create_user(session: Session, name: str, password: str, role: str,
                site: str | None = None, email: str | None = None) -> User:
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("a user name needs 1 to 100 characters")
    if len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    role_, site = check_membership(session, role, site)
    email = check_email(email)
    if get_user(session, name):
        raise AccountError(f"the user {name!r} exists already")
    user = User(name=name, password_hash=hash_password(password), role=role_.value,
                site_id=site, email=email)
    session.add(user)
    session.flush()
    return user


def revoke_sign_ins(user: User) -> None:
    """Every token and cookie issued so far stops working (they carry the old version)."""
    user.token_version = (user.token_version or 0) + 1


def set_password(user: User, password: str) -> None:
    if len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    user.password_hash = hash_password(password)
    revoke_sign_ins(user)


def authenticate(session: Session, name: str, password: str) -> User | None:
    user = get_user(session, name)
    if user is None or user.disabled:
        _hasher.hash(password)  # same work either way: don't leak which names exist
        return None
    return user if verify_password(user, password) else None
