"""Attacks on the runner's secrets: its environment, memory, files, and the admin password above all."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runner.postgres import EmbeddedCluster
from runner.settings import REPO_ROOT

from ..conftest import LiveRunner, output_text
from .support import (
    admin_password,
    assert_next_run_is_pristine,
    attack,
    expect_contained,
    lines_starting,
    secret_finder,
)


def cluster(live_runner: LiveRunner) -> EmbeddedCluster:
    server = live_runner.runtime.server
    assert isinstance(server, EmbeddedCluster), "the hostile suite runs against the embedded cluster"
    return server


def on_the_way_to_the_socket(live_runner: LiveRunner) -> set[str]:
    """Names a sandbox may see in the cluster's folders: the socket folder (bound in) and its parents."""
    socket_dir = Path(cluster(live_runner).socket_dir)
    return {socket_dir.name} | {parent.name for parent in socket_dir.parents}


def test_reading_the_runners_environment(live_runner: LiveRunner) -> None:
    runner_pid = os.getpid()  # the live runner serves from this very process
    postgres_pid = cluster(live_runner).pid
    code = f"""
for path in ("/proc/1/environ", "/proc/{runner_pid}/environ", "/proc/{runner_pid}/cmdline",
             "/proc/{postgres_pid}/environ", "/proc/{postgres_pid}/cmdline"):
    try:
        with open(path, "rb") as file:
            data = file.read()
        print("READ", path, data[:3000])
    except OSError as error:
        print("refused", path, error.strerror)
"""
    text = output_text(attack(live_runner, code))
    assert admin_password(live_runner) not in text
    assert len(lines_starting(text, "READ")) + len(lines_starting(text, "refused")) == 5, text
    read = [line.split()[1] for line in lines_starting(text, "READ")]
    outside = [path for path in read if path != "/proc/1/environ"]
    expect_contained(
        live_runner,
        not outside,
        "pid-namespace",
        f"the sample read the runner's and Postgres's process files: {outside}",
    )
    assert_next_run_is_pristine(live_runner)


def test_reading_the_admin_password_file(live_runner: LiveRunner) -> None:
    password_path = cluster(live_runner).password_path
    assert password_path.exists()
    code = f"""
import json, os
path = {str(password_path)!r}
try:
    print("READ", open(path).read())
except OSError as error:
    print("refused", error.strerror)
try:
    print("LISTED", json.dumps(sorted(os.listdir(os.path.dirname(path)))))
except OSError as error:
    print("refused listing", error.strerror)
"""
    text = output_text(attack(live_runner, code))
    expect_contained(
        live_runner,
        admin_password(live_runner) not in text,
        "mount-namespace",
        f"the sample read the admin password from {password_path}",
    )
    assert lines_starting(text, "refused") or lines_starting(text, "LISTED"), text
    listed = [json.loads(line.split(" ", 1)[1]) for line in lines_starting(text, "LISTED")]
    revealed = [name for names in listed for name in names if name not in on_the_way_to_the_socket(live_runner)]
    expect_contained(
        live_runner, not revealed, "mount-namespace", f"the sample listed the cluster's folder: {revealed}"
    )
    assert_next_run_is_pristine(live_runner)


def test_reading_the_postgres_data_directory_and_log(live_runner: LiveRunner) -> None:
    server = cluster(live_runner)
    code = f"""
import json, os
data = {str(server.data_dir)!r}
for path in (data, os.path.join(data, "global"), {str(server.root)!r}):
    try:
        print("LISTED", path, json.dumps(sorted(os.listdir(path))[:8]))
    except OSError as error:
        print("refused", path, error.strerror)
for name in ("PG_VERSION", "postgresql.auto.conf", "pg_hba.conf", "global/1260", "global/pg_control"):
    path = os.path.join(data, name)
    try:
        print("READ", path, len(open(path, "rb").read()), "bytes")
    except OSError as error:
        print("refused", path, error.strerror)
try:
    print("READ", {str(server.log_path)!r}, len(open({str(server.log_path)!r}, "rb").read()), "bytes")
except OSError as error:
    print("refused", "log", error.strerror)
"""
    text = output_text(attack(live_runner, code))
    assert len(text.splitlines()) == 9, text
    breaches = lines_starting(text, "READ")
    for line in lines_starting(text, "LISTED"):  # the socket's bind mount brings the folders above it along
        _, path, names = line.split(" ", 2)
        breaches += [
            f"{path}/{name}" for name in json.loads(names) if name not in on_the_way_to_the_socket(live_runner)
        ]
    expect_contained(
        live_runner, not breaches, "mount-namespace", f"the sample reached the cluster's files: {breaches}"
    )
    assert_next_run_is_pristine(live_runner)


def test_reading_the_runners_memory(live_runner: LiveRunner) -> None:
    code = (
        secret_finder(live_runner)
        + f"""
pid = {os.getpid()}
try:
    maps = open(f"/proc/{{pid}}/maps").read()
    memory = open(f"/proc/{{pid}}/mem", "rb", buffering=0)
except OSError as error:
    print("refused", error.strerror)
else:
    scanned = 0
    for line in maps.splitlines():
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        if not perms.startswith("r") or end - start > 128 << 20:
            continue
        try:
            memory.seek(start)
            chunk = memory.read(end - start)
        except (OSError, OverflowError, MemoryError):
            continue
        scanned += len(chunk)
        if holds_secret(chunk):
            print("FOUND the admin password in the runner's memory")
            break
    print("scanned", scanned, "bytes")
"""
    )
    text = output_text(attack(live_runner, code))
    assert admin_password(live_runner) not in text
    assert lines_starting(text, "refused") or lines_starting(text, "scanned"), text
    expect_contained(
        live_runner, "FOUND" not in text, "pid-namespace", "the sample found the admin password in the runner's memory"
    )
    assert_next_run_is_pristine(live_runner)


def test_signalling_the_runner_and_postgres(live_runner: LiveRunner) -> None:
    """Signal 0 asks "may I signal it?" without sending anything."""
    code = f"""
import os
for label, pid in (("runner", {os.getpid()}), ("postgres", {cluster(live_runner).pid})):
    try:
        os.kill(pid, 0)
        print("CAN SIGNAL", label)
    except OSError as error:
        print("refused", label, error.strerror)
"""
    text = output_text(attack(live_runner, code))
    assert len(text.splitlines()) == 2, text
    breaches = lines_starting(text, "CAN SIGNAL")
    expect_contained(
        live_runner, not breaches, ("pid-namespace", "unprivileged-uid"), f"the sample may signal: {breaches}"
    )
    assert_next_run_is_pristine(live_runner)


def test_the_admin_password_is_nowhere_the_sample_can_look(live_runner: LiveRunner) -> None:
    """Its environment, its argv, every process's environ and cmdline, and the files it can read."""
    server = cluster(live_runner)
    roots = [
        str(server.root),
        str(live_runner.settings.cache_dir),
        "/tmp",
        "/etc",
        str(REPO_ROOT),
        "/run",
        "/var",
        "/home",
        "/opt",
        "/srv",
        "/root",
    ]  # the most likely places first: the sweep has 7 s
    code = (
        secret_finder(live_runner)
        + f"""
import os, sys, time
found = []
def check(label, data):
    if holds_secret(data):
        found.append(label)
check("os.environ", "\\0".join(f"{{k}}={{v}}" for k, v in os.environ.items()).encode())
check("sys.argv", "\\0".join(sys.argv).encode())
check("sys.orig_argv", "\\0".join(sys.orig_argv).encode())
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    for part in ("environ", "cmdline"):
        try:
            with open(f"/proc/{{pid}}/{{part}}", "rb") as file:
                check(f"/proc/{{pid}}/{{part}}", file.read())
        except OSError:
            pass
swept, deadline = 0, time.monotonic() + 7
SKIP = {{".venv", ".git", "site", "node_modules", "__pycache__", "proc", "sys"}}
for root in {roots!r}:
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in SKIP]
        if time.monotonic() > deadline:
            break
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as file:
                    data = file.read(1 << 20)
            except OSError:
                continue
            swept += 1
            check(path, data)
print("swept", swept, "files;", "cut short" if time.monotonic() > deadline else "complete")
for label in found:
    print("FOUND in", label)
"""
    )
    text = output_text(attack(live_runner, code))
    assert admin_password(live_runner) not in text
    assert lines_starting(text, "swept"), text
    found = [line.removeprefix("FOUND in ") for line in lines_starting(text, "FOUND in")]
    in_process = [label for label in found if label in {"os.environ", "sys.argv", "sys.orig_argv"}]
    assert in_process == [], f"the admin password reached the sample's own process: {in_process}"
    expect_contained(
        live_runner,
        not found,
        ("mount-namespace", "pid-namespace"),
        f"the admin password is readable from inside the sandbox: {found}",
    )
    assert_next_run_is_pristine(live_runner)
