"""Refresh the message catalogs: extract every msgid into messages.pot and merge it into
the lt, ru and en catalogs (new strings arrive untranslated; the i18n test then fails
until someone translates them).

Run from the repository root:  .venv/bin/python -m fabqueue.web.i18n.refresh
(The same as ``pybabel extract -F fabqueue/web/i18n/babel.cfg -k N_ -k ApiError:2
-k Refused:2 -k finding:2 -k gettext:2 -o fabqueue/web/i18n/messages.pot .`` followed by
``pybabel update -i …/messages.pot -d fabqueue/web/i18n``.)
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
POT = HERE / "messages.pot"
KEYWORDS = ("N_", "ApiError:2", "Refused:2", "finding:2", "gettext:2", "_", "ngettext:1,2")
LOCALES = ("lt", "ru", "en")


def extract_args() -> list[str]:
    args = ["pybabel", "extract", "-F", str(HERE / "babel.cfg"), "--no-location",
            "--sort-output", "--project", "FabQueue", "-o", str(POT)]
    for k in KEYWORDS:
        args += ["-k", k]
    return [*args, str(ROOT)]


def domain_ids(locale: str) -> set[str]:
    """msgids that a domain's own catalog (``<locale>/LC_MESSAGES/<domain>.po``) holds."""
    ids: set[str] = set()
    folder = HERE / locale / "LC_MESSAGES"
    for po in folder.glob("*.po"):
        if po.name != "messages.po":
            with po.open("rb") as f:
                ids |= {m.id for m in read_po(f, locale=locale) if m.id}
    return ids


def drop_domain_messages(locale: str) -> None:
    """messages.po keeps only what no domain catalog holds, so a string lives in one file."""
    po = HERE / locale / "LC_MESSAGES" / "messages.po"
    owned = domain_ids(locale)
    if not owned or not po.exists():
        return
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale)
    for msgid in owned:
        if msgid in catalog:
            del catalog[msgid]
    with po.open("wb") as f:
        write_po(f, catalog, width=100, omit_header=False)


def main() -> None:
    cli = CommandLineInterface()
    cli.run(extract_args())
    for locale in LOCALES:
        po = HERE / locale / "LC_MESSAGES" / "messages.po"
        verb = "update" if po.exists() else "init"
        args = ["pybabel", verb, "-i", str(POT), "-d", str(HERE), "-l", locale]
        if verb == "update":
            args.append("--no-fuzzy-matching")
        cli.run(args)
        drop_domain_messages(locale)


if __name__ == "__main__":
    main()
