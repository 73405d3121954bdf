"""The "see the concurrency" view under a run: a bar chart of the timings and a timeline of connections.

The pool comparison and the two-queries sample run for real (a real runner, a
real database); the wording and the clearing between runs are checked with
stubbed event streams. Every drawing is also checked for legibility: drawn at
the size it is shown, no text outside the image, no two texts on top of each
other, and enough contrast in both colour schemes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

CHAPTER = "/chapter-05/"
POOL = "chapter_05/04_pool_vs_sequential"
TWO_QUERIES = "chapter_05/02_one_connection_two_queries"

# What one drawing looks like to a reader: every text's box, the viewBox, the shown size.
GEOMETRY = """svg => {
  const box = svg.viewBox.baseVal;
  const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim()).map(t => {
    const b = t.getBBox();
    return {text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height};
  });
  const outside = texts.filter(t => t.x < -0.5 || t.y < -0.5 ||
    t.x + t.w > box.width + 0.5 || t.y + t.h > box.height + 0.5).map(t => t.text);
  const overlaps = [];
  texts.forEach((a, i) => texts.slice(i + 1).forEach(b => {
    if (a.x + 0.5 < b.x + b.w && b.x + 0.5 < a.x + a.w && a.y + 0.5 < b.y + b.h && b.y + 0.5 < a.y + a.h)
      overlaps.push([a.text, b.text]);
  }));
  return {viewBox: box.width, shown: svg.getBoundingClientRect().width, outside, overlaps};
}"""

COLOURS = """block => {
  const fill = selector => getComputedStyle(block.querySelector(selector)).fill;
  return {
    background: getComputedStyle(document.body).backgroundColor,
    label: fill(".workshop-run__timeline .workshop-run__svg-label"),
    tick: fill(".workshop-run__timeline .workshop-run__svg-tick"),
    busy: fill(".workshop-run__busy"),
    bar: fill(".workshop-run__bar-fill"),
  };
}"""


def sample(page: Page, snippet: str) -> Locator:
    block = page.locator(f'[data-snippet="{snippet}"][data-workshop-ready]')
    expect(block).to_have_count(1)
    return block


def run(block: Locator, timeout: float = 30_000) -> None:
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(block.get_by_role("status")).to_contain_text("Done in", timeout=timeout)


def bar_chart(block: Locator) -> Locator:
    return block.locator("svg.workshop-run__bars")


def timeline(block: Locator) -> Locator:
    return block.locator("svg.workshop-run__timeline")


def assert_legible(svg: Locator) -> None:
    geometry: dict[str, Any] = svg.evaluate(GEOMETRY)
    # Drawn at the width it is shown, so 12 px text is 12 px on screen, phone included.
    assert abs(geometry["shown"] - geometry["viewBox"]) <= 2, geometry
    assert geometry["outside"] == [], geometry
    assert geometry["overlaps"] == [], geometry


def rgba(css: str) -> tuple[float, float, float, float]:
    parts = [float(p) for p in re.findall(r"[\d.]+", css)]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def contrast(fore: str, back: str) -> float:
    """WCAG contrast ratio of a (possibly translucent) colour over an opaque background."""
    f, b = rgba(fore), rgba(back)
    blended = [f[i] * f[3] + b[i] * (1 - f[3]) for i in range(3)]

    def luminance(rgb: list[float] | tuple[float, ...]) -> float:
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(blended), luminance(b[:3])), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def lanes_busy_in(block: Locator, phase_index: int) -> int:
    """How many lanes have a busy interval starting inside the shaded band of that phase."""
    return int(
        timeline(block).evaluate(
            """(svg, index) => {
              const band = svg.querySelectorAll(".workshop-run__band")[index];
              const x0 = band.x.baseVal.value, x1 = x0 + band.width.baseVal.value;
              return [...svg.querySelectorAll(".workshop-run__lane")].filter(lane =>
                [...lane.querySelectorAll(".workshop-run__busy")].some(r => {
                  const x = r.x.baseVal.value;
                  return x >= x0 && x < x1;
                })).length;
            }""",
            phase_index,
        )
    )


def check_pool_comparison(page: Page, runner_url: str) -> Locator:
    page.goto(runner_url + CHAPTER)
    block = sample(page, POOL)
    run(block, timeout=120_000)

    chart = bar_chart(block)
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("role", "img")
    expect(chart).to_have_attribute("aria-label", re.compile(r"query_products_concurrently \d+\.\d+ s"))
    expect(chart.locator(".workshop-run__bar-fill")).to_have_count(3)  # main and the two functions
    expect(chart).to_contain_text("query_products_sequentially")
    expect(chart.locator(".workshop-run__svg-value").first).to_have_text(re.compile(r"^\d+\.\d+ s$"))
    ratio = block.locator(".workshop-run__ratio")
    expect(ratio).to_be_visible()
    # a clear speed-up is announced, a small one explained (on a local socket the work is CPU-bound)
    said = r"oncurrent was (\d+(\.\d)?×|not clearly) faster than sequential"
    expect(ratio).to_have_text(re.compile(rf"^C{said}"))
    expect(block.get_by_role("img", name=re.compile(f"c{said}"))).to_have_count(1)

    lines = timeline(block)
    expect(lines).to_be_visible()
    expect(lines).to_have_attribute("role", "img")
    lanes = lines.locator("g.workshop-run__lane")
    expect(lanes).to_have_count(6)
    for index in range(6):
        assert lanes.nth(index).locator("rect.workshop-run__busy").count() >= 1, f"lane {index + 1} is empty"
        expect(lines).to_contain_text(f"conn {index + 1}")
    expect(lines.locator(".workshop-run__bracket")).to_have_count(3)  # main above the two functions
    expect(lines.locator(".workshop-run__band")).to_have_count(2)

    summary = block.locator(".workshop-run__summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("6 connections")
    expect(summary).to_contain_text("query_products_concurrently: ")
    expect(summary).to_contain_text("up to 6 at once")
    expect(summary).to_contain_text("query_products_sequentially: ")
    expect(summary).to_contain_text("on 1 connection, one at a time")
    expect(summary).to_contain_text(re.compile(r"latency p50 [\d.]+ ms"))
    expect(lines).to_have_attribute("aria-label", re.compile("query_products_sequentially: .* one at a time"))

    # What the picture must make visible: six lanes busy together, then one at a time.
    assert lanes_busy_in(block, 0) == 6
    assert lanes_busy_in(block, 1) == 1
    assert_legible(chart)
    assert_legible(lines)
    return block


def test_pool_comparison_draws_the_timings_and_six_lanes(page: Page, runner_url: str, artifacts: Path) -> None:
    block = check_pool_comparison(page, runner_url)
    block.locator(".workshop-run__charts").scroll_into_view_if_needed()
    block.locator(".workshop-run__charts").screenshot(path=artifacts / "concurrency-view.png")


@pytest.mark.parametrize("page", [{"color_scheme": "dark"}], indirect=True, ids=["dark"])
def test_pool_comparison_in_the_dark_scheme(page: Page, runner_url: str, artifacts: Path) -> None:
    block = check_pool_comparison(page, runner_url)
    expect(page.locator("body")).to_have_attribute("data-md-color-scheme", "slate")
    colours: dict[str, str] = block.evaluate(COLOURS)
    assert contrast(colours["label"], colours["background"]) >= 4.5, colours
    assert contrast(colours["tick"], colours["background"]) >= 3, colours
    assert contrast(colours["busy"], colours["background"]) >= 3, colours
    assert contrast(colours["bar"], colours["background"]) >= 3, colours
    block.locator(".workshop-run__charts").scroll_into_view_if_needed()
    block.locator(".workshop-run__charts").screenshot(path=artifacts / "concurrency-view-dark.png")


@pytest.mark.parametrize("page", [{"viewport": {"width": 390, "height": 844}}], indirect=True, ids=["narrow"])
def test_pool_comparison_on_a_phone(page: Page, runner_url: str, artifacts: Path) -> None:
    block = check_pool_comparison(page, runner_url)  # legible: no text cut off or overlapping
    for svg in (bar_chart(block), timeline(block)):
        assert svg.bounding_box()["width"] <= 390  # type: ignore[index]
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the page scrolls sideways"
    block.locator(".workshop-run__charts").scroll_into_view_if_needed()
    block.locator(".workshop-run__charts").screenshot(path=artifacts / "concurrency-view-narrow.png")


def test_two_queries_on_one_connection_show_the_clash(page: Page, runner_url: str, artifacts: Path) -> None:
    page.goto(runner_url + CHAPTER)
    block = sample(page, TWO_QUERIES)
    run(block)
    lines = timeline(block)
    expect(lines).to_be_visible()
    lanes = lines.locator("g.workshop-run__lane")
    expect(lanes).to_have_count(1)
    expect(lanes.locator("rect.workshop-run__busy")).to_have_count(1)
    expect(lanes.locator(".workshop-run__error-mark")).to_have_count(1)
    expect(lanes.locator(".workshop-run__svg-error")).to_have_text("InterfaceError")
    summary = block.locator(".workshop-run__summary")
    expect(summary).to_contain_text("1 connection, 2 queries, 1 failed (InterfaceError)")
    expect(summary).to_contain_text("2 queries at once on 1 connection: they clash")
    expect(block.locator(".workshop-run__legend")).to_contain_text("a query failed")
    # No async_timed here: no bar chart, no phases.
    expect(block.locator(".workshop-run__figure--timings")).to_be_hidden()
    expect(lines.locator(".workshop-run__bracket")).to_have_count(0)
    assert_legible(lines)
    block.locator(".workshop-run__charts").screenshot(path=artifacts / "concurrency-view-clash.png")


def _ndjson(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


FINISHED = {
    "event": "finished",
    "id": "stub",
    "snippet": "chapter_05/03_pool",
    "status": "ok",
    "exit_code": 0,
    "truncated": False,
    "duration": {"queue": 0, "setup": 0, "run": 0.5, "total": 0.5},
}
QUERIES = {
    "event": "queries",
    "count": 3,
    "errors": 0,
    "latency_ms": {"p50": 1.0, "p95": 2.0, "max": 2.0},
    "span": [0.05, 0.3],
    "max_concurrency": 2,
    "connections": [
        {
            "id": 1,
            "queries": 2,
            "errors": 0,
            "busy_seconds": 0.1,
            "intervals": [[0.05, 0.1], [0.2, 0.25]],
            "errors_at": [],
        },
        {"id": 2, "queries": 1, "errors": 0, "busy_seconds": 0.1, "intervals": [[0.06, 0.3]], "errors_at": []},
    ],
    "phases": [
        {
            "name": "fetch_asynchronously",
            "start": 0.0,
            "end": 0.31,
            "queries": 3,
            "connections": 2,
            "max_concurrency": 2,
        }
    ],
    "statements": [],
    "sample": [],
    "sample_truncated": False,
}


def test_synchronous_counts_as_sequential_and_a_new_run_clears_the_view(page: Page, runner_url: str) -> None:
    """Wording from stubbed events: "synchronous" pairs with "concurrent" (not "asynchronous"), and Run clears."""
    answers = [
        _ndjson(
            {"event": "started", "id": "stub"},
            {"event": "timing", "name": "fetch_concurrently", "seconds": 0.5, "start": 0.0},
            {"event": "timing", "name": "fetch_asynchronously", "seconds": 0.31, "start": 0.0},
            {"event": "timing", "name": "fetch_synchronously", "seconds": 1.25, "start": 0.5},
            QUERIES,
            FINISHED,
        ),
        _ndjson(
            {"event": "started", "id": "stub"},
            {"event": "output", "stream": "stdout", "text": "hi\n", "t": 0.1},
            FINISHED,
        ),
    ]

    def answer(route: Any) -> None:
        route.fulfill(status=200, headers={"Content-Type": "application/x-ndjson"}, body=answers.pop(0))

    page.route("**/api/runs", answer)
    page.goto(runner_url + CHAPTER)
    block = sample(page, "chapter_05/03_pool")
    run(block)
    expect(block.locator(".workshop-run__ratio")).to_have_text(
        "Concurrent was 2.5× faster than sequential (0.50 s against 1.25 s)."
    )
    expect(bar_chart(block).locator(".workshop-run__bar-fill")).to_have_count(3)
    expect(timeline(block).locator("g.workshop-run__lane")).to_have_count(2)
    expect(block.locator(".workshop-run__summary")).to_contain_text(
        "fetch_asynchronously: 3 queries on 2 connections, up to 2 at once"
    )
    expect(block.get_by_role("list", name="Timings").locator("li")).to_have_count(3)
    # 3 queries: too few for percentiles; the wait before the first query is named; axes say what they measure
    summary = block.locator(".workshop-run__summary")
    expect(summary).not_to_contain_text("p50")
    expect(summary).to_contain_text("The first query began 50 ms in (connecting, before it)")
    expect(timeline(block).locator(".workshop-run__gap")).to_have_count(1)
    expect(timeline(block)).to_contain_text("connecting")
    expect(timeline(block)).to_contain_text("time since your code started")
    expect(bar_chart(block)).to_contain_text("seconds each call took")
    # one meaning per colour: a query running is neither the concurrent nor the sequential hue
    fills = block.evaluate(
        """b => ['svg.workshop-run__timeline .workshop-run__busy',
                 '.workshop-run__bar-fill.workshop-run__kind--concurrent',
                 '.workshop-run__bar-fill.workshop-run__kind--sequential']
               .map(selector => getComputedStyle(b.querySelector(selector)).fill)"""
    )
    assert len(set(fills)) == 3, fills
    assert_legible(bar_chart(block))
    assert_legible(timeline(block))

    run(block)
    expect(block.get_by_role("log")).to_have_text("hi\n")
    expect(block.locator(".workshop-run__figure--timings")).to_be_hidden()
    expect(block.locator(".workshop-run__figure--timeline")).to_be_hidden()
    expect(block.get_by_role("list", name="Timings").locator("li")).to_have_count(0)
    expect(block.locator(".workshop-run__ratio")).to_have_text("")
