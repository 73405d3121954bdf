"""The events a run streams to the page, as plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any, Literal

Event = dict[str, Any]
Status = Literal["ok", "error", "timeout", "killed", "cancelled"]


def output(stream: str, text: str, t: float) -> Event:
    return {"event": "output", "stream": stream, "text": text, "t": round(t, 4)}


def timing(name: str, seconds: float, start: float | None) -> Event:
    return {"event": "timing", "name": name, "seconds": round(seconds, 6), "start": round(start or 0.0, 6)}
