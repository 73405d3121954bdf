"""Every published sample runs through the API and prints what its `.out` file says.

The samples are discovered (`runner.lessons`): a sample or a lesson added to
`code/` is checked here with no change to this file.
"""

from __future__ import annotations

import pytest

from runner import lessons
from runner.expected import normalise, read_expected, stale_message, wrong_ending
from runner.settings import REPO_ROOT

from .conftest import LiveRunner, output_text

SAMPLE_IDS = [lessons.snippet_id(REPO_ROOT, p) for p in lessons.sample_paths(REPO_ROOT) if not lessons.is_exercise(p)]
"""Exercises' starters print what they like: their checks judge them (tests/test_exercises.py)."""


def test_samples_are_found_in_every_lesson_folder() -> None:
    folders = sorted(p.name for p in (REPO_ROOT / "code").glob("chapter_*") if p.is_dir())
    assert folders, "no lesson folder under code/"
    assert sorted({sid.split("/")[0] for sid in SAMPLE_IDS}) == folders


@pytest.mark.parametrize("snippet", SAMPLE_IDS)
def test_sample_matches_its_expected_output(live_runner: LiveRunner, snippet: str) -> None:
    response = live_runner.run(snippet)
    assert response.status_code == 200, response.text
    summary = response.json()
    source = lessons.sample_path(REPO_ROOT, snippet).read_text(encoding="utf-8")
    problem = wrong_ending(snippet, source, summary)
    assert problem is None, f"{problem}\n{output_text(summary)}"
    actual = normalise(output_text(summary))
    expected = read_expected(snippet)
    assert expected == actual, stale_message(snippet, expected, actual)


def test_two_queries_on_one_connection_report_the_interface_error(live_runner: LiveRunner) -> None:
    text = output_text(live_runner.run("chapter_05/02_one_connection_two_queries").json())
    assert "InterfaceError" in text
    assert "another operation is in progress" in text


def test_pool_vs_sequential_reports_structured_timings(live_runner: LiveRunner) -> None:
    summary = live_runner.run("chapter_05/04_pool_vs_sequential").json()
    timings = {t["name"]: t["seconds"] for t in summary["timings"]}
    assert set(timings) == {"main", "query_products_concurrently", "query_products_sequentially"}
    assert timings["query_products_concurrently"] < timings["query_products_sequentially"]
    assert timings["main"] >= timings["query_products_concurrently"] + timings["query_products_sequentially"]


BRAND_9999 = """
import asyncio
import asyncpg

async def main():
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres",
                                 password="password", database="products")
    print("brands with id 9999:", await conn.fetchval("SELECT count(*) FROM brand WHERE brand_id = 9999"))
    await conn.close()

asyncio.run(main())
"""


def test_after_the_transaction_sample_brand_9999_is_absent(live_runner: LiveRunner) -> None:
    transaction = output_text(live_runner.run("chapter_05/05_transaction").json())
    assert "UniqueViolationError" in transaction
    check = live_runner.run("chapter_05/05_transaction", code=BRAND_9999).json()
    assert output_text(check) == "brands with id 9999: 0\n"


def test_committed_changes_do_not_reach_the_next_run(live_runner: LiveRunner) -> None:
    insert = BRAND_9999.replace(
        'print("brands', 'await conn.execute("INSERT INTO brand VALUES (9999, \'kept?\')")\n    print("brands'
    )
    assert output_text(live_runner.run("chapter_05/05_transaction", code=insert).json()) == "brands with id 9999: 1\n"
    assert (
        output_text(live_runner.run("chapter_05/05_transaction", code=BRAND_9999).json()) == "brands with id 9999: 0\n"
    )


DROP_SKU = """
import asyncpg
conn = await asyncpg.connect()
await conn.execute("DROP TABLE sku")
print("dropped sku")
"""


def test_dropping_the_sku_table_does_not_affect_the_next_run(live_runner: LiveRunner) -> None:
    dropped = live_runner.run("chapter_05/03_pool", code=DROP_SKU).json()
    assert output_text(dropped) == "dropped sku\n", dropped
    after = live_runner.run("chapter_05/03_pool").json()
    assert after["status"] == "ok"
    assert normalise(output_text(after)) == read_expected("chapter_05/03_pool")
