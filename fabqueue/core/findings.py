"""Findings: errors and warnings about an upload, in words a resident can act on.

A finding carries an English message template (the gettext msgid, marked with ``N_`` so Babel
extracts it) and its parameters. It is stored as plain data; the web renders it in the
reader's language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Mark a string for translation without translating it now (Babel extracts it)."""
    return message


@dataclass(frozen=True)
class Finding:
    code: str  # stable machine-readable code, e.g. "not_watertight"
    text: str  # English template, the gettext msgid, with {name} placeholders
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = lambda s: s) -> str:
        return translate(self.text).format(**self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(data["code"], data["text"], dict(data.get("params") or {}))


def finding(code: str, text: str, **params: Any) -> Finding:
    return Finding(code, text, params)


class Refused(Exception):
    """An upload that can't be used at all (raised by guards and parsers)."""

    def __init__(self, code: str, text: str, **params: Any) -> None:
        self.finding = Finding(code, text, params)
        super().__init__(self.finding.render())
