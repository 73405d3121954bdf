"""Attacks on the kernel's surface: the system calls the sandbox's filter refuses, and those it must not.

The probe calls each refused system call by number through libc's `syscall()`,
with arguments the kernel itself would reject in another way (a bad address, bad
flags) wherever its argument checks come before its privilege checks, so a run
without the filter answers differently and the test can tell the two apart.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pyseccomp

from runner.isolation import CHILD_ARGV, BubblewrapLauncher, scrubbed_env
from runner.seccomp import build

from ..conftest import LiveRunner, output_text
from .support import assert_next_run_is_pristine, attack, expect_contained, lines_starting, stdout_of

BAD = 1
"""An address no process maps: the kernel answers EFAULT once it reads through it."""
CLONE_FS, CLONE_NEWNS, CLONE_NEWUSER = 0x200, 0x20000, 0x10000000
"""A namespace flag with CLONE_FS is invalid, so an unfiltered clone fails (EINVAL) rather than forking."""
KEY_SPEC_PROCESS_KEYRING = -2
ADDR_NO_RANDOMIZE = 0x0040000
AF_VSOCK, AF_ALG, AF_PACKET = 40, 38, 17

# (label, system call, arguments, the answer with the filter)
PROBES: list[tuple[str, str, tuple[int | str, ...], str]] = [
    ("io_uring_setup", "io_uring_setup", (1, 0), "EPERM"),
    ("io_uring_enter", "io_uring_enter", (-1, 0, 0, 0, 0, 0), "EPERM"),
    ("io_uring_register", "io_uring_register", (-1, 0, 0, 0), "EPERM"),
    ("add_key", "add_key", ("user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING), "EPERM"),
    ("keyctl", "keyctl", (0, KEY_SPEC_PROCESS_KEYRING, 1), "EPERM"),  # KEYCTL_GET_KEYRING_ID, create
    ("request_key", "request_key", ("user", "probe", 0, 0), "EPERM"),
    ("bpf", "bpf", (999, 0, 0), "EPERM"),
    ("perf_event_open", "perf_event_open", (BAD, 0, -1, -1, 0), "EPERM"),
    ("userfaultfd", "userfaultfd", (1,), "EPERM"),  # UFFD_USER_MODE_ONLY: allowed to anyone unfiltered
    ("personality", "personality", (ADDR_NO_RANDOMIZE,), "EPERM"),
    ("personality-query", "personality", (0xFFFFFFFF,), "returned-0"),
    ("unshare", "unshare", (CLONE_NEWUSER,), "EPERM"),
    ("setns", "setns", (-1, 0), "EPERM"),
    ("clone-newuser", "clone", (CLONE_NEWUSER | CLONE_FS, 0, 0, 0, 0), "EPERM"),
    ("clone-newns", "clone", (CLONE_NEWNS | CLONE_FS, 0, 0, 0, 0), "EPERM"),
    ("clone3", "clone3", (0, 0), "ENOSYS"),
    ("mount", "mount", ("none", BAD, "tmpfs", 0, 0), "EPERM"),
    ("umount2", "umount2", ("/tmp", 0xFFFFFFFF), "EPERM"),
    ("pivot_root", "pivot_root", (BAD, BAD), "EPERM"),
    ("move_mount", "move_mount", (-1, BAD, -1, BAD, 0xFFFFFFFF), "EPERM"),
    ("open_tree", "open_tree", (-1, BAD, 0xFFFFFFFF), "EPERM"),
    ("fsopen", "fsopen", (BAD, 0xFFFFFFFF), "EPERM"),
    ("fsmount", "fsmount", (-1, 0xFFFFFFFF, 0), "EPERM"),
    ("fspick", "fspick", (-1, BAD, 0xFFFFFFFF), "EPERM"),
    ("mount_setattr", "mount_setattr", (-1, BAD, 0xFFFFFFFF, BAD, 0), "EPERM"),
    ("open_by_handle_at", "open_by_handle_at", (-1, BAD, 0), "EPERM"),
    ("name_to_handle_at", "name_to_handle_at", (-100, "/", BAD, BAD, 0), "EPERM"),  # AT_FDCWD
    ("init_module", "init_module", (BAD, 0, BAD), "EPERM"),
    ("finit_module", "finit_module", (-1, BAD, 0), "EPERM"),
    ("delete_module", "delete_module", (BAD, 0), "EPERM"),
    ("kexec_load", "kexec_load", (0, 1000, BAD, 0), "EPERM"),
    ("kexec_file_load", "kexec_file_load", (-1, -1, 0, BAD, 0xFFFF), "EPERM"),
    ("process_vm_readv", "process_vm_readv", (0, BAD, 1, BAD, 1, 0xFFFF), "EPERM"),
    ("kcmp", "kcmp", (0, 0, 0xFFFF, 0, 0), "EPERM"),
    ("pidfd_getfd", "pidfd_getfd", (-1, 0, 0), "EPERM"),
    ("set_mempolicy", "set_mempolicy", (0, 0, 0), "EPERM"),
    ("chroot", "chroot", (BAD,), "EPERM"),
    ("settimeofday", "settimeofday", (BAD, BAD), "EPERM"),
    ("swapon", "swapon", (BAD, 0), "EPERM"),
    ("reboot", "reboot", (0, 0, 0, 0), "EPERM"),
    ("syslog", "syslog", (10, 0, 0), "EPERM"),
    ("sethostname", "sethostname", (BAD, 1000), "EPERM"),
    ("acct", "acct", (BAD,), "EPERM"),
    ("modify_ldt", "modify_ldt", (0, BAD, 0), "EPERM"),  # x86 only
    ("iopl", "iopl", (3,), "EPERM"),  # x86 only
    ("socket-alg", "socket", (AF_ALG, 5, 0), "EAFNOSUPPORT"),
    ("socket-vsock", "socket", (AF_VSOCK, 1, 0), "EAFNOSUPPORT"),
    ("socket-packet", "socket", (AF_PACKET, 3, 0), "EAFNOSUPPORT"),
]
SEEN_BY_THE_KERNEL = {
    "add_key",
    "keyctl",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "ptrace",
    "personality",
    "setns",
    "clone-newuser",
    "clone3",
    "mount",
    "umount2",
    "open_tree",
    "open_by_handle_at",
    "name_to_handle_at",
    "process_vm_readv",
    "chroot",
}
"""Calls whose arguments the kernel checks before any privilege: unfiltered, they answer otherwise."""

PROBE = """
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for label, number, args in json.loads({probes!r}):
    values = [ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a) for a in args]
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *values)
    code = ctypes.get_errno()
    print(label, errno.errorcode.get(code, code) if result == -1 else f"returned-{{result}}", flush=True)
print("probed", flush=True)
"""


def native_probes() -> tuple[str, dict[str, str]]:
    """The probe sample for this machine's system-call numbers, and the answer expected for each label."""
    calls: list[tuple[str, int, tuple[int | str, ...]]] = []
    expected: dict[str, str] = {}
    for label, name, args, answer in [*PROBES, ("ptrace", "ptrace", (0, 0, 0, 0), "EPERM")]:  # TRACEME, last
        number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
        if number < 0:
            continue  # not a call of this architecture (modify_ldt, iopl on aarch64)
        calls.append((label, number, args))
        expected[label] = answer
    if platform.machine() == "x86_64":
        calls.append(("x32-getpid", 0x40000000 | 39, ()))  # the x32 ABI: another architecture for the filter
        expected["x32-getpid"] = "EPERM"
    if "mseal" in build().policy.unnamed:
        calls.append(("mseal", 462, (0, 0, 0)))  # younger than this libseccomp: ENOSYS, as on an older kernel
        expected["mseal"] = "ENOSYS"
    return PROBE.format(probes=json.dumps(calls)), expected


def answers(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def test_each_refused_system_call_fails_with_its_error_and_the_run_goes_on(live_runner: LiveRunner) -> None:
    code, expected = native_probes()
    summary = attack(live_runner, code)
    text = stdout_of(summary)
    assert (summary["status"], summary["exit_code"]) == ("ok", 0), output_text(summary)
    assert text.endswith("probed\n"), output_text(summary)
    got = answers(text)
    wrong = {label: got.get(label) for label, answer in expected.items() if got.get(label) != answer}
    expect_contained(
        live_runner, not wrong, "seccomp", f"calls not refused as expected (label: answer): {wrong}; all: {got}"
    )
    assert_next_run_is_pristine(live_runner)


def test_unfiltered_the_kernel_would_have_answered_those_calls() -> None:
    """The same probe in a bare bubblewrap sandbox without the filter: what the filter takes away."""
    code, expected = native_probes()
    launcher = BubblewrapLauncher(seccomp=False)
    launcher.prepare_host()
    result = subprocess.run(
        [*launcher.bwrap_argv(), *CHILD_ARGV[:-2], "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=scrubbed_env(3),
        cwd="/",
        **launcher.process_options(),
    )
    assert result.returncode == 0 and result.stdout.endswith("probed\n"), result.stderr[-2000:]
    got = answers(result.stdout)
    same = {label: got[label] for label in SEEN_BY_THE_KERNEL if got.get(label) == expected[label]}
    assert not same, f"without the filter these calls still answered as with it, so the probe proves nothing: {same}"
    print("unfiltered:", json.dumps(got), file=sys.stderr)


def test_a_refused_call_reads_as_such(live_runner: LiveRunner) -> None:
    # unfiltered, chroot looks the path up before it checks privileges: FileNotFoundError
    summary = attack(live_runner, "import os\nos.chroot('/no-such-dir')\n")
    text = output_text(summary)
    assert summary["status"] == "error", summary
    refused = "PermissionError: [Errno 1] Operation not permitted: '/no-such-dir'" in text
    expect_contained(live_runner, refused, "seccomp", f"chroot was not refused by the filter: {text}")
    assert "note: the sandbox refuses system calls" in text, text


ORDINARY = """
import asyncio, os, selectors, socket, subprocess, sys, tempfile, threading, time
import asyncpg

status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("seccomp mode", status["Seccomp"].strip(), "filters", status.get("Seccomp_filters", "?").strip())

seen = []
thread = threading.Thread(target=lambda: seen.append(threading.get_ident()))
thread.start()
thread.join()
print("thread", len(seen))

left, right = socket.socketpair()
selector = selectors.DefaultSelector()
selector.register(right, selectors.EVENT_READ)
left.send(b"ping")
print("selector", [key.fileobj.recv(4) for key, _ in selector.select(timeout=5)])

began = time.monotonic()
time.sleep(0.01)
print("time", time.monotonic() - began >= 0.01, time.time() > 1.7e9)

with tempfile.NamedTemporaryFile("w+") as handle:
    handle.write("kept")
    handle.flush()
    print("tempfile", open(handle.name).read())

print("subprocess", subprocess.run([sys.executable, "-c", "print(2)"], capture_output=True, text=True).stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))


async def main():
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(1)", stdout=asyncio.subprocess.PIPE)
    print("asyncio subprocess", (await child.communicate())[0].decode().strip(), await child.wait())
    print("to_thread", await asyncio.to_thread(lambda: "done"))

    async def echo(reader, writer):
        writer.write(await reader.read(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    print("loopback", await reader.read(5))
    writer.close()
    server.close()
    await server.wait_closed()

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password")
    print("asyncpg", await conn.fetchval("SELECT count(*) FROM product"))
    await conn.close()
    pool = await asyncpg.create_pool(min_size=2, max_size=2)
    print("pool", sorted(await asyncio.gather(*(pool.fetchval("SELECT $1::int", n) for n in range(3)))))
    await pool.close()


asyncio.run(main())
"""


def test_ordinary_asyncio_still_works_under_the_filter(live_runner: LiveRunner) -> None:
    summary = attack(live_runner, ORDINARY)
    text = output_text(summary)
    assert (summary["status"], summary["exit_code"]) == ("ok", 0), text
    lines = {line.split(" ", 1)[0]: line for line in text.splitlines()}
    if "seccomp" in live_runner.runtime.launcher.layers:
        assert lines["seccomp"].startswith("seccomp mode 2 filters "), text
        assert lines["seccomp"].split()[-1] != "0", text
    assert lines["thread"] == "thread 1"
    assert lines["selector"] == "selector [b'ping']"
    assert lines["time"] == "time True True"
    assert lines["tempfile"] == "tempfile kept"
    assert lines["subprocess"] == "subprocess 2"
    assert lines["fork"] == "fork 7"
    assert lines["asyncio"] == "asyncio subprocess 1 0"
    assert lines["to_thread"] == "to_thread done"
    assert lines["loopback"] == "loopback b'hello'"
    assert int(lines["asyncpg"].split()[1]) > 0, text
    assert lines["pool"] == "pool [0, 1, 2]"
    assert lines_starting(text, "Traceback") == []
