"""The chapter in a real browser, against a real runner: Run, Edit, Reset, Stop, errors, diagram, notebook."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

CHAPTER = "/chapter-05/"
NOTEBOOK = "/notebook/asynchronous-database-interaction/"
LONG_RUN = "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.2)"


def sample(page: Page, snippet: str) -> Locator:
    block = page.locator(f'[data-snippet="{snippet}"][data-workshop-ready]')
    expect(block).to_have_count(1)
    return block


def run_button(block: Locator) -> Locator:
    return block.get_by_role("button", name="Run", exact=False).first


def status(block: Locator) -> Locator:
    return block.get_by_role("status")


def output(block: Locator) -> Locator:
    return block.get_by_role("log")


def test_pool_sample_runs_and_reports_done(page: Page, runner_url: str, artifacts: Path) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/03_pool")
    block.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "chapter-before-run.png")

    run_button(block).click()
    expect(status(block)).to_contain_text("Done in")
    expect(output(block)).to_contain_text("<Record product_id=100")
    # the status is the live region (start and result); the output is a log read on demand
    expect(status(block)).to_have_attribute("aria-atomic", "true")
    expect(output(block)).to_have_attribute("aria-live", "off")
    expect(block.locator(".workshop-run__detail")).to_contain_text("total")
    block.locator(".workshop-run__panel").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "chapter-after-run.png")


def test_two_queries_on_one_connection_show_interface_error(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/02_one_connection_two_queries")
    run_button(block).click()
    expect(output(block)).to_contain_text("InterfaceError")
    expect(output(block)).to_contain_text("another operation is in progress")
    expect(status(block)).not_to_contain_text("Running")


def test_timings_are_listed(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/04_pool_vs_sequential")
    run_button(block).click()
    expect(status(block)).to_contain_text("Done in", timeout=120_000)
    timings = block.get_by_role("list", name="Timings")
    expect(timings).to_contain_text("query_products_concurrently")
    expect(timings).to_contain_text("query_products_sequentially")


def set_code(block: Locator, code: str) -> None:
    """Replace what the sample's editor holds (opening it first), as one edit."""
    if not block.locator(".cm-editor").count():
        block.get_by_role("button", name="Edit").click()
    expect(block.locator(".cm-content")).to_be_visible()
    block.evaluate(
        "(b, code) => { const v = b.workshop.view;"
        " v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: code}}); }",
        code,
    )


def test_edit_run_then_reset(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/01_connect")
    published = block.locator("pre code").inner_text()

    block.get_by_role("button", name="Edit").click()
    editor = block.get_by_role("textbox", name="Code of chapter_05/01_connect")
    expect(editor).to_be_focused()
    set_code(block, published.replace("Connected!", "Edited, and connected!"))
    editor.press("Control+Enter")  # the keyboard shortcut runs the focused sample
    expect(status(block)).to_contain_text("Done in")
    expect(output(block)).to_contain_text("Edited, and connected! Postgres version is")

    block.get_by_role("button", name="Reset").click()
    expect(block.locator(".cm-editor")).to_have_count(0)
    expect(block.locator("pre code")).to_be_visible()
    assert block.locator("pre code").inner_text() == published
    run_button(block).click()
    expect(output(block)).to_contain_text("Connected! Postgres version is")
    expect(output(block)).not_to_contain_text("Edited")


def _runs_in_progress(runner_url: str) -> int:
    health: dict[str, Any] = httpx.get(runner_url + "/api/health", timeout=5).json()
    return int(health["runs"]["running"]) + int(health["runs"]["waiting"])


def test_stop_ends_a_long_run(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/06_sync_generator")
    set_code(block, LONG_RUN)
    run_button(block).click()
    expect(output(block)).to_contain_text("2")  # streamed while the run goes on
    stop = block.get_by_role("button", name="Stop")
    expect(stop).to_be_focused()
    stop.click()
    expect(status(block)).to_have_text("Stopped")
    expect(run_button(block)).to_be_visible()
    assert "99" not in output(block).inner_text()
    # Closing the stream is what tells the runner to kill the run.
    deadline = time.monotonic() + 15
    while _runs_in_progress(runner_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _runs_in_progress(runner_url) == 0


def test_runner_down_says_unreachable(page: Page, static_url: str) -> None:
    page.goto(static_url + CHAPTER)
    block = sample(page, "chapter_05/03_pool")
    run_button(block).click()
    expect(status(block)).to_contain_text("Runner unreachable")
    expect(status(block)).to_contain_text("make serve")


def test_er_diagram_renders_as_svg_offline(page: Page, runner_url: str, offline: Any) -> None:
    # Material draws the diagram into a closed shadow root; open it so the test can look inside.
    page.add_init_script(
        "const attach = Element.prototype.attachShadow;"
        "Element.prototype.attachShadow = function (init) {"
        " return attach.call(this, Object.assign({}, init, {mode: 'open'})); };"
    )
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(runner_url + CHAPTER)
    diagram = page.locator("div.mermaid svg")
    expect(diagram).to_have_count(1)
    for table in ("brand", "product", "product_size", "product_color", "sku"):
        expect(diagram).to_contain_text(table)
    assert any(url.endswith("/assets/mermaid/mermaid.min.js") for url in requested)
    assert offline.blocked == [], f"requests left this machine: {offline.blocked}"
    assert all(url.startswith(runner_url) or url.startswith("data:") for url in requested), requested


def test_mermaid_not_downloaded_where_there_is_no_diagram(page: Page, runner_url: str, offline: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(runner_url + "/")
    page.wait_for_load_state("networkidle")
    assert not [url for url in requested if "mermaid.min.js" in url]
    assert offline.blocked == []


def test_notebook_cell_runs(page: Page, runner_url: str, offline: Any) -> None:
    page.goto(runner_url + NOTEBOOK)
    cell = sample(page, "notebook/chapter_05/07_async_generator")
    cell.locator("pre").first.focus()
    page.keyboard.press("Control+Enter")  # runs the sample that has the focus
    expect(status(cell)).to_contain_text("Done in")
    expect(output(cell)).to_have_text("0\n1\n2\n")
    assert offline.blocked == []


def test_instant_navigation_reinitialises_the_widget(page: Page, runner_url: str) -> None:
    page.goto(runner_url + "/")
    page.get_by_role("link", name="Asynchronous database interaction").first.click()
    page.wait_for_url("**" + CHAPTER)
    block = sample(page, "chapter_05/07_async_generator")
    expect(block.locator(".workshop-run__bar")).to_have_count(1)
    run_button(block).click()
    expect(output(block)).to_have_text("0\n1\n2\n")


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [
        ("dark", {"width": 1280, "height": 900}, "dark"),
        ("narrow", {"width": 390, "height": 844}, "light"),
    ],
)
def test_screenshots_after_a_run(
    browser: Any, runner_url: str, artifacts: Path, name: str, viewport: dict[str, int], scheme: str
) -> None:
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(runner_url + CHAPTER)
        block = sample(page, "chapter_05/02_one_connection_two_queries")
        run_button(block).click()
        expect(output(block)).to_contain_text("InterfaceError")
        block.locator(".workshop-run__bar").scroll_into_view_if_needed()
        page.screenshot(path=artifacts / f"chapter-after-run-{name}.png")
    finally:
        context.close()


@pytest.mark.parametrize(
    ("http_status", "headers", "body", "message"),
    [
        (
            403,
            {},
            {"error": "editing_disabled", "detail": "edited code is refused"},
            "Editing is disabled on this site",
        ),
        (503, {}, {"error": "database_unavailable", "detail": "no postgres"}, "database is unavailable"),
        (413, {}, {"error": "too_large", "detail": "body over 131072 bytes"}, "too large to run: body over 128 KiB"),
        (404, {"Content-Type": "text/html"}, None, "Runner unreachable"),
    ],
    ids=["editing-off", "database-down", "too-large", "not-a-runner"],
)
def test_refusals_are_explained(
    page: Page, runner_url: str, http_status: int, headers: dict[str, str], body: Any, message: str
) -> None:
    """The runner's documented error answers, stubbed in the browser, each get a plain message."""
    import json

    def refuse(route: Any) -> None:
        text = json.dumps(body) if body is not None else "<html>Not Found</html>"
        route.fulfill(status=http_status, headers={"Content-Type": "application/json", **headers}, body=text)

    page.route("**/api/runs", refuse)
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/03_pool")
    run_button(block).click()
    expect(status(block)).to_contain_text(message)
    expect(run_button(block)).to_be_visible()


@pytest.mark.parametrize(
    ("finished", "message"),
    [
        ({"status": "timeout", "exit_code": None, "truncated": False}, "Timed out after 30.0 s"),
        ({"status": "error", "exit_code": 1, "truncated": False}, "Failed (exit 1) in 30.0 s"),
        (
            {"status": "killed", "exit_code": -9, "truncated": True, "reason": "output limit of 262144 bytes reached"},
            "Killed after 30.0 s (output limit of 256 KiB reached) — output truncated",
        ),
    ],
    ids=["timeout", "failed", "truncated"],
)
def test_run_outcomes_are_worded(page: Page, runner_url: str, finished: dict[str, Any], message: str) -> None:
    """Outcomes that are slow or awkward to cause for real, streamed from a stub in the browser."""
    import json

    events = [
        {"event": "started", "id": "stub"},
        {"event": "output", "stream": "stderr", "text": "Traceback (most recent call last):\n  boom\n", "t": 0.1},
        {
            "event": "finished",
            "id": "stub",
            "snippet": "chapter_05/03_pool",
            "duration": {"queue": 0, "setup": 0.1, "run": 30.0, "total": 30.1},
            **finished,
        },
    ]
    body = "".join(json.dumps(event) + "\n" for event in events)
    page.route(
        "**/api/runs",
        lambda route: route.fulfill(status=200, headers={"Content-Type": "application/x-ndjson"}, body=body),
    )
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/03_pool")
    run_button(block).click()
    expect(status(block)).to_contain_text(message)
    # stderr is kept apart (styled as an error) and its whitespace is preserved.
    expect(block.locator(".workshop-run__stderr").first).to_contain_text("Traceback (most recent call last):\n  boom")
