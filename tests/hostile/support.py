"""What every hostile test needs: running an attack, judging containment, checking the aftermath."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpx
import psutil
import pytest

from runner.expected import normalise, read_expected

from ..conftest import LiveRunner, output_text

SNIPPET = "chapter_05/03_pool"
NDJSON = "application/x-ndjson"


def new_marker() -> str:
    """A unique, short tag for an attack's processes and files (fits a 15-char process name)."""
    return "hx" + secrets.token_hex(5)


def attack(live_runner: LiveRunner, code: str) -> dict[str, Any]:
    """Run `code` as an edited sample and return the run's summary (the runner must answer 200)."""
    response = live_runner.run(SNIPPET, code=code)
    assert response.status_code == 200, f"the runner did not run the attack: {response.status_code} {response.text}"
    return dict(response.json())


def stdout_of(summary: dict[str, Any]) -> str:
    return "".join(e["text"] for e in summary["output"] if e["stream"] == "stdout")


def lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def assert_next_run_is_pristine(live_runner: LiveRunner, *, honour_retry_after: bool = False) -> None:
    """The published sample still runs and prints its expected output, on an untouched database.

    With `honour_retry_after`, one 503 with Retry-After is followed as a client would (the runner
    saying it is recovering); the retry must then work.
    """
    response = live_runner.run(SNIPPET)
    if honour_retry_after and response.status_code == 503 and "retry-after" in response.headers:
        time.sleep(int(response.headers["retry-after"]))
        response = live_runner.run(SNIPPET)
    assert response.status_code == 200, f"the next ordinary run was refused: {response.status_code} {response.text}"
    summary = response.json()
    assert summary["status"] == "ok", f"{summary['status']} ({summary['reason']}): {output_text(summary)}"
    assert normalise(output_text(summary)) == read_expected(SNIPPET)


def expect_contained(live_runner: LiveRunner, contained: bool, layers: str | Iterable[str], breach: str) -> None:
    """Fail on a breach, unless the launcher in force says it lacks a layer the containment rests on."""
    if contained:
        return
    needed = (layers,) if isinstance(layers, str) else tuple(layers)
    launcher = live_runner.runtime.launcher
    missing = [layer for layer in needed if layer in launcher.missing]
    if missing:
        pytest.xfail(f"{launcher.name} launcher lacks {', '.join(missing)}: {breach}")
    pytest.fail(f"not contained with the {launcher.name} launcher (layers {', '.join(launcher.layers)}): {breach}")


def launcher_lacks(live_runner: LiveRunner, *layers: str) -> bool:
    return any(layer in live_runner.runtime.launcher.missing for layer in layers)


# -- processes -------------------------------------------------------------------------------


def processes_with(marker: str) -> list[psutil.Process]:
    """Processes whose command line or name carries `marker`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "name"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if marker in cmdline or marker in (proc.info["name"] or ""):
            found.append(proc)
    return found


def survivors(marker: str, grace: float = 0.5) -> list[str]:
    """Processes of an attack still alive `grace` seconds after its run; killed here, then described."""
    deadline = time.monotonic() + grace
    while True:
        alive = processes_with(marker)
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    described = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            described.append(f"pid {proc.pid} {proc.name()!r} {' '.join(proc.cmdline())!r}")
    for proc in alive:  # never let one test's escapee disturb the next
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return described


def runner_children(live_runner: LiveRunner) -> list[psutil.Process]:
    """Sandbox processes (children of the runner, at any depth) that run the child program."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "runner.child" in " ".join(proc.cmdline()):
                found.append(proc)
    return found


# -- secrets ---------------------------------------------------------------------------------


def admin_password(live_runner: LiveRunner) -> str:
    password = live_runner.runtime.server.admin.password
    assert password, "the embedded cluster's admin has a password"
    return password


def password_digest(live_runner: LiveRunner) -> str:
    return hashlib.sha256(admin_password(live_runner).encode()).hexdigest()


SECRET_FINDER = r'''
import hashlib, re
_SECRET_SHA = "{digest}"
_SECRET_LEN = {length}
_TOKEN = re.compile(rb"[A-Za-z0-9_-]{{%d,}}" % _SECRET_LEN)


def holds_secret(data):
    """Whether `data` contains the admin password (known to this sample by its digest only)."""
    for match in _TOKEN.finditer(data):
        run = match.group()
        for start in range(min(len(run) - _SECRET_LEN + 1, 4096)):
            if hashlib.sha256(run[start:start + _SECRET_LEN]).hexdigest() == _SECRET_SHA:
                return True
    return False
'''


def secret_finder(live_runner: LiveRunner) -> str:
    """Sample code defining `holds_secret(bytes)`, without putting the password in the sandbox."""
    return SECRET_FINDER.format(digest=password_digest(live_runner), length=len(admin_password(live_runner)))


# -- runs in the background ------------------------------------------------------------------


class BackgroundRun:
    """A streamed run on a thread of its own; `wait_for` a line of its output while it runs."""

    def __init__(self, live_runner: LiveRunner, code: str, snippet: str = SNIPPET) -> None:
        self._url = f"{live_runner.url}/api/runs"
        self._body = {"snippet": snippet, "code": code}
        self.status_code: int | None = None
        self.events: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def text(self) -> str:
        return "".join(e["text"] for e in list(self.events) if e["event"] == "output")

    def _run(self) -> None:
        try:
            with httpx.stream("POST", self._url, json=self._body, headers={"accept": NDJSON}, timeout=90) as response:
                self.status_code = response.status_code
                if response.status_code != 200:
                    response.read()
                    return
                for line in response.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    with self._changed:
                        self.events.append(event)
                        if event["event"] == "finished":
                            self.summary = event
                        self._changed.notify_all()
        except BaseException as error:
            self.error = error
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """True once `text` is in the run's output; False if the run ended or time ran out first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in self.text:
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    return text in self.text
                self._changed.wait(left)
        return True

    def finish(self, timeout: float = 60) -> dict[str, Any]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background run did not finish"
        assert self.error is None, f"the background run's request failed: {self.error!r}"
        assert self.status_code == 200, self.status_code
        assert self.summary is not None, self.events
        return self.summary
