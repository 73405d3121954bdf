"""The fork server: one interpreter with asyncpg imported that forks each sandbox's child.

A cold sandbox costs an interpreter start and `import asyncpg` (about 90 ms of CPU
here); a fork of an interpreter that has done both costs a few. Every isolation
layer is still made fresh for each child, after the fork and before any of a
sample's code exists: new mount, PID, IPC, UTS and network namespaces, a root of
read-only binds with a private /tmp and /dev/shm of their own, the unprivileged
uid, a new session, no new privileges and the system-call filter. The runner then
puts the child's processes into the run's control group, as for any sandbox.

This program holds nothing secret: it is started with the scrubbed environment, it
never sees a database credential (a job arrives on the child's stdin, after the
fork), and the one thing it reads at start is its configuration (what to bind,
which uid, the filter's BPF program).

Protocol, over a SOCK_SEQPACKET socket: the runner sends `spawn` with five
descriptors (the child's stdin, stdout, stderr, events and gate); the server
answers `{"spawned": pid}`, later `{"exited": pid, "status": code}` (the code as
`subprocess` gives it: negative for a signal). The server exits when the runner's
end closes, killing what it started.

Process tree of one sandbox: the server's child I, cloned straight into new
namespaces (PID 1 of the new PID namespace: it builds the root, drops to the
unprivileged uid, loads the filter and reaps orphans), and I's child S (PID 2: the
runner's child program). As with bubblewrap, S's exit code comes out of I, 128 +
the signal when S was killed by one.

Why clone(2) and not fork then unshare: unshare(CLONE_NEWPID) only moves the
caller's later children, so an extra process would have to fork PID 1 and wait for
it. Each process of this tree is a copy of an interpreter with asyncpg imported;
copying, faulting in and tearing down one more of them cost about 2.7 ms of CPU per
run at saturation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import gc
import importlib.util
import json
import os
import platform
import resource  # noqa: F401
import select
import signal
import socket
import struct
import sys
import types
from typing import Any

# warm-up: what every sandbox's child imports, done once here (the standard library's `resource` too)
import asyncpg

import runner.gate
import runner.lesson
import runner.queries
import runner.round_trip

# the lesson's utilities: public code of the repository; a child imports them again if they changed since.
# A broken utils.py is left to fail each run readably, in its own child.
with contextlib.suppress(Exception):
    runner.lesson.preload_lesson_utilities()

CHILD_SPEC = importlib.util.find_spec("runner.child")
assert CHILD_SPEC is not None and CHILD_SPEC.loader is not None and CHILD_SPEC.origin is not None
CHILD_CODE = CHILD_SPEC.loader.get_code("runner.child")  # type: ignore[attr-defined]
CHILD_ORIGIN: str = CHILD_SPEC.origin
"""The child program, compiled once here (the sandbox cannot write bytecode next to it)."""

CONFIG_ENV = "WORKSHOP_ZYGOTE_CONFIG"
CHILD_FDS = 5
"""stdin, stdout, stderr, events (3) and gate (4) of each child, in that order."""
EVENTS_FD, GATE_FD = 3, 4

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000,
    0x04000000,
    0x08000000,
    0x20000000,
    0x40000000,
)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 4, 38, 22, 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_CLONE = {"x86_64": 56, "aarch64": 220}
NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

libc = ctypes.CDLL(None, use_errno=True)
held = ctypes.PyDLL(None, use_errno=True)
"""The same C library, called with the GIL held (as os.fork calls fork(2))."""
held.syscall.restype = ctypes.c_long
for _hook in ("PyOS_BeforeFork", "PyOS_AfterFork_Child", "PyOS_AfterFork_Parent"):
    getattr(ctypes.pythonapi, _hook).restype = None  # void functions


class SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def fork_into_namespaces(flags: int) -> int:
    """fork(2) into new namespaces: clone(2) with their flags and no new stack, wrapped as os.fork wraps fork.

    The interpreter's own preparation and repair around a fork (its locks, its threads'
    state, the at-fork hooks) are the C API's, called as os.fork calls them. Returns 0 in
    the child, which is PID 1 of its new PID namespace."""
    pythonapi = ctypes.pythonapi
    pythonapi.PyOS_BeforeFork()
    null = ctypes.c_void_p(None)  # no new stack, no thread-id pointers, no TLS: fork's semantics
    pid = held.syscall(
        ctypes.c_long(SYS_CLONE[platform.machine()]), ctypes.c_ulong(flags | signal.SIGCHLD), null, null, null, null
    )
    if pid == 0:
        pythonapi.PyOS_AfterFork_Child()
        return 0
    number = ctypes.get_errno()
    pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(number, f"clone: {os.strerror(number)}")
    return int(pid)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    check(libc.mount(encode(source), target.encode(), encode(fstype), flags, encode(data)), f"mount {target}")


def ro_bind(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


# -- one sandbox ------------------------------------------------------------------------------------


def build_root(config: dict[str, Any], root: str) -> None:
    """The sandbox's file system, as bubblewrap builds it: read-only binds, a private /tmp, /dev and /proc."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    uid = config["uid"]

    def private_tmpfs(path: str, size: int) -> None:
        os.makedirs(root + path, exist_ok=True)
        mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,uid={uid},gid={uid},size={size}")

    # /tmp first, as bubblewrap orders it: a bound folder that lives under /tmp (a checkout in
    # /tmp/...) is bound on top of the private /tmp, not hidden by it
    private_tmpfs("/tmp", config["tmp_size"])
    for kind, *args in config["layout"]:
        if kind == "symlink":
            target, path = args
            os.symlink(target, root + path)
        else:
            (path,) = args
            os.makedirs(root + path, exist_ok=True)
            ro_bind(path, root + path)
    private_tmpfs("/dev", 1 << 20)
    for device in DEVICES:
        node = f"{root}/dev/{device}"
        open(node, "w").close()
        mount(f"/dev/{device}", node, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, f"{root}/dev/{name}")
    os.symlink("/proc/self/fd/2", f"{root}/dev/stderr")
    os.makedirs(f"{root}/dev/shm")
    mount("tmpfs", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={config['shm_size']}")
    mount(None, f"{root}/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.makedirs(f"{root}/proc")
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace's
    os.chdir(root)
    check(libc.syscall(SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def loopback_up() -> None:
    """As bubblewrap does: the new network namespace has its loopback interface, and nothing else."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def drop_privileges(uid: int, bpf: bytes | None) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: every capability is gone
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if bpf is not None:
        program = ctypes.create_string_buffer(bpf, len(bpf))
        fprog = SockFprog(len(bpf) // 8, ctypes.cast(program, ctypes.c_void_p))
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def exit_code(status: int) -> int:
    """bubblewrap's convention: the exit status, or 128 + the signal that ended the process."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def init(config: dict[str, Any], bpf: bytes | None, root: str) -> None:
    """PID 1 of the sandbox: build it, become unprivileged, start the child, reap until it ends."""
    build_root(config, root)
    libc.sethostname(b"sandbox", 7)
    loopback_up()
    drop_privileges(config["uid"], bpf)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a change of uid cleared it: the server's end is I's
    child = os.fork()
    if child == 0:
        return  # S: back to main(), which runs the child program
    # I keeps the streams open, as bubblewrap does: their end tells the runner that I's exit is near
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            os._exit(exit_code(status))


def start_child(config: dict[str, Any], bpf: bytes | None, fds: list[int], root: str) -> None:
    """In I, just cloned into its namespaces: take the five descriptors, then build the sandbox."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(CHILD_FDS, 1 << 16)
    init(config, bpf, root)


def run_child(config: dict[str, Any]) -> None:
    """In S: the runner's child program, as `python -m runner.child` would run it."""
    os.setsid()  # as bubblewrap's --new-session: no way to the terminal of anyone else
    # dropping root made the process undumpable, its /proc files root's: as after an exec, they are its own
    # (PID 1 stays undumpable; no other sandbox shares this PID namespace)
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
    os.environ.clear()
    os.environ.update(config["env"])
    os.environ["WORKSHOP_EVENTS_FD"], os.environ["WORKSHOP_GATE_FD"] = str(EVENTS_FD), str(GATE_FD)
    os.chdir("/tmp")
    main = types.ModuleType("__main__")  # what `python -m runner.child` runs: the module as __main__
    main.__file__, main.__spec__ = CHILD_ORIGIN, CHILD_SPEC
    sys.modules["__main__"] = main
    sys.argv = [CHILD_ORIGIN]
    exec(CHILD_CODE, main.__dict__)


# -- the server -------------------------------------------------------------------------------------


def send(control: socket.socket, message: dict[str, int]) -> None:
    with contextlib.suppress(OSError):
        control.send(json.dumps(message).encode())


def reap(control: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        send(control, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def serve(config: dict[str, Any], bpf: bytes | None, control: socket.socket) -> bool:
    """Fork a child per request until the runner goes; True in a sandbox's child S, False at the end."""
    root = config["root"]
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    gc.freeze()  # what is imported stays shared with every child: the collector does not touch it
    while True:
        readable, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
            reap(control, children)
        if control.fileno() not in readable:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, CHILD_FDS)
        except OSError:
            message, fds = b"", []
        if not message:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            return False
        if message != b"spawn" or len(fds) != CHILD_FDS:
            for fd in fds:
                os.close(fd)
            send(control, {"error": errno.EINVAL})
            continue
        try:
            pid = fork_into_namespaces(NAMESPACES)
        except OSError as error:
            for fd in fds:
                os.close(fd)
            send(control, {"error": error.errno or errno.EIO})
            continue
        if pid == 0:
            control.close()
            os.close(wake_read)
            os.close(wake_write)
            start_child(config, bpf, fds, root)
            return True
        for fd in fds:
            os.close(fd)
        children.add(pid)
        send(control, {"spawned": pid})


WARM_UP_HOST = "/nonexistent/workshop-warm-up"
"""Where the warm-up connects: a folder that does not exist, so no server is reached and no credential used."""


def warm_up() -> None:
    """Go once through what every child goes through first: an event loop's start and end, and asyncpg's
    connect up to the socket (which is not there). What that builds lazily (parsed defaults, compiled
    patterns, caches) then exists here, shared, instead of being built again in every child."""

    async def connect_nowhere() -> None:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await asyncpg.connect(
                host=WARM_UP_HOST, port=5432, user="warm-up", password="warm-up", database="warm-up", timeout=1
            )

    asyncio.run(connect_nowhere())


def main() -> None:
    config = json.loads(os.environ.pop(CONFIG_ENV))
    control = socket.socket(fileno=config["control_fd"])
    bpf = None
    if config.get("seccomp_fd") is not None:
        with os.fdopen(config["seccomp_fd"], "rb") as program:
            bpf = program.read()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the runner's end closing ends this server too
    warm_up()
    send(control, {"ready": os.getpid()})
    if serve(config, bpf, control):
        run_child(config)


if __name__ == "__main__":
    main()
