"""Importing the lesson's code: `code` is also a standard-library module name.

The lesson imports `from code.utils import async_timed` with the repository root
first on `sys.path`; whoever imports lesson code (the sandbox's child, the
template builder, the benchmarks) goes through here so the rule lives in one place.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository: `runner/`, the lesson's `code/` and the built site side by side. Defined here, the
module the sandbox's child imports anyway, so the child pays for no heavier import to learn it."""


def prefer_lesson_package() -> None:
    """Put the repository root first and forget the standard library's `code` if it was imported."""
    if sys.path[:1] != [str(REPO_ROOT)]:
        sys.path.insert(0, str(REPO_ROOT))
    stdlib_code = sys.modules.get("code")
    if stdlib_code is not None and not hasattr(stdlib_code, "__path__"):
        del sys.modules["code"]


def load_by_path(path: Path, name: str) -> ModuleType:
    """Import a lesson script by its path (its name may start with a digit)."""
    prefer_lesson_package()
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LESSON_UTILITIES = ("code", "code.utils")
"""What every sample's run imports from the lesson: the fork server imports it once for all of them."""

preloaded: dict[str, tuple[int, int]] = {}
"""Lesson modules imported ahead, by name: their file's modification time and size then."""


def preload_lesson_utilities() -> None:
    """Import the lesson's utilities now and remember their files' stamps (the fork server, at start)."""
    prefer_lesson_package()
    for name in LESSON_UTILITIES:
        module = importlib.import_module(name)
        status = os.stat(str(module.__file__))
        preloaded[name] = (status.st_mtime_ns, status.st_size)


def forget_changed_lesson_utilities() -> None:
    """Forget the preloaded lesson modules if a file of theirs changed since (a maintainer edited it).

    The next import then reads them afresh, as it would in a sandbox started from nothing."""
    for name, stamp in preloaded.items():
        module = sys.modules.get(name)
        try:
            status = os.stat(str(getattr(module, "__file__", None)))
            unchanged = (status.st_mtime_ns, status.st_size) == stamp
        except OSError:
            unchanged = False
        if not unchanged:
            for forgotten in preloaded:
                sys.modules.pop(forgotten, None)
            preloaded.clear()
            return
