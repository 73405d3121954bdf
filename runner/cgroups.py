"""A control group per run: one memory, process and CPU budget for every process of a sandbox.

Rlimits bound each process; a run is many processes (threads, subprocesses, a
fork bomb), so the limits that matter are kept by the kernel per group. The
runner finds what it may use at start:

* cgroup v2 where it has a delegated subtree (systemd `Delegate=yes`, a container
  with its own cgroup namespace): `memory.max`, `pids.max`, `cpu.max`;
* cgroup v1 where the host mounts the `memory`, `pids` and `cpu` hierarchies
  read-write (hybrid hosts): `memory.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`.

Each run gets `workshop-<runner pid>/<run>` below the runner's own group; the
kernel's OOM killer then acts inside that group only, and `kill` empties it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

log = logging.getLogger("runner.cgroups")

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLimits:
    """What one run may use, across all its processes."""

    memory: int = 512 * 1024 * 1024
    pids: int = 64
    cpu: float = 1.0

    def describe(self) -> str:
        return f"memory {self.memory // (1024 * 1024)} MiB, {self.pids} processes, {self.cpu:g} CPU"


@dataclass(frozen=True)
class Usage:
    memory_peak: int
    cpu_seconds: float
    oom_kills: int


class RunCgroup(Protocol):
    name: str

    def add(self, pids: Iterable[int]) -> None: ...
    def usage(self) -> Usage: ...
    def pids(self) -> list[int]: ...
    def kill(self) -> None: ...
    def remove(self) -> bool: ...


class CgroupDriver(Protocol):
    version: str
    where: str

    def create(self, name: str, limits: CgroupLimits) -> RunCgroup: ...
    def close(self) -> None: ...


def write_value(path: Path, value: str) -> None:
    """Write one value to a cgroup file (one write call, as the kernel wants)."""
    with open(path, "w") as handle:
        handle.write(value)


def read_int(path: Path, default: int = 0) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return default
    return int(text) if text.isdigit() else default


def read_keyed(path: Path) -> dict[str, int]:
    """A cgroup file of `key value` lines (memory.events, cpu.stat...), numbers only."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                values[key] = int(value)
    return values


def _procs(folders: Iterable[Path]) -> list[int]:
    found: set[int] = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
    return sorted(found)


def _kill_until_empty(folders: list[Path]) -> bool:
    """SIGKILL every member; pass again while new members appear (forks between two passes).

    A killed process stays listed until it is reaped: it is not killed twice, and once a pass
    finds nobody new the group can only shrink. True when a pass found nobody listed at all.
    """
    killed: set[int] = set()
    for _ in range(100):
        listed = _procs(folders)
        members = [pid for pid in listed if pid not in killed]
        if not members:
            return not listed
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(members)
    log.warning("processes still appearing in %s after 100 kill passes", folders[0])
    return False


def remove_group_folder(folder: Path, timeout: float = 2.0) -> bool:
    """Remove an emptied group; its last members may take a moment to be reaped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            folder.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("cannot remove cgroup %s: %s", folder, error)
                return False
            os.sched_yield()


def remove_groups_of_gone_runners(parent: Path) -> list[str]:
    """Remove the `workshop-<pid>` groups (and their runs' groups) of runners that are gone.

    A runner killed outright cannot remove its groups; the next one to start beside it
    does. A group whose pid is alive stays (another replica, or a reused pid: harmless).
    Returns the names removed."""
    removed: list[str] = []
    for folder in sorted(parent.glob("workshop-*")) if parent.is_dir() else []:
        pid = folder.name.removeprefix("workshop-")
        if not folder.is_dir() or not pid.isdigit() or int(pid) == os.getpid() or psutil.pid_exists(int(pid)):
            continue
        for child in [c for c in folder.iterdir() if c.is_dir()]:
            _kill_until_empty([child])
            remove_group_folder(child)
        _kill_until_empty([folder])
        if remove_group_folder(folder):
            removed.append(folder.name)
    if removed:
        log.warning("removed the cgroups of %d runner(s) that are gone: %s", len(removed), ", ".join(removed))
    return removed


# -- v2 ------------------------------------------------------------------------------------------


class V2Group:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name

    def add(self, pids: Iterable[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                write_value(self.folder / "cgroup.procs", str(pid))

    def usage(self) -> Usage:
        cpu = read_keyed(self.folder / "cpu.stat").get("usage_usec", 0) / 1e6
        events = read_keyed(self.folder / "memory.events")
        return Usage(read_int(self.folder / "memory.peak"), cpu, events.get("oom_kill", 0))

    def pids(self) -> list[int]:
        return _procs([self.folder])

    def kill(self) -> None:
        try:
            write_value(self.folder / "cgroup.kill", "1")
        except OSError:
            _kill_until_empty([self.folder])

    def remove(self) -> bool:
        self.kill()
        return remove_group_folder(self.folder)


class V2Driver:
    version = "v2"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.where = str(base)

    @classmethod
    def open(cls, own: Path) -> V2Driver:
        """Take over the delegated group `own`: its processes move to a leaf, runs get siblings."""
        available = set((own / "cgroup.controllers").read_text().split())
        lacking = [c for c in CONTROLLERS if c not in available]
        if lacking:
            raise OSError(f"cgroup v2 group {own} is not delegated the {', '.join(lacking)} controller(s)")
        remove_groups_of_gone_runners(own)
        base = own / f"workshop-{os.getpid()}"
        leaf = own / "workshop-supervisor"
        # "no internal processes": enabling controllers for children needs an empty parent
        enabled = set((own / "cgroup.subtree_control").read_text().split())
        if not all(c in enabled for c in CONTROLLERS):
            leaf.mkdir(exist_ok=True)
            for pid in _procs([own]):
                with contextlib.suppress(ProcessLookupError, OSError):
                    write_value(leaf / "cgroup.procs", str(pid))
            write_value(own / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        base.mkdir(exist_ok=True)
        write_value(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        return cls(base)

    def create(self, name: str, limits: CgroupLimits) -> V2Group:
        folder = self.base / name
        folder.mkdir()
        try:
            write_value(folder / "memory.max", str(limits.memory))
            with contextlib.suppress(OSError):
                write_value(folder / "memory.swap.max", "0")
            with contextlib.suppress(OSError):
                write_value(folder / "memory.oom.group", "1")
            write_value(folder / "pids.max", str(limits.pids))
            write_value(folder / "cpu.max", f"{round(limits.cpu * CPU_PERIOD_US)} {CPU_PERIOD_US}")
        except BaseException:
            remove_group_folder(folder)
            raise
        return V2Group(folder)

    def close(self) -> None:
        for child in list(self.base.iterdir()) if self.base.is_dir() else []:
            if child.is_dir():
                V2Group(child).remove()
        remove_group_folder(self.base)


# -- v1 ------------------------------------------------------------------------------------------


class V1Group:
    def __init__(self, name: str, folders: dict[str, Path]) -> None:
        self.name = name
        self.folders = folders
        self._emptied = False
        """Once killed and found empty, a group stays so: nobody is left to fork into it, and only
        the runner adds members (before the run). A sandbox asks for its kill three or four times."""

    def add(self, pids: Iterable[int]) -> None:
        self._emptied = False
        for pid in pids:
            for folder in self.folders.values():
                with contextlib.suppress(ProcessLookupError):
                    write_value(folder / "cgroup.procs", str(pid))

    def usage(self) -> Usage:
        memory = self.folders["memory"]
        cpu = read_int(self.folders["cpuacct"] / "cpuacct.usage") / 1e9 if "cpuacct" in self.folders else 0.0
        oom = read_keyed(memory / "memory.oom_control").get("oom_kill", 0)
        return Usage(read_int(memory / "memory.max_usage_in_bytes"), cpu, oom)

    def pids(self) -> list[int]:
        return _procs(self.folders.values())

    def kill(self) -> None:
        if not self._emptied:
            self._emptied = _kill_until_empty(list(dict.fromkeys(self.folders.values())))

    def remove(self) -> bool:
        self.kill()
        return all([remove_group_folder(folder) for folder in set(self.folders.values())])


class V1Driver:
    version = "v1"

    def __init__(self, bases: dict[str, Path]) -> None:
        self.bases = bases
        self.where = ", ".join(str(p) for p in bases.values())

    @classmethod
    def open(cls, mounts: dict[str, Path], own: dict[str, str]) -> V1Driver:
        bases: dict[str, Path] = {}
        for controller in (*CONTROLLERS, "cpuacct"):
            mount = mounts.get(controller)
            if mount is None:
                if controller == "cpuacct":
                    continue
                raise OSError(f"the cgroup v1 {controller} hierarchy is not mounted")
            parent = mount / own.get(controller, "/").lstrip("/")
            remove_groups_of_gone_runners(parent)
            base = parent / f"workshop-{os.getpid()}"
            base.mkdir(exist_ok=True)
            bases[controller] = base
        with contextlib.suppress(OSError):
            write_value(bases["memory"] / "memory.use_hierarchy", "1")
        return cls(bases)

    def create(self, name: str, limits: CgroupLimits) -> V1Group:
        folders: dict[str, Path] = {}
        try:
            for controller, base in self.bases.items():
                folder = base / name
                if folder not in folders.values():
                    folder.mkdir()
                folders[controller] = folder
            memory = folders["memory"]
            with contextlib.suppress(OSError):  # charges of the warm-up move with the processes
                write_value(memory / "memory.move_charge_at_immigrate", "3")
            write_value(memory / "memory.limit_in_bytes", str(limits.memory))
            with contextlib.suppress(OSError):
                write_value(memory / "memory.memsw.limit_in_bytes", str(limits.memory))
            write_value(folders["pids"] / "pids.max", str(limits.pids))
            write_value(folders["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            write_value(folders["cpu"] / "cpu.cfs_quota_us", str(round(limits.cpu * CPU_PERIOD_US)))
        except BaseException:
            for folder in set(folders.values()):
                remove_group_folder(folder)
            raise
        return V1Group(name, folders)

    def close(self) -> None:
        names = {
            child.name for base in self.bases.values() if base.is_dir() for child in base.iterdir() if child.is_dir()
        }
        for name in names:
            V1Group(name, {c: b / name for c, b in self.bases.items() if (b / name).is_dir()}).remove()
        for base in set(self.bases.values()):
            remove_group_folder(base)


# -- detection -----------------------------------------------------------------------------------


def _mounts(mountinfo: str) -> tuple[Path | None, dict[str, Path]]:
    """The v2 mount (if any) and the v1 mount of each controller, read from /proc/self/mountinfo."""
    unified: Path | None = None
    v1: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        point, fstype, options = Path(fields[4]), after[0], after[2].split(",")
        if "ro" in fields[5].split(","):
            continue
        if fstype == "cgroup2" and unified is None:
            unified = point
        elif fstype == "cgroup":
            for option in options:
                if option in (*CONTROLLERS, "cpuacct"):
                    v1.setdefault(option, point)
    return unified, v1


def _own_groups(self_cgroup: str) -> tuple[str | None, dict[str, str]]:
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in self_cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            unified = path
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return unified, v1


def open_driver() -> tuple[CgroupDriver | None, str]:
    """The best cgroup driver this runner may use, or None and why not."""
    try:
        unified, v1_mounts = _mounts(Path("/proc/self/mountinfo").read_text())
        own_unified, own_v1 = _own_groups(Path("/proc/self/cgroup").read_text())
    except OSError as error:
        return None, f"cannot read the process's cgroups: {error}"
    problems = []
    if unified is not None and own_unified is not None:
        try:
            return V2Driver.open(unified / own_unified.lstrip("/")), ""
        except OSError as error:
            problems.append(f"v2: {error}")
    if v1_mounts:
        try:
            return V1Driver.open(v1_mounts, own_v1), ""
        except OSError as error:
            problems.append(f"v1: {error}")
    return None, "; ".join(problems) or "no cgroup hierarchy is mounted"
