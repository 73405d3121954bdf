"""`python -m runner preview`: the site and the runner on one port, for a maintainer at work.

The site is built once, then rebuilt whenever something under `docs/` or `code/`
or `mkdocs.yml` changes; each build goes to a folder of its own and replaces the
served one only when it succeeds, so a broken edit leaves the last good site up
and the build's warnings in the terminal. The runner needs no help: its
catalogue rereads a sample as soon as the file changes (`snippets.Catalogue`),
so the Run button executes what the rebuilt page shows. Reload the page to see a
rebuild. Builds are not strict here; `make site` and the tests are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import uvicorn
from watchdog.events import (
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .lessons import REPO_ROOT
from .settings import Settings

log = logging.getLogger("runner.preview")

WATCHED = ("docs", "code")
WATCHED_FILES = ("mkdocs.yml",)
_CHANGES = {EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED}
_IGNORED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".mypy_cache", ".ruff_cache"}


def is_relevant(path: str, root: Path = REPO_ROOT) -> bool:
    """A change the site or the runner cares about (not bytecode, editor droppings or build output)."""
    try:
        relative = Path(path).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    parts = relative.parts
    if not parts or any(part in _IGNORED_PARTS for part in parts):
        return False
    name = parts[-1]
    if name.startswith(".") or name.endswith(("~", ".swp", ".swx", ".tmp")):
        return False
    return parts[0] in WATCHED or (len(parts) == 1 and name in WATCHED_FILES)


class _Nudge(FileSystemEventHandler):
    """Runs on watchdog's thread; sets an asyncio event on the preview's loop for each relevant change."""

    def __init__(self, loop: asyncio.AbstractEventLoop, changed: asyncio.Event, root: Path) -> None:
        self.loop, self.changed, self.root = loop, changed, root

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGES:
            return  # opened/closed-without-writing: the build itself reads every file
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(p and is_relevant(os.fsdecode(p), self.root) for p in paths):
            self.loop.call_soon_threadsafe(self.changed.set)


def watch(root: Path, loop: asyncio.AbstractEventLoop, changed: asyncio.Event) -> BaseObserver:
    """Start watchdog's thread on docs/, code/ and the repository root (for mkdocs.yml)."""
    observer: BaseObserver = Observer()
    handler = _Nudge(loop, changed, root)
    for folder in WATCHED:
        if (root / folder).is_dir():
            observer.schedule(handler, str(root / folder), recursive=True)
    observer.schedule(handler, str(root), recursive=False)
    observer.start()
    return observer


async def build_site(site_dir: Path, root: Path = REPO_ROOT) -> bool:
    """Build into a fresh folder beside `site_dir`, then swap it in; False (and the old site kept) on failure."""
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}-building-", dir=site_dir.parent))
    began = time.perf_counter()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mkdocs", "build", "--quiet", "--site-dir", str(staging),
            cwd=root,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )  # fmt: skip
        try:
            code = await process.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if code != 0:
            log.warning("the site build failed (see above); still serving the last good site")
            return False
        _swap(staging, site_dir)
        log.info("site rebuilt in %.1f s", time.perf_counter() - began)
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(new: Path, site_dir: Path) -> None:
    """Replace `site_dir` by `new` with two renames: requests in between see at worst a 404."""
    old = site_dir.with_name(f".{site_dir.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if site_dir.exists():
        site_dir.rename(old)
    new.rename(site_dir)
    shutil.rmtree(old, ignore_errors=True)


async def rebuild_on_change(changed: asyncio.Event, site_dir: Path, root: Path = REPO_ROOT) -> None:
    """One build at a time; changes made during a build are picked up by the next one."""
    while True:
        await changed.wait()
        changed.clear()
        await build_site(site_dir, root)


async def preview(settings: Settings, host: str, port: int) -> int:
    from .app import create_app

    site_dir = settings.site_dir
    await build_site(site_dir)
    site_dir.mkdir(parents=True, exist_ok=True)  # mounted even if the first build failed: the next may not
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    changed = asyncio.Event()
    observer = watch(REPO_ROOT, asyncio.get_running_loop(), changed)
    rebuilder = asyncio.create_task(rebuild_on_change(changed, site_dir))
    log.info("preview: watching docs/, code/ and mkdocs.yml; reload the page after an edit")
    try:
        await server.serve()
    finally:
        rebuilder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rebuilder
        observer.stop()
        await asyncio.to_thread(observer.join)
    return 0
