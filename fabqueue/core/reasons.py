"""Reasons that workers and drivers write (why a job stopped, why a machine is in error).

A worker doesn't know who will read its reason, so it never writes prose in one language:
it stores a code, an English template (the gettext msgid, marked with ``N_``) and parameters,
and the web renders them in the reader's language when shown. The stored form fits the
existing text columns (``jobs.status_reason``, ``devices.state_reason``, event reasons):
``fq:`` followed by the JSON of a :class:`~fabqueue.core.findings.Finding`.

Text that isn't in that form (older rows, a staff member's typed rejection reason, a
firmware's own message) is shown as it is: it is somebody's words, not ours to translate.

    >>> stored = reason("grbl_alarm", N_("Alarm {code}: {text}"), code=2, text="soft limit")
    >>> render(stored)
    'Alarm 2: soft limit'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fabqueue.core.findings import N_, Finding

PREFIX = "fq:"

__all__ = ["N_", "PREFIX", "decode", "reason", "render", "render_params"]


def reason(code: str, text: str, /, **params: Any) -> str:
    """Encode a reason for storage: a stable ``code``, an English ``text`` template, params.

    Parameters must be JSON-serialisable (numbers, strings); keep raw machine text (a
    firmware's message) in a parameter so the template around it is still translated.
    """
    return PREFIX + json.dumps(Finding(code, text, params).to_dict(), ensure_ascii=False,
                               separators=(",", ":"))


def decode(stored: str | None) -> Finding | None:
    """The reason's Finding, or None for text that is not an encoded reason (shown as is)."""
    if not stored or not stored.startswith(PREFIX):
        return None
    try:
        data = json.loads(stored[len(PREFIX):])
        return Finding.from_dict(data)
    except (ValueError, KeyError, TypeError):
        return None


def render_params(params: dict[str, Any],
                  translate: Callable[[str], str]) -> dict[str, Any]:
    """Parameters that are themselves encoded reasons are rendered too (a nested cause)."""
    return {k: render(v, translate) if isinstance(v, str) and v.startswith(PREFIX) else v
            for k, v in params.items()}


def render(stored: str | None, translate: Callable[[str], str] = lambda s: s) -> str:
    """The reason in the reader's words (``translate`` is the reader's gettext)."""
    if not stored:
        return ""
    found = decode(stored)
    if found is None:
        return stored
    try:
        return translate(found.text).format(**render_params(found.params, translate))
    except (KeyError, IndexError, ValueError):
        # A translation with a wrong placeholder must not break a page: fall back to English.
        return found.text.format(**render_params(found.params, lambda s: s))
