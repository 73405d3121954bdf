"""The system-call filter as built here: its rules (read from libseccomp's own rendering) and its launcher."""

from __future__ import annotations

import fcntl
import os
import platform
import re
import sys

import pytest

from runner import seccomp
from runner.isolation import BubblewrapLauncher
from runner.seccomp import ALLOWED, NAMED_DENIALS, SeccompProgram

EPERM, ENOSYS, EAFNOSUPPORT = "action ERRNO(1);", "action ERRNO(38);", "action ERRNO(97);"
HEADER = re.compile(r'^(\s*)# filter for syscall "(\w+)" \((\d+)\)')


@pytest.fixture(scope="module")
def program() -> SeccompProgram:
    return seccomp.build()


@pytest.fixture(scope="module", params=["x86_64", "aarch64"])
def any_program(request: pytest.FixtureRequest) -> SeccompProgram:
    """The filter as built on each supported machine (libseccomp builds for either from here)."""
    return seccomp.build(request.param)


def rules(pfc: str) -> dict[str, list[str]]:
    """Each syscall's lines in libseccomp's pseudo filter code, below its `if ($syscall == N)`."""
    lines = pfc.splitlines()
    found: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        match = HEADER.match(line)
        if not match:
            continue
        depth = len(match.group(1))
        assert lines[index + 1].strip() == f"if ($syscall == {match.group(3)})", lines[index + 1]
        body = []
        for following in lines[index + 2 :]:
            if len(following) - len(following.lstrip()) <= depth:
                break
            body.append(following.strip())
        found[match.group(2)] = body
    return found


def test_the_filter_is_for_this_machine_and_tells_what_it_refuses(program: SeccompProgram) -> None:
    assert program.policy.architecture == platform.machine()
    assert program.bpf and len(program.bpf) % 8 == 0
    assert not set(NAMED_DENIALS) & ALLOWED
    assert not set(program.policy.denied) & set(program.policy.allowed)
    assert {"read", "write", "futex", "epoll_wait", "execve"} <= set(program.policy.allowed)
    for name in ("io_uring_setup", "bpf", "keyctl", "ptrace", "unshare", "mount", "open_by_handle_at"):
        assert name in program.policy.denied


def test_every_rule_has_the_intended_action(any_program: SeccompProgram) -> None:
    program = any_program
    assert f"# filter for arch {program.policy.architecture} " in program.pfc
    for name in ("io_uring_setup", "bpf", "keyctl", "ptrace", "unshare", "mount", "open_by_handle_at"):
        assert name in program.policy.denied
    found = rules(program.pfc)
    for name in program.policy.allowed:
        if name not in seccomp.CONDITIONAL:
            assert found[name] == ["action ALLOW;"], name
    for name in program.policy.denied:
        assert found[name] == [EPERM], name
    assert "clone3" not in found, "clone3 must fall to the default action, ENOSYS"
    tail = program.pfc.rsplit("# default action", 1)[1]
    assert ENOSYS in tail.splitlines()[1], "calls this libseccomp cannot name get ENOSYS"
    assert "# invalid architecture action\naction ERRNO(1);" in program.pfc, "other ABIs are refused, not killed"
    assert "KILL" not in program.pfc
    assert set(found) == {*program.policy.allowed, *program.policy.denied, *seccomp.CONDITIONAL}, (
        "rules of this arch only"
    )


def test_clone_personality_and_socket_depend_on_their_arguments(any_program: SeccompProgram) -> None:
    found = rules(any_program.pfc)
    clone = "\n".join(found["clone"])
    for flag in seccomp.CLONE_NAMESPACE_FLAGS.values():
        assert f"if ($a0.lo32 & {flag:#010x} == {flag})\n{EPERM}" in clone
    assert "if ($a0.lo32 & 0x7e020000 == 0)\naction ALLOW;" in clone
    personality = "\n".join(found["personality"])
    assert "if ($a0.lo32 == 0)\naction ALLOW;" in personality
    assert "if ($a0.lo32 == 4294967295)\naction ALLOW;" in personality
    assert personality.count(EPERM) >= 1
    socket = "\n".join(found["socket"])
    for family in seccomp.SOCKET_FAMILIES:
        assert f"if ($a0.lo32 == {family})\naction ALLOW;" in socket
    assert socket.count("action ALLOW;") == len(seccomp.SOCKET_FAMILIES)
    assert EAFNOSUPPORT in socket


def test_each_sandbox_reads_the_program_through_its_own_read_only_descriptor(program: SeccompProgram) -> None:
    first, second = program.open(), program.open()
    try:
        assert os.read(first, 16) == program.bpf[:16]
        assert os.read(second, len(program.bpf) + 1) == program.bpf, "each descriptor has its own offset"
        with pytest.raises(OSError):
            os.write(first, b"x")
        seals = fcntl.fcntl(first, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
    finally:
        os.close(first)
        os.close(second)


def test_the_launcher_hands_bubblewrap_the_filter_and_closes_it_after() -> None:
    launcher = BubblewrapLauncher()
    assert "seccomp" in launcher.layers and launcher.missing == ()
    assert launcher.seccomp is not None
    plan = launcher.plan(events_fd=3)
    try:
        [fd] = plan.pass_fds
        position = plan.argv.index("--seccomp")
        assert plan.argv[position + 1] == str(fd)
        assert os.read(fd, 8) == launcher.seccomp.bpf[:8]
    finally:
        plan.cleanup()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_without_the_filter_the_layer_is_missing() -> None:
    launcher = BubblewrapLauncher(seccomp=False)
    assert launcher.missing == ("seccomp",) and "seccomp" not in launcher.layers
    assert launcher.seccomp_problem and "WORKSHOP_SECCOMP=off" in launcher.seccomp_problem
    plan = launcher.plan(events_fd=3)
    assert "--seccomp" not in plan.argv and plan.pass_fds == []


def test_without_libseccomp_the_layer_is_missing_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # as if the package were not installed
    launcher = BubblewrapLauncher()
    assert launcher.missing == ("seccomp",)
    assert launcher.seccomp_problem and "libseccomp is not usable" in launcher.seccomp_problem


def test_a_filter_the_kernel_refuses_is_found_at_start(program: SeccompProgram) -> None:
    launcher = BubblewrapLauncher()
    assert launcher.seccomp is not None
    broken = b"\x00" * 8  # one load instruction and no return: the kernel rejects the program
    launcher.seccomp = SeccompProgram(broken, program.policy, "")
    assert launcher.probe() is None, "bubblewrap still works without the filter"
    assert launcher.missing == ("seccomp",)
    assert launcher.seccomp_problem and "does not work with the filter" in launcher.seccomp_problem


def test_the_probe_checks_that_the_filter_is_in_force() -> None:
    launcher = BubblewrapLauncher()
    assert launcher.probe() is None
    assert launcher.missing == () and launcher.seccomp is not None
