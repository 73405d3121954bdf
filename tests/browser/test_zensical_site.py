"""The Zensical build in a real browser, served by a real runner: the widget loads and a sample runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from runner import lessons

from ..conftest import TEST_CACHE
from .conftest import REPO, serving_runner


@pytest.fixture(scope="module")
def zensical_runner(zensical_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("zensical-runner") / "runner.log"
    with serving_runner(zensical_site, TEST_CACHE / "zensical", log) as base:
        yield base


def test_the_widget_loads_on_every_sample_and_runs_one(page: Page, zensical_runner: str) -> None:
    lesson = lessons.Lesson(REPO, "chapter_05")
    page.goto(f"{zensical_runner}/{lesson.page_uri.removesuffix('index.md')}")
    ready = page.locator("[data-snippet][data-workshop-ready]")
    expect(ready).to_have_count(len(lesson.samples()))
    block = page.locator('[data-snippet="chapter_05/06_sync_generator"][data-workshop-ready]')
    block.get_by_role("button", name="Run", exact=False).first.click()
    expect(block.get_by_role("status")).to_contain_text("Done in", timeout=60_000)
    expected = (REPO / "code/chapter_05/06_sync_generator.out").read_text(encoding="utf-8").strip()
    expect(block.get_by_role("log")).to_contain_text(expected.splitlines()[-1])
