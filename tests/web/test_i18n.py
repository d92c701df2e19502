"""Every string a person reads goes through the catalogs, and Lithuanian and Russian have
all of them: extraction with Babel here is the same as the refresh script's."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from fabqueue.i18n import gettext, negotiate, read_catalog
from fabqueue.web.i18n import refresh

CATALOGS = refresh.HERE
METHOD_MAP = [("fabqueue/**.py", "python"), ("fabqueue/web/templates/**.html", "jinja2")]


def keywords() -> dict[str, tuple[int, ...] | None]:
    out: dict[str, tuple[int, ...] | None] = {}
    for spec in refresh.KEYWORDS:
        name, _, args = spec.partition(":")
        out[name] = tuple(int(a) for a in args.split(",")) if args else None
    return out


def extracted() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(refresh.ROOT), METHOD_MAP, keywords=keywords(),
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.add(msgid)
    return found


def catalog(locale: str) -> dict[str, str]:
    """messages.po and every domain catalog beside it, as the application reads them."""
    return {m.id: m.string for m in read_catalog(locale) if m.id}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.fixture(scope="module")
def msgids() -> set[str]:
    ids = extracted()
    assert len(ids) > 300, "extraction found too few strings: is babel.cfg still right?"
    return ids


@pytest.mark.parametrize("locale", ["lt", "ru"])
def test_every_message_is_translated(msgids: set[str], locale: str) -> None:
    have = catalog(locale)
    missing = sorted(m for m in msgids if not have.get(m, "").strip())
    assert not missing, f"{len(missing)} strings lack a {locale} translation " \
                        f"(run python -m fabqueue.web.i18n.refresh, then translate): {missing[:10]}"


@pytest.mark.parametrize("locale", ["lt", "ru"])
def test_translations_keep_their_placeholders(locale: str) -> None:
    bad = [(m, s) for m, s in catalog(locale).items() if s and fields(m) != fields(s)]
    assert not bad, bad[:5]


def test_english_catalog_exists_and_lookups_translate() -> None:
    assert catalog("en")
    assert gettext("lt", "Sign in") == "Prisijungti"
    assert gettext("ru", "Sign in") == "Войти"
    # A finding renders with its parameters in the reader's language.
    msg = "The model has {count} separate parts; they will be printed together."
    assert "3" in gettext("ru", msg).format(count=3)
    assert gettext("ru", msg) != msg


@pytest.mark.parametrize(("header", "expected"), [
    (None, "lt"), ("", "lt"), ("de-DE,de;q=0.9", "lt"), ("ru-RU,ru;q=0.9,en;q=0.5", "ru"),
    ("en-GB,en;q=0.9", "en"), ("fr;q=0.9, lt;q=0.4, ru;q=0.6", "ru"), ("LT", "lt"),
])
def test_first_visit_follows_accept_language(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_templates_have_no_untranslated_visible_text() -> None:
    """A cheap guard for text typed straight into a template without _()."""
    text_outside = re.compile(r">\s*([A-Z][a-z]{3,}(?: [a-z]+)+)\s*<")
    offenders = []
    for path in Path(refresh.ROOT / "fabqueue/web/templates").glob("*.html"):
        for match in text_outside.finditer(path.read_text()):
            offenders.append(f"{path.name}: {match.group(1)}")
    assert not offenders, offenders
