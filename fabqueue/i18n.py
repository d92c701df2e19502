"""Translations (gettext catalogs kept as .po sources, compiled in memory by Babel).

Lithuanian is the default for a first visit whose ``Accept-Language`` matches nothing.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

CATALOGS = Path(__file__).parent / "web" / "i18n"
LOCALES = ("lt", "ru", "en")
DEFAULT_LOCALE = "lt"
LANGUAGE_NAMES = {"lt": "Lietuvių", "ru": "Русский", "en": "English"}


def catalog_files(locale: str) -> list[Path]:
    """``messages.po`` first, then each domain's own catalog (``trainings.po``, ``pickup.po``
    …): a domain keeps its strings in a file of its own so that work on two domains never
    rewrites the same catalog; a later file's translation wins over an empty one."""
    folder = CATALOGS / locale / "LC_MESSAGES"
    main = folder / "messages.po"
    others = sorted(p for p in folder.glob("*.po") if p != main)
    return [p for p in (main, *others) if p.exists()]


def read_catalog(locale: str) -> Catalog:
    """Every catalog file of a locale merged into one (non-empty translations win)."""
    merged = Catalog(locale=locale)
    for po in catalog_files(locale):
        with po.open("rb") as f:
            for message in read_po(f, locale=locale):
                if not message.id:
                    continue
                have = merged.get(message.id)
                if have is None or not have.string:
                    merged[message.id] = message
    return merged


@cache
def translations(locale: str) -> NullTranslations:
    if not catalog_files(locale):
        return NullTranslations()
    catalog = read_catalog(locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def gettext(locale: str, message: str) -> str:
    return translations(locale).gettext(message)


def negotiate(accept_language: str | None, default: str = DEFAULT_LOCALE) -> str:
    """Pick lt, ru or en from an Accept-Language header."""
    if not accept_language:
        return default
    prefs: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()
        q = 1.0
        for b in bits[1:]:
            if b.strip().startswith("q="):
                try:
                    q = float(b.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag:
            prefs.append((q, tag))
    for _, tag in sorted(prefs, key=lambda p: -p[0]):
        base = tag.split("-")[0]
        if base in LOCALES:
            return base
    return default


def babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)
