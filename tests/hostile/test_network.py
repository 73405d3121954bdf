"""Attacks through the network: the runner's own port, the outside world, the host's abstract sockets.

Only loopback and TEST-NET-1 (192.0.2.0/24, reserved for documentation, never routed) are used.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

from ..conftest import LiveRunner, output_text
from .support import assert_next_run_is_pristine, attack, expect_contained, lines_starting, new_marker


def test_connecting_to_the_runners_http_port_is_refused(live_runner: LiveRunner) -> None:
    port = urlsplit(live_runner.url).port
    code = f"""
import socket
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=2) as conn:
        conn.sendall(b"GET /api/health HTTP/1.0\\r\\nHost: runner\\r\\n\\r\\n")
        print("CONNECTED", conn.recv(200).split(b"\\r\\n")[0])
except OSError as error:
    print("refused", type(error).__name__, error.strerror)
"""
    text = output_text(attack(live_runner, code))
    assert lines_starting(text, "CONNECTED") or lines_starting(text, "refused"), text
    expect_contained(
        live_runner, "CONNECTED" not in text, "net-namespace", f"the sample reached the runner's API: {text!r}"
    )
    assert_next_run_is_pristine(live_runner)


def test_connecting_to_a_public_address_fails_fast(live_runner: LiveRunner) -> None:
    code = """
import errno, socket, time
for kind in ("tcp", "udp"):
    began = time.monotonic()
    try:
        if kind == "tcp":
            socket.create_connection(("192.0.2.1", 80), timeout=2).close()
        else:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 53))
        outcome = "SENT" if kind == "udp" else "CONNECTED"
    except TimeoutError:
        outcome = "timeout"
    except OSError as error:
        outcome = errno.errorcode.get(error.errno, str(error.errno))
    print(kind, outcome, round(time.monotonic() - began, 3))
"""
    text = output_text(attack(live_runner, code))
    results = {line.split()[0]: (line.split()[1], float(line.split()[2])) for line in text.splitlines()}
    assert set(results) == {"tcp", "udp"}, text
    assert results["tcp"][0] != "CONNECTED", "a TEST-NET address answered: this network is not what it seems"
    fast_and_unreachable = all(outcome == "ENETUNREACH" and took < 1 for outcome, took in results.values())
    expect_contained(
        live_runner, fast_and_unreachable, "net-namespace", f"the outside world is routable from the sandbox: {results}"
    )
    assert_next_run_is_pristine(live_runner)


def test_connecting_to_an_abstract_unix_socket_of_the_host_is_refused(live_runner: LiveRunner) -> None:
    """Abstract unix sockets (D-Bus, container runtimes) belong to the network namespace."""
    name = "\0" + new_marker()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(1)
    listener.settimeout(15)
    accepted: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"host secret")
            accepted.append(b"accepted")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = f"""
import socket
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(2)
        conn.connect({name!r})
        print("CONNECTED", conn.recv(100))
except OSError as error:
    print("refused", type(error).__name__, error.strerror)
"""
    try:
        text = output_text(attack(live_runner, code))
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        listener.close()
        thread.join(20)
    assert lines_starting(text, "CONNECTED") or lines_starting(text, "refused"), text
    expect_contained(
        live_runner,
        "CONNECTED" not in text and not accepted,
        "net-namespace",
        f"the sample reached an abstract socket of the host: {text!r}",
    )
    assert_next_run_is_pristine(live_runner)
