"""Attacks on the file system: writing where it must not, filling space, leaving things behind, symlinks."""

from __future__ import annotations

import contextlib
import json
import shutil
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from runner.isolation import BubblewrapLauncher
from runner.postgres import EmbeddedCluster
from runner.settings import CODE_DIR, REPO_ROOT

from ..conftest import LiveRunner, output_text
from .support import (
    admin_password,
    assert_next_run_is_pristine,
    attack,
    expect_contained,
    launcher_lacks,
    lines_starting,
    new_marker,
)

FILL_CAP_MIB = 256
"""How much an attack writes at most into one place: four times the sandbox's 64 MiB /tmp."""


def cluster(live_runner: LiveRunner) -> EmbeddedCluster:
    server = live_runner.runtime.server
    assert isinstance(server, EmbeddedCluster)
    return server


@contextlib.contextmanager
def removing(paths: Iterable[Path]) -> Iterator[list[Path]]:
    """Whatever the attack managed to create on the host, it is removed afterwards (and reported)."""
    candidates = list(paths)
    try:
        yield candidates
    finally:
        for path in candidates:
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def escaped(paths: Iterable[Path]) -> list[str]:
    return [str(path) for path in paths if path.exists() or path.is_symlink()]


def writable_targets(live_runner: LiveRunner) -> list[Path]:
    server = cluster(live_runner)
    return [
        CODE_DIR,
        CODE_DIR / "chapter_05",
        REPO_ROOT / "runner",
        REPO_ROOT,
        Path(sysconfig.get_paths()["purelib"]),  # a sitecustomize.py here would run in every later sandbox
        Path("/etc"),
        Path("/usr/local/lib"),
        Path.home(),
        live_runner.settings.cache_dir,
        server.socket_dir,
        Path("/"),
    ]


def test_writing_outside_tmp_is_refused(live_runner: LiveRunner) -> None:
    marker = new_marker()
    targets = writable_targets(live_runner)
    code = f"""
import os
for folder in {[str(t) for t in targets]!r}:
    path = os.path.join(folder, "{marker}")
    try:
        with open(path, "x") as file:
            file.write("escaped")
        print("WROTE", path)
    except OSError as error:
        print("refused", path, error.strerror)
for path in ({str(CODE_DIR / "utils.py")!r}, {str(REPO_ROOT / "runner" / "child.py")!r}):
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # opened for writing, nothing written
        print("WROTE", path, "(could open it for writing)")
    except OSError as error:
        print("refused", path, error.strerror)
"""
    with removing(target / marker for target in targets) as planted:
        text = output_text(attack(live_runner, code))
        reached_host = escaped(planted)
    assert len(lines_starting(text, "refused")) + len(lines_starting(text, "WROTE")) == len(targets) + 2, text
    expect_contained(
        live_runner,
        not reached_host,
        ("mount-namespace", "unprivileged-uid"),
        f"the sample wrote on the host: {reached_host}",
    )
    # the test cache may live under /tmp: inside a sandbox that is its own private /tmp, where writing is fine
    written = [line.split()[1] for line in lines_starting(text, "WROTE") if not line.split()[1].startswith("/tmp/")]
    expect_contained(
        live_runner,
        not written,
        ("mount-namespace", "unprivileged-uid"),
        f"writes outside /tmp were not refused (they stayed inside the sandbox, but the file system is writable "
        f"and not size-capped there): {written}",
    )
    assert_next_run_is_pristine(live_runner)


FILL = """
import errno, os
def fill(folder, prefix, cap_mib):
    '''Write 16 MiB files (the file-size limit) into `folder` until refused or `cap_mib` is reached.'''
    chunk, written = b"x" * (1 << 20), 0
    try:
        for index in range(cap_mib // 16):
            with open(os.path.join(folder, f"{prefix}-{index}"), "wb", buffering=0) as file:
                for _ in range(16):
                    written += file.write(chunk) or 0
    except OSError as error:
        return written, errno.errorcode.get(error.errno, str(error.errno))
    return written, "no-limit"
"""


def fill_report(text: str) -> dict[str, tuple[int, str]]:
    report = {}
    for line in lines_starting(text, "filled"):
        _, folder, written, reason = line.split()
        report[folder] = (int(written), reason)
    return report


def test_filling_tmp_is_bounded_and_the_next_run_sees_an_empty_tmp(live_runner: LiveRunner) -> None:
    if launcher_lacks(live_runner, "mount-namespace"):
        pytest.xfail("the plain launcher shares the host's /tmp: filling it would fill the host's disk")
    marker = new_marker()
    code = (
        FILL
        + f"""
written, reason = fill("/tmp", "{marker}", {FILL_CAP_MIB})
print("filled", "/tmp", written, reason)
"""
    )
    summary = attack(live_runner, code)
    written, reason = fill_report(output_text(summary))["/tmp"]
    assert reason in {"ENOSPC", "EDQUOT"}, f"filling /tmp ended with {reason} after {written >> 20} MiB"
    assert written < FILL_CAP_MIB << 20
    listing = output_text(attack(live_runner, LIST_TMP))
    assert leftovers_in_tmp(live_runner, listing) == [], listing
    assert_next_run_is_pristine(live_runner)


def test_filling_other_writable_places_is_bounded(live_runner: LiveRunner) -> None:
    """The root of the sandbox and /dev are memory-backed too: if writable, they must be capped like /tmp."""
    if launcher_lacks(live_runner, "mount-namespace"):
        pytest.xfail("the plain launcher writes on the host's file systems: filling them would fill the host")
    marker = new_marker()
    places = ["/", "/dev/shm", "/dev", str(Path.home())]
    code = (
        FILL
        + f"""
for folder in {places!r}:
    written, reason = fill(folder, "{marker}", {FILL_CAP_MIB})
    print("filled", folder, written, reason)
    for name in os.listdir(folder):
        if name.startswith("{marker}"):
            os.unlink(os.path.join(folder, name))
"""
    )
    summary = attack(live_runner, code)
    report = fill_report(output_text(summary))
    assert set(report) == set(places), output_text(summary)
    unbounded = {folder: f"{written >> 20} MiB" for folder, (written, reason) in report.items() if reason == "no-limit"}
    expect_contained(
        live_runner,
        not unbounded,
        "read-only-system",
        f"the sample wrote {FILL_CAP_MIB} MiB into each of these without meeting any limit: {unbounded}",
    )
    assert_next_run_is_pristine(live_runner)


def test_a_file_beyond_the_size_limit_is_refused(live_runner: LiveRunner) -> None:
    code = (
        FILL
        + """
written, reason = 0, "no-limit"
try:
    with open("big", "wb", buffering=0) as file:
        for _ in range(32):
            written += file.write(b"x" * (1 << 20)) or 0
except OSError as error:
    reason = errno.errorcode.get(error.errno, str(error.errno))
print("filled", "big", written, reason)
os.unlink("big")
"""
    )
    written, reason = fill_report(output_text(attack(live_runner, code)))["big"]
    assert (written, reason) == (16 << 20, "EFBIG")
    assert_next_run_is_pristine(live_runner)


BOUND = [str(path) for path in BubblewrapLauncher.readable_paths()]
"""Read-only folders bound into the sandbox; when the repository lives under /tmp, they appear there."""

LIST_TMP = f"""
import json, os
bound = {BOUND!r}
for folder, subfolders, files in os.walk("/tmp"):
    subfolders[:] = [name for name in subfolders if os.path.join(folder, name) not in bound]
    for name in subfolders + files:
        print("ENTRY", json.dumps(os.path.join(folder, name)))
print("listed")
"""


def leftovers_in_tmp(live_runner: LiveRunner, listing: str) -> list[str]:
    """Entries of a sandbox's /tmp, except the read-only folders bound in (and the folders leading to them)."""
    assert "listed" in listing, listing
    allowed = {entry for path in BOUND for entry in (path, *(str(p) for p in Path(path).parents))}
    entries = [json.loads(line.split(" ", 1)[1]) for line in lines_starting(listing, "ENTRY")]
    return [entry for entry in entries if entry not in allowed]


def test_files_left_in_tmp_are_not_visible_to_the_next_run(live_runner: LiveRunner) -> None:
    marker = new_marker()
    places = ["/tmp", "/dev/shm", "."]
    leave = f"""
import os
for folder in {places!r}:
    path = os.path.abspath(os.path.join(folder, "{marker}"))
    try:
        with open(path, "w") as file:
            file.write("left behind")
        print("LEFT", path)
    except OSError as error:
        print("refused", path, error.strerror)
"""
    host_paths = [Path(tempfile.gettempdir()) / marker, Path("/tmp") / marker, Path("/dev/shm") / marker]
    with removing(host_paths):
        left = [line.split()[1] for line in lines_starting(output_text(attack(live_runner, leave)), "LEFT")]
        assert left, "the sample could not even write its own /tmp"
        look = (
            f"""
import os
for path in {left!r}:
    print("SEEN" if os.path.exists(path) else "gone", path)
"""
            + LIST_TMP
        )
        listing = output_text(attack(live_runner, look))
    seen = lines_starting(listing, "SEEN")
    expect_contained(
        live_runner, not seen, ("mount-namespace", "private-tmp"), f"the next run saw the files left: {seen}"
    )
    others = [entry for entry in leftovers_in_tmp(live_runner, listing) if marker in entry]
    assert others == [], others
    assert_next_run_is_pristine(live_runner)


def test_writing_through_a_symlink_to_proc_1_root(live_runner: LiveRunner) -> None:
    marker = new_marker()
    targets = [Path("/tmp") / marker, REPO_ROOT / "runner" / f"{marker}.py", Path("/etc") / marker, Path("/") / marker]
    code = f"""
import os
os.symlink("/proc/1/root", "/tmp/{marker}-root")
for target in {[str(t) for t in targets]!r}:
    path = "/tmp/{marker}-root" + target
    try:
        with open(path, "x") as file:
            file.write("escaped")
        print("WROTE", target)
    except OSError as error:
        print("refused", target, error.strerror)
try:
    print("READ", open("/tmp/{marker}-root" + {str(cluster(live_runner).password_path)!r}).read())
except OSError as error:
    print("refused", "password", error.strerror)
"""
    host_paths = [*targets, Path("/tmp") / f"{marker}-root"]
    with removing(host_paths) as planted:
        text = output_text(attack(live_runner, code))
        reached_host = escaped(planted[:-1])
    assert len(text.splitlines()) == len(targets) + 1, text
    expect_contained(
        live_runner,
        admin_password(live_runner) not in text,
        "mount-namespace",
        "the sample read the admin password through /proc/1/root",
    )
    expect_contained(
        live_runner,
        not reached_host,
        "mount-namespace",
        f"the sample wrote on the host through /proc/1/root: {reached_host}",
    )
    assert_next_run_is_pristine(live_runner)


def test_writing_through_a_symlink_to_the_runners_code(live_runner: LiveRunner) -> None:
    marker = new_marker()
    planted = REPO_ROOT / "runner" / f"{marker}.py"
    code = f"""
import os
os.symlink({str(REPO_ROOT / "runner")!r}, "/tmp/{marker}")
try:
    with open("/tmp/{marker}/{marker}.py", "x") as file:
        file.write("print('planted')")
    print("WROTE")
except OSError as error:
    print("refused", error.strerror)
try:
    os.close(os.open("/tmp/{marker}/child.py", os.O_WRONLY | os.O_APPEND))
    print("WROTE (could open child.py for writing)")
except OSError as error:
    print("refused", error.strerror)
"""
    with removing([planted, Path("/tmp") / marker]):
        text = output_text(attack(live_runner, code))
        reached_host = escaped([planted])
    assert len(text.splitlines()) == 2, text
    expect_contained(
        live_runner,
        not reached_host and "WROTE" not in text,
        ("mount-namespace", "unprivileged-uid"),
        f"the sample wrote into runner/ through a symlink: {text!r}",
    )
    assert_next_run_is_pristine(live_runner)


def test_reading_the_admin_password_through_a_symlink(live_runner: LiveRunner) -> None:
    marker = new_marker()
    password_path = cluster(live_runner).password_path
    code = f"""
import os
os.symlink({str(password_path)!r}, "/tmp/{marker}")
try:
    print("READ", open("/tmp/{marker}").read())
except OSError as error:
    print("refused", error.strerror)
"""
    with removing([Path("/tmp") / marker]):
        text = output_text(attack(live_runner, code))
    assert lines_starting(text, "READ") or lines_starting(text, "refused"), text
    expect_contained(
        live_runner,
        admin_password(live_runner) not in text,
        "mount-namespace",
        "the sample read the admin password through a symlink",
    )
    assert_next_run_is_pristine(live_runner)
