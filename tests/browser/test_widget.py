"""The Run widget as a reader meets it: the CodeMirror editor, edits kept in the browser, big output,
what a run did to the database, the live region, Busy, accessibility (axe-core) and a phone.

Real runs against the real runner wherever they are quick; stubbed answers only for what a real
runner would make slow or awkward (Busy, a run that creates and drops objects is covered live in
tests/test_changes.py).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from runner.channel import wire_size

from .test_concurrency_view import assert_legible, contrast

CHAPTER = "/chapter-05/"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BIG_OUTPUT = "for i in range(200000):\n    print('line', i)\n"
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver(list => {
  for (const e of list.getEntries()) window.__longTasks.push({start: e.startTime, duration: e.duration});
}).observe({type: "longtask", buffered: true});
"""


def sample(page: Page, snippet: str) -> Locator:
    block = page.locator(f'[data-snippet="{snippet}"][data-workshop-ready]')
    expect(block).to_have_count(1)
    return block


def status(block: Locator) -> Locator:
    return block.get_by_role("status")


def output(block: Locator) -> Locator:
    return block.get_by_role("log")


def run_button(block: Locator) -> Locator:
    return block.get_by_role("button", name="Run", exact=False).first


def editor(block: Locator) -> Locator:
    return block.locator(".cm-content")


def doc(block: Locator) -> str:
    return str(block.evaluate("b => b.workshop.view.state.doc.toString()"))


def set_code(block: Locator, code: str) -> None:
    if not block.locator(".cm-editor").count():
        block.get_by_role("button", name="Edit").click()
    expect(editor(block)).to_be_visible()
    block.evaluate(
        "(b, code) => { const v = b.workshop.view;"
        " v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: code}}); }",
        code,
    )


def settled(block: Locator) -> None:
    """Wait until every queued output has been drawn (the widget draws once per frame)."""
    block.page.wait_for_function("b => !b.workshop.frame && !b.workshop.out.pending.length", arg=block.element_handle())


def page_y(locator: Locator) -> float:
    box = locator.bounding_box()
    assert box is not None
    return float(box["y"]) + float(locator.page.evaluate("scrollY"))


# ---------------------------------------------------------------------------------- editing


def test_codemirror_edits_python(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    pool = sample(page, "chapter_05/03_pool")
    lines = pool.locator("pre code").inner_text().rstrip("\n").count("\n") + 1
    assert lines > 40
    # The editor takes the published code's place: the toolbar does not move, no inner scroll.
    before = page_y(run_button(pool))
    pool.get_by_role("button", name="Edit").click()
    expect(editor(pool)).to_be_focused()
    assert abs(page_y(run_button(pool)) - before) <= 1
    expect(pool.locator(".cm-lineNumbers .cm-gutterElement", has_text=re.compile(rf"^{lines}$"))).to_have_count(1)
    scroll = pool.locator(".cm-scroller").evaluate("s => [s.scrollHeight, s.clientHeight]")
    assert scroll[0] <= scroll[1] + 1, scroll
    assert pool.locator(".cm-line span").count() > 50  # highlighted tokens

    block = sample(page, "chapter_05/01_connect")
    block.get_by_role("button", name="Edit").click()
    content = editor(block)
    expect(content).to_be_focused()
    expect(block.locator(".workshop-run__hint")).to_contain_text("press Esc, then Tab")
    content.press("Control+a")
    content.press("Delete")
    page.keyboard.type("for i in range(2):\n")  # the new line is indented after the colon
    page.keyboard.type("print(i)\n")
    page.keyboard.press("Backspace")  # one indent unit back
    page.keyboard.type("print('end')")
    assert doc(block) == "for i in range(2):\n    print(i)\nprint('end')"
    page.keyboard.press("Control+Home")
    page.keyboard.press("Tab")  # Tab indents the line...
    assert doc(block).startswith("    for i")
    page.keyboard.press("Shift+Tab")
    assert doc(block).startswith("for i")
    page.keyboard.press("Escape")  # ...and Escape, then Tab, leaves the editor
    page.keyboard.press("Tab")
    assert not page.evaluate("document.activeElement.closest('.cm-editor') !== null")

    # Line numbers are the lines a traceback cites.
    set_code(block, "x = 1\n\ndef f():\n    raise ValueError('boom')\n\nf()\n")
    editor(block).press("Control+Enter")
    expect(status(block)).to_contain_text("Failed (exit 1)")
    expect(output(block)).to_contain_text("line 4, in f")
    raising = block.locator(".cm-line").nth(3)
    expect(raising).to_contain_text("raise ValueError")
    expect(block.locator(".cm-lineNumbers .cm-gutterElement", has_text=re.compile(r"^4$"))).to_have_count(1)


def test_a_notebook_cell_edits_in_place(page: Page, runner_url: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=runner_url)
    page.goto(runner_url + "/notebook/asynchronous-database-interaction/")
    cell = sample(page, "notebook/chapter_05/07_async_generator")
    before = page_y(run_button(cell))
    cell.get_by_role("button", name="Edit").click()
    expect(editor(cell)).to_be_focused()
    assert abs(page_y(run_button(cell)) - before) <= 1  # the cell's own size and line height
    page.keyboard.press("Control+End")
    page.keyboard.type("\nprint('after')")
    page.keyboard.press("Control+Enter")
    expect(output(cell)).to_have_text("0\n1\n2\nafter\n")
    cell.locator("clipboard-copy").click()  # the notebook's own copy button
    assert str(page.evaluate("navigator.clipboard.readText()")).endswith("await main()\nprint('after')")


def test_edits_persist_and_reset_can_be_undone(page: Page, runner_url: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=runner_url)
    page.goto(runner_url + CHAPTER)
    snippet = "chapter_05/07_async_generator"
    key, aside = f"workshop:edit:{snippet}", f"workshop:edit-aside:{snippet}"
    block = sample(page, snippet)
    published = block.locator("pre code").inner_text().rstrip("\n")
    edited = published.replace("range(3)", "range(2)") if "range(3)" in published else published + "\nprint('x')"
    assert edited != published
    set_code(block, edited)
    page.wait_for_function("k => localStorage.getItem(k) !== null", arg=key)

    run_button(block).click()
    expect(status(block)).to_contain_text("(your edited code)")
    expect(block.locator(".workshop-run__origin")).to_have_text("Output of your edited code")

    # Material's copy button copies what the editor holds.
    block.locator(".highlight > pre").hover()
    block.get_by_role("button", name="Copy to clipboard").click()
    assert page.evaluate("navigator.clipboard.readText()") == edited

    page.reload()
    block = sample(page, snippet)
    expect(block.locator(".cm-editor")).to_be_visible()
    assert doc(block) == edited
    expect(block.locator(".workshop-run__notice")).to_contain_text("kept in this browser")

    block.get_by_role("button", name="Reset").click()
    expect(block.locator(".cm-editor")).to_have_count(0)
    assert block.locator("pre code").inner_text().rstrip("\n") == published
    assert page.evaluate("k => localStorage.getItem(k)", key) is None
    undo = block.get_by_role("button", name="Undo the reset")
    expect(undo).to_be_focused()
    undo.click()
    expect(block.locator(".cm-editor")).to_be_visible()
    assert doc(block) == edited
    page.wait_for_function("k => localStorage.getItem(k) !== null", arg=key)

    # The published sample changes: the edit is set aside with a notice, not applied.
    page.evaluate(
        "k => { const v = JSON.parse(localStorage.getItem(k)); v.sha256 = 'an-older-sample';"
        " localStorage.setItem(k, JSON.stringify(v)); }",
        key,
    )
    page.reload()
    block = sample(page, snippet)
    notice = block.locator(".workshop-run__notice")
    expect(notice).to_contain_text("This sample changed since you edited it")
    expect(block.locator(".cm-editor")).to_have_count(0)
    assert page.evaluate("k => localStorage.getItem(k)", key) is None
    assert json.loads(page.evaluate("k => localStorage.getItem(k)", aside))["code"] == edited
    block.get_by_role("button", name="Open my earlier version in the editor").click()
    expect(block.locator(".cm-editor")).to_be_visible()
    assert doc(block) == edited
    expect(notice).to_be_hidden()
    assert page.evaluate("k => localStorage.getItem(k)", aside) is None


# ---------------------------------------------------------------------------------- output


def test_big_output_never_blocks_the_page(page: Page, runner_url: str) -> None:
    """256 KiB of output (the runner's limit) drawn with no main-thread task over 100 ms."""
    page.add_init_script(LONG_TASKS)
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/06_sync_generator")
    set_code(block, BIG_OUTPUT)
    t0 = page.evaluate("performance.now()")
    run_button(block).click()
    expect(status(block)).to_contain_text("output limit of 256 KiB", timeout=60_000)
    settled(block)
    shown = int(block.evaluate("b => b.querySelector('.workshop-run__text').textContent.length"))
    assert 60_000 <= shown <= 70_000, shown  # the DOM holds the head, not all 256 KiB
    more = block.locator(".workshop-run__more")
    expect(more).to_contain_text(re.compile(r"more lines \([\d.]+ KiB\) not shown here"))
    expect(block.locator(".workshop-run__tail")).to_contain_text("[output truncated by the runner]")

    with page.expect_download() as download:
        block.get_by_role("button", name="Download the whole output as a text file").click()
    text = Path(download.value.path()).read_text()
    assert text.startswith("line 0\nline 1\n")
    printed = text.split("\n[output truncated by the runner]")[0]
    assert 256 * 1024 - 64 <= wire_size(printed) <= 256 * 1024  # all of it: the budget counts bytes as sent

    block.get_by_role("button", name="Show all of the output").click()
    settled(block)
    assert int(block.evaluate("b => b.querySelector('.workshop-run__text').textContent.length")) == len(text)
    long_tasks = [t for t in page.evaluate("window.__longTasks") if t["start"] >= t0]
    assert all(t["duration"] <= 100 for t in long_tasks), long_tasks


# ---------------------------------------------------------------------------------- database


def test_the_database_panel_after_the_transaction_sample(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/05_transaction")
    run_button(block).click()
    expect(status(block)).to_contain_text("Done in")
    panel = block.get_by_role("region", name="What the run did to the database")
    expect(panel).to_contain_text("The database after the run: unchanged — nothing was committed.")
    row = panel.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("th")).to_have_text("brand")
    expect(row.locator("td")).to_have_text(["0", "0", "0", "2"])  # inserted, updated, deleted, rolled back


def test_the_database_panel_lists_created_and_dropped_objects(page: Page, runner_url: str) -> None:
    changes = {
        "tables": [{"table": "notes", "inserted": 3, "updated": 0, "deleted": 0, "rolled_back": 0}],
        "created": ["index notes_pkey", "table notes"],
        "dropped": ["table product_color"],
    }
    finished = {
        "event": "finished", "id": "stub", "snippet": "chapter_05/01_connect", "status": "ok", "exit_code": 0,
        "truncated": False, "edited": True, "duration": {"queue": 0, "setup": 0, "run": 0.1, "total": 0.1},
        "changes": changes,
    }  # fmt: skip
    body = json.dumps({"event": "started", "id": "stub"}) + "\n" + json.dumps(finished) + "\n"
    page.route(
        "**/api/runs",
        lambda route: route.fulfill(status=200, headers={"Content-Type": "application/x-ndjson"}, body=body),
    )
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/01_connect")
    run_button(block).click()
    panel = block.get_by_role("region", name="What the run did to the database")
    expect(panel).to_contain_text("changed — committed changes")
    expect(panel.locator("tbody tr td").first).to_have_text("3")
    expect(panel).to_contain_text("Created: index notes_pkey, table notes")
    expect(panel).to_contain_text("Dropped: table product_color")


# ---------------------------------------------------------------------------------- running


RECORD_STATUS = """b => {
  const node = b.querySelector('.workshop-run__status');
  window.__announced = [];
  new MutationObserver(() => window.__announced.push(node.textContent))
    .observe(node, {childList: true, characterData: true, subtree: true});
}"""


def test_announcements_progress_and_a_steady_panel(page: Page, runner_url: str) -> None:
    page.goto(runner_url + CHAPTER)
    snippet = "chapter_05/08_cursor"
    block = sample(page, snippet)
    set_code(block, "import time\nfor i in range(30):\n    print(i)\ntime.sleep(1.3)\n")
    block.evaluate(RECORD_STATUS)
    run_button(block).click()
    expect(block.locator(".workshop-run__progress")).to_have_text(re.compile(r"^\d\.\d\d s$"))  # a clock, not read out
    expect(status(block)).to_contain_text("Done in", timeout=30_000)
    announced = [text for text in page.evaluate("window.__announced") if text]
    assert len(announced) == 2, announced  # the start and the result, nothing in between
    assert announced[0] == "Running your edited code…"
    assert re.fullmatch(r"Done in \d\.\d\d s \(your edited code\)", announced[1]), announced

    # The second run knows how long the first took, and keeps the panel's height meanwhile.
    panel = block.locator(".workshop-run__panel")
    height = panel.evaluate("p => p.offsetHeight")
    run_button(block).click()
    expect(block.locator(".workshop-run__progress")).to_contain_text(re.compile(r"of about 1\.\d\d s \(last run\)"))
    expect(block.locator("progress.workshop-run__meter")).to_be_visible()
    assert panel.evaluate("p => p.offsetHeight") >= height
    expect(status(block)).to_contain_text("Done in", timeout=30_000)


def test_busy_retries_by_itself(page: Page, runner_url: str) -> None:
    calls: list[str] = []

    def busy_once(route: Any) -> None:
        calls.append(route.request.url)
        if len(calls) == 1:
            body = json.dumps({"error": "busy", "detail": "the queue is full"})
            route.fulfill(status=429, headers={"Content-Type": "application/json", "Retry-After": "2"}, body=body)
        else:
            route.continue_()

    page.route("**/api/runs", busy_once)
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/01_connect")
    run_button(block).click()
    expect(status(block)).to_have_text("The runner is busy; trying again in 2 s")
    expect(block.locator(".workshop-run__progress")).to_have_text("retry in 1 s")  # counting down
    expect(status(block)).to_contain_text("Done in")
    expect(output(block)).to_contain_text("Connected! Postgres version is")
    assert len(calls) == 2


def test_a_run_waiting_in_line_shows_its_place(page: Page, runner_url: str) -> None:
    """Every slot taken (a workshop's burst): the reader's run waits in line, and the widget says where."""
    slots = httpx.get(f"{runner_url}/api/health", timeout=10).json()["runs"]["max_concurrent"]
    holding = "print('holding', flush=True)\nimport time\ntime.sleep(25)\n"
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/01_connect")
    streams: list[Iterator[str]] = []
    with contextlib.ExitStack() as holders, httpx.Client(base_url=runner_url, timeout=60) as client:
        for _ in range(slots):
            response = holders.enter_context(
                client.stream(
                    "POST",
                    "/api/runs",
                    json={"snippet": "chapter_05/03_pool", "code": holding},
                    headers={"accept": "application/x-ndjson"},
                )
            )
            assert response.status_code == 200
            streams.append(response.iter_lines())  # kept: a stream let go is a reader gone, its run cancelled
            assert any("holding" in line for line in streams[-1]), "a holding run ended early"
        run_button(block).click()
        expect(status(block)).to_have_text(re.compile(r"^Waiting: 1st in line \(about \d+ s\)$"))
    # the holders went away, their runs were cancelled: the reader's run gets a slot
    expect(status(block)).to_contain_text("Done in")
    expect(output(block)).to_contain_text("Connected! Postgres version is")


# ---------------------------------------------------------------------------------- accessibility


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core on the widget's own markup (toolbar, notice, editor, panel), WCAG 2.x A and AA rules."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        """WIDGET => axe.run(
             {include: [...document.querySelectorAll(WIDGET)].filter(n => n.offsetParent !== null)},
             {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']},
              resultTypes: ['violations']})""",
        ", ".join(f".workshop-run__{part}" for part in ("bar", "notice", "hint", "editor", "panel")),
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["html"][:160] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_in_either_palette(browser: Any, runner_url: str, artifacts: Path, scheme: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(runner_url + CHAPTER)
        palette = "slate" if scheme == "dark" else "default"
        expect(page.locator("body")).to_have_attribute("data-md-color-scheme", palette)
        block = sample(page, "chapter_05/05_transaction")
        run_button(block).click()
        expect(status(block)).to_contain_text("Done in")
        expect(block.get_by_role("region", name="What the run did to the database")).to_be_visible()
        edited = sample(page, "chapter_05/01_connect")
        set_code(edited, "print('edited')\n")
        edited.get_by_role("button", name="Reset").click()  # leaves the Undo notice
        expect(edited.locator(".workshop-run__notice")).to_be_visible()
        sample(page, "chapter_05/07_async_generator").get_by_role("button", name="Edit").click()
        expect(sample(page, "chapter_05/07_async_generator").locator(".cm-editor")).to_be_visible()
        assert run_axe(page) == []

        # The hovered Run button keeps its contrast too (axe does not hover).
        button = run_button(block)
        button.hover()
        colours = button.evaluate("b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]")
        assert contrast(colours[0], colours[1]) >= 4.5, colours
        page.mouse.move(0, 0)
        block.locator(".workshop-run__bar").scroll_into_view_if_needed()
        page.screenshot(path=artifacts / f"widget-{scheme}.png")
    finally:
        context.close()


def test_a_phone(browser: Any, runner_url: str, artifacts: Path) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="light", has_touch=True, bypass_csp=True
    )
    try:
        page = context.new_page()
        page.goto(runner_url + CHAPTER)
        block = sample(page, "chapter_05/05_transaction")
        run_button(block).click()
        expect(status(block)).to_contain_text("Done in")
        assert_legible(block.locator("svg.workshop-run__timeline"))  # the gap and the error named, apart
        set_code(block, block.locator("pre code").inner_text())
        for button in block.locator(".workshop-run__btn:visible").all():
            box = button.bounding_box()
            assert box and box["width"] >= 44 and box["height"] >= 44, (button.inner_text(), box)
        size = editor(block).evaluate("c => parseFloat(getComputedStyle(c).fontSize)")
        assert size >= 16, size  # smaller makes iOS zoom in on focus
        published = sample(page, "chapter_05/03_pool").locator("pre code")
        assert published.evaluate("c => parseFloat(getComputedStyle(c).fontSize)") >= 16
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, "the page scrolls sideways"
        block.locator(".workshop-run__bar").evaluate("bar => bar.scrollIntoView({block: 'start'})")
        page.screenshot(path=artifacts / "widget-mobile.png")
        assert run_axe(page) == []
    finally:
        context.close()
