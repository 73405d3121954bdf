"""Work that must run to its end even when the task awaiting it is cancelled (clean-up, creations)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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


async def made_uncancelled(make: Awaitable[T], undo: Callable[[T], Awaitable[object]]) -> T:
    """Await `make`; if cancelled meanwhile, let it finish, `undo` what it made, then let the cancellation through.

    For creations that cannot be stopped halfway, such as a worker thread's: cancelling the
    task that awaits one does not stop the thread, and what it makes would be left behind."""
    task = asyncio.ensure_future(make)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done() and task.cancelled():
            raise
        made = await finish_uncancelled(task)  # raises what `make` raised, if it failed: nothing to undo
        await finish_uncancelled(undo(made))
        raise
