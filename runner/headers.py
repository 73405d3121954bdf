"""Security headers on every response, the site's and the API's.

The Content-Security-Policy allows only this origin, plus the site's few inline
scripts (Material's palette and config bootstrap) by their SHA-256, computed from
the built site at start-up, so no `'unsafe-inline'` is needed for scripts. Styles
keep `'unsafe-inline'`: mermaid writes style attributes into the SVGs it draws.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

INLINE_SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S | re.I)
NOT_RUN = re.compile(r"\bsrc\s*=|type\s*=\s*[\"']?application/json", re.I)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def inline_script_hashes(site: Path) -> list[str]:
    """`'sha256-…'` sources for every distinct inline script the built site's pages run."""
    hashes: set[str] = set()
    if site.is_dir():
        for page in site.rglob("*.html"):
            for match in INLINE_SCRIPT.finditer(page.read_text(encoding="utf-8", errors="replace")):
                if NOT_RUN.search(match["attrs"]) or not match["body"].strip():
                    continue
                digest = base64.b64encode(hashlib.sha256(match["body"].encode()).digest()).decode()
                hashes.add(f"'sha256-{digest}'")
    return sorted(hashes)


def content_security_policy(site: Path) -> str:
    scripts = " ".join(["'self'", *inline_script_hashes(site)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(site: Path) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", content_security_policy(site).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class SecurityHeaders:
    """ASGI middleware: adds the headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, site: Path) -> None:
        self.app = app
        self.headers = security_headers(site)

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in self.headers if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
