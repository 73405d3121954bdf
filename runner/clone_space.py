"""The RAM-backed folder run databases are cloned into, and the ceiling on what it may hold.

Cloning into a tmpfs is ~15x faster than onto disk, but every byte there is host
memory, and a run can grow its database. Three things bound it:

* each run database has a quota, watched by runner/db_quota.py;
* the folder is a tmpfs of its own, mounted by the runner (when root) with
  `size=<ceiling>`: the kernel refuses pages beyond it, and PostgreSQL turns that
  ENOSPC into an ERROR for the statement that wanted them, not a crash;
* each database cloned there reserves `template + quota + OVERSHOOT_MARGIN`; when
  the ceiling cannot hold one more reservation, the next database is cloned into
  the default tablespace (disk) instead, where its pages are reclaimable cache.

So N concurrent runs at their quota hold at most the ceiling in RAM through this
folder, however large N is (see docs/operators/index.md for the arithmetic). A
runner that stops unmounts it; one that died leaves it for the next start to reuse.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("runner.clone_space")

OVERSHOOT_MARGIN = 64 * 1024 * 1024
"""Room kept per database above its quota: growth between two polls of its size, and the time to stop it."""


@dataclass(frozen=True)
class CloneSpaceUsage:
    """What /api/health reports about the clone folder (bytes)."""

    location: str
    ceiling: int
    enforced: bool
    """True when a tmpfs of exactly `ceiling` bytes is mounted there (the kernel enforces it)."""
    reserved: int
    used: int
    databases: int
    on_disk: int
    """Run databases cloned onto disk because the folder had no room for one more reservation."""


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_ceiling(base: Path, already_ours: int = 0) -> int:
    """A quarter of the memory, and no more than the folder's filesystem has free (plus what we hold there)."""
    return min(memory_bytes() // 4, shutil.disk_usage(base).free + already_ours)


def mounted_tmpfs(location: Path) -> bool:
    """Whether a tmpfs is mounted exactly at `location`."""
    target = str(location.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and _unescape(fields[4]) == target and right.split()[:1] == ["tmpfs"]:
            return True
    return False


def _unescape(path: str) -> str:
    """mountinfo writes spaces, tabs, newlines and backslashes in octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def size_of(location: Path) -> int:
    stats = os.statvfs(location)
    return stats.f_blocks * stats.f_frsize


def used_in(location: Path) -> int:
    stats = os.statvfs(location)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def tree_size(folder: Path) -> int:
    """Bytes allocated to the files under `folder` (when it shares its filesystem with others)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def mount_ceiling(location: Path, size: int, owner: tuple[int, int] | None) -> bool:
    """Mount a tmpfs of `size` bytes at `location`, or resize the one already there.

    Only root may mount; returns whether the kernel now enforces `size`. What the
    folder held before would hide under the mount, out of reach but still in RAM, so
    it is removed first: call this when no database lives there (after dropping
    orphans), before the tablespace is (re)made."""
    if os.geteuid() != 0:
        return False
    size -= size % os.sysconf("SC_PAGE_SIZE")  # tmpfs counts whole pages
    options = f"size={size},mode=0700" + (f",uid={owner[0]},gid={owner[1]}" if owner else "")
    try:
        if not mounted_tmpfs(location):
            for child in list(location.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            _mount(["-t", "tmpfs", "-o", options, "workshop-clones", str(location)])
            log.info("mounted a %d MiB tmpfs for run databases at %s", size >> 20, location)
        elif size_of(location) != size:
            _mount(["-o", f"remount,size={size}", str(location)])
            log.info("resized the tmpfs at %s to %d MiB", location, size >> 20)
    except OSError as error:
        log.warning("cannot mount a %d MiB tmpfs at %s: %s", size >> 20, location, error)
    return mounted_tmpfs(location) and size_of(location) == size


def _mount(arguments: list[str]) -> None:
    try:
        subprocess.run(["mount", *arguments], check=True, capture_output=True, text=True, timeout=30)
    except subprocess.CalledProcessError as error:
        raise OSError(error.stderr.strip() or f"mount exited with {error.returncode}") from error


class CloneSpace:
    """Reservations against the clone folder's ceiling, one per run database cloned into it."""

    def __init__(self, location: Path, ceiling: int, enforced: bool) -> None:
        self.location = location
        self.ceiling = ceiling
        self.enforced = enforced
        self.reservations: dict[str, int] = {}
        self.on_disk = 0

    @classmethod
    def prepare(cls, location: Path, setting: int, owner: tuple[int, int] | None) -> CloneSpace:
        """The space at `location` (a folder on a tmpfs), its ceiling mounted when the runner is root.

        `setting` is WORKSHOP_CLONE_SPACE: bytes, or 0 for `default_ceiling`."""
        ours = used_in(location) if mounted_tmpfs(location) else 0
        ceiling = setting or default_ceiling(location.parent, ours)
        if mount_ceiling(location, ceiling, owner):
            return cls(location, size_of(location), enforced=True)
        if mounted_tmpfs(location):  # ours, from an earlier start, and it could not be resized
            return cls(location, min(ceiling, size_of(location)), enforced=False)
        return cls(location, ceiling, enforced=False)

    def unmount(self) -> None:
        """Give the memory back when the runner stops (its databases are dropped by then).

        The tablespace's folder goes with the mount, and so does the mount point once empty
        (a cluster in a temporary folder would leave one per start otherwise); the next start
        makes both again."""
        if not self.enforced or not mounted_tmpfs(self.location):
            return
        try:
            subprocess.run(["umount", str(self.location)], check=True, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("cannot unmount the tmpfs at %s: %s", self.location, error)
            return
        with contextlib.suppress(OSError):  # not empty (someone else's files): left as it is
            self.location.rmdir()

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())

    def try_reserve(self, name: str, size: int) -> bool:
        """Reserve `size` bytes for database `name`; False (and counted) when they do not fit."""
        if self.reserved + size > self.ceiling:
            self.on_disk += 1
            return False
        self.reservations[name] = size
        return True

    def release(self, name: str) -> None:
        self.reservations.pop(name, None)

    def usage(self) -> CloneSpaceUsage:
        try:
            used = used_in(self.location) if self.enforced else tree_size(self.location)
        except OSError:
            used = 0
        return CloneSpaceUsage(
            location=str(self.location),
            ceiling=self.ceiling,
            enforced=self.enforced,
            reserved=self.reserved,
            used=used,
            databases=len(self.reservations),
            on_disk=self.on_disk,
        )
