"""Work that must run to its end even when the task awaiting it is cancelled (clean-up, creations)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish_uncancelled(work: Awaitable[T]) -> T:
    """Await `work` to the end even if cancelled meanwhile, then let the cancellation through."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
