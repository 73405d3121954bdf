"""The sandbox's system-call filter: an allow-list, compiled once by libseccomp, loaded by bubblewrap.

Why an allow-list: a deny-list only blocks the calls someone thought of, and every
kernel release adds calls (io_uring arrived that way). The lesson samples, asyncpg,
asyncio with its threads, selectors and subprocesses need a few hundred ordinary
calls, all in Docker's default profile; everything else is refused. The list below
is Docker's default allow-list for a container without capabilities (moby's
profiles/seccomp/default.json), less `name_to_handle_at` and the 32-bit-only
names, plus `arch_prctl`; some calls are allowed only with harmless arguments
(`clone` without namespace flags, `personality` only for the default persona or a
query, `socket` only for the Unix, IP and netlink families).

How a refusal looks: a call that libseccomp knows and the list does not allow
fails with EPERM ("Operation not permitted"), the error Docker gives too. A call
younger than the installed libseccomp (it cannot name it) fails with ENOSYS, as on
an older kernel, so that libraries fall back to an older call instead of failing;
`clone3` gets ENOSYS on purpose (glibc then uses `clone`, whose flags the filter
can see). A socket of another family fails with EAFNOSUPPORT, as where the kernel
lacks that family. The filter never kills: system calls of another ABI (i386 or
x32 on x86_64, 32-bit ARM on aarch64) fail with EPERM too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from typing import Any


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ALLOWED = frozenset(
    _words(
        """
    accept accept4 access adjtimex alarm arch_prctl bind brk cachestat capget capset chdir chmod chown
    clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range creat
    dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
    fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchownat fcntl fdatasync fgetxattr flistxattr flock
    fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex futex_requeue futex_wait futex_waitv
    futex_wake futimesat getcpu getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer
    getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresuid getrlimit
    get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getxattr
    getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
    io_getevents io_pgetevents ioprio_get ioprio_set io_setup io_submit kill landlock_add_rule
    landlock_create_ruleset landlock_restrict_self lchown lgetxattr link linkat listen listmount listxattr
    listxattrat llistxattr lremovexattr lseek lsetxattr lstat madvise map_shadow_stack membarrier memfd_create
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mprotect mq_getsetattr
    mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync
    munlock munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe
    pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64
    process_mrelease pselect6 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recvfrom
    recvmmsg recvmsg remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall
    rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr
    sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop sendfile
    sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups setitimer setpgid setpriority setregid
    setresgid setresuid setreuid setrlimit set_robust_list setsid setsockopt set_thread_area
    set_tid_address setuid setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 socketpair splice stat statfs statmount statx symlink symlinkat sync sync_file_range syncfs
    sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_settime
    timerfd_create timerfd_gettime timerfd_settime times tkill truncate umask uname unlink unlinkat uretprobe
    utime utimensat utimes vfork vmsplice wait4 waitid write writev
    """
    )
)
"""Allowed with any arguments."""

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
DEFAULT_PERSONAS = (0x0, 0xFFFFFFFF)
"""PER_LINUX, and 0xffffffff, which only asks for the current persona."""
SOCKET_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
HIGHEST_FAMILY = 64
"""Families up to here are refused one by one; any larger value is refused by one comparison."""
CONDITIONAL = frozenset({"clone", "personality", "socket"})
FALL_BACK = frozenset({"clone3"})
"""Refused with ENOSYS, so that glibc falls back to `clone`."""

NAMED_DENIALS = _words(
    # Docker's default profile refuses these to a container without capabilities
    "acct add_key bpf chroot clock_settime delete_module fanotify_init finit_module fsconfig fsmount fsopen "
    "fspick get_mempolicy init_module ioperm iopl kcmp kexec_file_load kexec_load keyctl lookup_dcookie mbind "
    "migrate_pages mount mount_setattr move_mount move_pages nfsservctl open_by_handle_at open_tree "
    "perf_event_open pidfd_getfd pivot_root process_madvise process_vm_readv process_vm_writev ptrace "
    "quotactl quotactl_fd reboot request_key set_mempolicy setdomainname sethostname setns settimeofday "
    "swapoff swapon syslog umount2 unshare uselib userfaultfd ustat vhangup "
    # and beyond it: io_uring, handles, the x86 LDT
    "io_uring_enter io_uring_register io_uring_setup name_to_handle_at modify_ldt"
)
"""The calls the documentation and the tests name; the filter refuses every call it does not allow."""

MEMFD_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class SeccompUnavailable(RuntimeError):
    """The filter cannot be built here; the message says why."""


@dataclass(frozen=True)
class Policy:
    """What one built filter does, by name, on the native architecture."""

    architecture: str
    allowed: tuple[str, ...]
    denied: tuple[str, ...]
    """Every call this libseccomp names for the architecture that fails with EPERM."""
    unnamed: tuple[str, ...]
    """Allowed names this libseccomp does not know: those calls get ENOSYS here."""


class SeccompProgram:
    """A compiled filter kept in a sealed memfd; `open()` hands out one read-only descriptor per sandbox."""

    def __init__(self, bpf: bytes, policy: Policy, pfc: str) -> None:
        self.bpf = bpf
        self.policy = policy
        self.pfc = pfc
        """libseccomp's readable rendering of the filter (pseudo filter code)."""
        self._fd = os.memfd_create("workshop-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(self._fd, bpf)
        fcntl.fcntl(self._fd, fcntl.F_ADD_SEALS, MEMFD_SEALS)

    def open(self) -> int:
        """A new read-only descriptor (its own offset) on the program: bubblewrap reads it and closes it."""
        return os.open(f"/proc/self/fd/{self._fd}", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def build(architecture: str | None = None) -> SeccompProgram:
    """Compile the filter for this machine (or for `architecture`), or raise SeccompUnavailable saying why."""
    try:
        import pyseccomp  # libseccomp through ctypes; raises RuntimeError when the C library is missing
    except (ImportError, RuntimeError, OSError) as error:
        raise SeccompUnavailable(f"libseccomp is not usable ({error}); install libseccomp2 and pyseccomp") from error
    tokens = {"x86_64": pyseccomp.Arch.X86_64, "aarch64": pyseccomp.Arch.AARCH64}
    native = pyseccomp.system_arch()
    if architecture is None:
        names = {token: name for name, token in tokens.items()}
        if native not in names:
            raise SeccompUnavailable(f"no system-call filter for this architecture (libseccomp arch {native:#x})")
        architecture = names[native]
    try:
        syscall_filter, policy = _compile(pyseccomp, architecture, tokens[architecture], native)
        bpf, pfc = _export(syscall_filter)
    except OSError as error:
        raise SeccompUnavailable(f"libseccomp could not build the filter: {error}") from error
    return SeccompProgram(bpf, policy, pfc)


def _compile(lib: Any, architecture: str, token: int, native: int) -> tuple[Any, Policy]:
    """Rules name calls by their native numbers; libseccomp translates them for the filter's architecture."""
    denied_errno = lib.ERRNO(errno.EPERM)
    syscall_filter = lib.SyscallFilter(lib.ERRNO(errno.ENOSYS))
    if token != native:  # a filter for another machine (the tests check both supported ones)
        syscall_filter.add_arch(token)
        syscall_filter.remove_arch(native)
    syscall_filter.set_attr(lib.Attr.ACT_BADARCH, denied_errno)
    syscall_filter.set_attr(lib.Attr.CTL_OPTIMIZE, 2)  # a binary tree of syscall numbers, not a long list
    known = _known_syscalls(lib, token)
    unnamed = sorted(name for name in ALLOWED if lib.resolve_syscall(token, name) == -1)
    for name in sorted(ALLOWED & known):  # names of other architectures only (`open` on aarch64) are left out
        syscall_filter.add_rule(lib.ALLOW, name)
    # FALL_BACK needs no rule: ENOSYS is the default action (libseccomp refuses a rule that repeats it)
    _add_conditional_rules(lib, syscall_filter, denied_errno)
    denied = sorted(known - ALLOWED - FALL_BACK - CONDITIONAL)
    for name in denied:
        syscall_filter.add_rule(denied_errno, name)
    allowed = tuple(sorted(ALLOWED & known))
    return syscall_filter, Policy(architecture, allowed, tuple(denied), tuple(unnamed))


def _known_syscalls(lib: Any, token: int) -> set[str]:
    """Every call libseccomp can name on the architecture."""
    names = set()
    for number in range(1024):
        with contextlib.suppress(ValueError):
            names.add(lib.resolve_syscall(token, number).decode())
    return names


def _add_conditional_rules(lib: Any, syscall_filter: Any, denied_errno: int) -> None:
    namespaces = 0
    for flag in CLONE_NAMESPACE_FLAGS.values():
        namespaces |= flag
        syscall_filter.add_rule(denied_errno, "clone", lib.Arg(0, lib.MASKED_EQ, flag, flag))
    syscall_filter.add_rule(lib.ALLOW, "clone", lib.Arg(0, lib.MASKED_EQ, namespaces, 0))
    for persona in DEFAULT_PERSONAS:
        syscall_filter.add_rule(lib.ALLOW, "personality", lib.Arg(0, lib.EQ, persona))
    # anything else (another persona, such as ADDR_NO_RANDOMIZE) is refused
    syscall_filter.add_rule(denied_errno, "personality", lib.Arg(0, lib.NE, DEFAULT_PERSONAS[0]))
    no_family = lib.ERRNO(errno.EAFNOSUPPORT)
    for family in range(HIGHEST_FAMILY + 1):
        action = lib.ALLOW if family in SOCKET_FAMILIES else no_family
        syscall_filter.add_rule(action, "socket", lib.Arg(0, lib.EQ, family))
    syscall_filter.add_rule(no_family, "socket", lib.Arg(0, lib.GT, HIGHEST_FAMILY))


def _export(syscall_filter: Any) -> tuple[bytes, str]:
    fd = os.memfd_create("workshop-seccomp-export", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            syscall_filter.export_bpf(out)
        bpf = _read_all(fd)
        os.ftruncate(fd, 0)
        with os.fdopen(os.dup(fd), "wb") as out:
            syscall_filter.export_pfc(out)
        pfc = _read_all(fd).decode()
    finally:
        os.close(fd)
    if not bpf or len(bpf) % 8:
        raise SeccompUnavailable(f"libseccomp exported a malformed program ({len(bpf)} bytes)")
    return bpf, pfc


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0)
