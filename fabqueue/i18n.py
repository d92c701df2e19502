"""Translations (gettext catalogs kept as .po sources, compiled in memory by Babel).

Lithuanian is the default for a first visit whose ``Accept-Language`` matches nothing.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

CATALOGS = Path(__file__).parent / "web" / "i18n"
LOCALES = ("lt", "ru", "en")
DEFAULT_LOCALE = "lt"
LANGUAGE_NAMES = {"lt": "Lietuvių", "ru": "Русский", "en": "English"}


@cache
def translations(locale: str) -> NullTranslations:
    po = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale)
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
