"""Security headers on every response: a strict Content-Security-Policy (the UI ships its own
scripts, so ``script-src 'self'``), no framing, no MIME sniffing, no cross-site referrer.

A response that set its own header (the sandboxed file download) keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).with_name("templates")
# An import map can't be an external file, so each one in the templates is allowed by its
# hash (CSP Level 2): nothing else inline runs.
_IMPORTMAP = re.compile(r'<script type="importmap">(.*?)</script>', re.S)


def inline_hashes(templates: Path = TEMPLATES) -> list[str]:
    found: set[str] = set()
    for page in sorted(templates.glob("*.html")):
        for body in _IMPORTMAP.findall(page.read_text(encoding="utf-8")):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            found.add(f"'sha256-{digest}'")
    return sorted(found)


def content_security_policy() -> str:
    scripts = " ".join(["'self'", *inline_hashes()])
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        # no inline styles either (htmx's indicator style is switched off in base.html):
        # injected CSS can't run code, but it can restyle a page into a convincing fake
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """Pure ASGI: adds the headers to ``http.response.start`` without touching bodies."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy().encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.headers if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
