"""A maintainer adds a lesson, and no code or test changes: the whole pipeline on a copy of the repository.

The copy gets a page `docs/chapter-99/index.md`, a sample `code/chapter_99/01_brands.py`
and two nav entries, as docs/maintainers.md says. Then the real commands run in it,
in the order a maintainer would: the strict build (which first says what is
missing), `runner expected --write`, `runner notebook`, `runner expected`, the
strict build again, and this repository's own docs, notebook and sample tests,
which must find the new lesson by themselves. The second test does the same
through `python -m runner preview`, with no restart between the edits.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from runner import notebook
from runner.snippets import load_catalogue

from .conftest import TEST_CACHE, free_port
from .repo_copy import SAMPLE, add_lesson, build, copy_repo, environment, run

CACHE = TEST_CACHE / "repo-copies"
SAMPLE_ID = "chapter_99/01_brands"


def test_a_new_lesson_goes_through_the_whole_pipeline(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    add_lesson(repo)
    env = {"WORKSHOP_CACHE_DIR": str(CACHE)}

    first = build(repo)
    assert first.returncode != 0, "a lesson with no expected output and no notebook must not build"
    assert f"record it with `python -m runner expected --write {SAMPLE_ID}`" in first.stdout, first.stdout
    assert "docs/notebook/throwaway-lesson.ipynb is missing: run `python -m runner notebook`" in first.stdout

    recorded = run(repo, "-m", "runner", "expected", "--write", "chapter_99", **env)
    assert recorded.returncode == 0, recorded.stdout
    assert (repo / f"code/{SAMPLE_ID}.out").read_text(encoding="utf-8") == "brands: 100\n"
    assert "orphaned" not in recorded.stdout and "could not destroy" not in recorded.stdout, recorded.stdout

    written = run(repo, "-m", "runner", "notebook")
    assert written.returncode == 0 and "wrote docs/notebook/throwaway-lesson.ipynb" in written.stdout, written.stdout

    checked = run(repo, "-m", "runner", "expected", "chapter_99", **env)
    assert checked.returncode == 0 and f"ok {SAMPLE_ID}" in checked.stdout, checked.stdout

    second = build(repo)
    assert second.returncode == 0, second.stdout
    page = (repo / "site/chapter-99/index.html").read_text(encoding="utf-8")
    assert f'data-snippet="{SAMPLE_ID}"' in page
    notebook_page = (repo / "site/notebook/throwaway-lesson/index.html").read_text(encoding="utf-8")
    assert f'data-snippet="notebook/{SAMPLE_ID}"' in notebook_page

    catalogue = load_catalogue(repo / "code")
    assert {SAMPLE_ID, f"notebook/{SAMPLE_ID}"} <= set(catalogue)
    assert catalogue[SAMPLE_ID].code == SAMPLE

    # This repository's own tests, run in the copy, find and check the new lesson. Not the
    # notebook-in-a-kernel test: its kernel finds the lesson code through the installed `runner`
    # package, which is this checkout's, not the copy's (the setup cell's tests cover the rest).
    tests = run(
        repo,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        "tests/test_docs.py",
        "tests/test_notebook.py",
        "tests/test_samples.py",
        "-k",
        "(not test_samples or chapter_99 or found_in_every_lesson) and not local_kernel",
        WORKSHOP_TEST_CACHE=str(CACHE),
    )
    assert tests.returncode == 0, tests.stdout
    passed = set(re.findall(r"^PASSED (\S+)", tests.stdout, re.M))
    for test in (
        f"tests/test_docs.py::test_sample_is_runnable_on_its_lesson_page_with_its_exact_code[{SAMPLE_ID}]",
        f"tests/test_docs.py::test_expected_output_follows_its_sample[{SAMPLE_ID}]",
        "tests/test_docs.py::test_notebook_cells_are_tagged_and_match_the_scripts[chapter_99]",
        "tests/test_notebook.py::test_committed_notebook_is_what_the_build_produces[chapter_99]",
        f"tests/test_samples.py::test_sample_matches_its_expected_output[{SAMPLE_ID}]",
        "tests/test_samples.py::test_samples_are_found_in_every_lesson_folder",
    ):
        assert test in passed, f"{test} did not run and pass in the copy:\n{tests.stdout[-3000:]}"


# -- the live preview -----------------------------------------------------------------


class Process:
    """A command whose merged output is read line by line on a thread, so a test can wait for a line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_until(self, condition: Callable[[], bool], wake_on: str, timeout: float, what: str) -> None:
        """Check `condition` now and after every output line containing `wake_on`; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while not condition():
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{''.join(self.log[-60:])}")
                try:
                    line = self.lines.get(timeout=left)
                except queue.Empty:
                    continue
                if line is None:
                    pytest.fail(f"the preview exited waiting for {what}:\n{''.join(self.log[-60:])}")
                self.log.append(line)
                if wake_on in line:
                    break

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise


@pytest.fixture
def preview(tmp_path: Path) -> Iterator[tuple[Path, str, Process]]:
    repo = copy_repo(tmp_path / "repo")
    port = free_port()
    env = environment(repo, WORKSHOP_CACHE_DIR=str(CACHE), WORKSHOP_SITE_DIR=str(repo / "site"))
    process = Process(
        [sys.executable, "-m", "runner", "preview", "--host", "127.0.0.1", "--port", str(port)], repo, env
    )
    try:
        yield repo, f"http://127.0.0.1:{port}", process
    finally:
        if process.proc.poll() is None:
            process.stop()


def _answers(url: str, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            response = httpx.get(url, timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and text in response.text

    return check


def _run_output(base: str, snippet: str) -> str:
    response = httpx.post(f"{base}/api/runs", json={"snippet": snippet}, timeout=60)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["status"] == "ok", summary
    return "".join(event["text"] for event in summary["output"])


def test_the_preview_follows_a_new_lesson_and_an_edited_sample(preview: tuple[Path, str, Process]) -> None:
    repo, base, process = preview
    process.wait_until(_answers(f"{base}/api/health", '"postgres"'), "Uvicorn running", 240, "the preview to serve")
    assert _answers(f"{base}/chapter-05/", "chapter_05/03_pool")()

    add_lesson(repo)
    (repo / f"code/{SAMPLE_ID}.out").write_text("brands: 100\n", encoding="utf-8")
    notebook.write_all(repo)
    process.wait_until(
        _answers(f"{base}/chapter-99/", f'data-snippet="{SAMPLE_ID}"'), "site rebuilt", 120, "chapter 99"
    )
    snippets = httpx.get(f"{base}/api/snippets", timeout=10).json()["snippets"]
    assert SAMPLE_ID in {s["id"] for s in snippets}, "the runner does not see the new sample"
    assert _run_output(base, SAMPLE_ID) == "brands: 100\n"

    sample = repo / f"code/{SAMPLE_ID}.py"
    sample.write_text(SAMPLE.replace('print("brands:"', 'print("brand count:"'), encoding="utf-8")
    process.wait_until(_answers(f"{base}/chapter-99/", "brand count:"), "site rebuilt", 120, "the edited sample")
    assert _run_output(base, SAMPLE_ID) == "brand count: 100\n", "the runner runs the old code"

    assert process.stop() == 0, "".join(process.log[-40:])
    leftovers = [p.name for p in repo.iterdir() if p.name.startswith(".site")]
    assert not leftovers, f"the preview left build folders behind: {leftovers}"
