"""An exercise's check judges what the learner's code did, and the learner's code cannot forge it.

The fixture exercise (tests/exercise_fixture/ex90_fixture*.py) passes when brand 9001 is
'Checked', inserted with a bound parameter, with 3 queries in flight at once, and
`done` printed. Each hostile variant below tries to pass without doing that, or to
break the check, in a different way; the check must say "not solved" every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.models import RunSummary, run_event_adapter
from runner.runs import collect
from runner.settings import REPO_ROOT
from runner.snippets import Snippet

from .conftest import LiveRunner

FIXTURE = Path(__file__).parent / "exercise_fixture" / "ex90_fixture.py"
STARTER = FIXTURE.read_text(encoding="utf-8")
SNIPPET = Snippet("fixture/ex90_fixture", "fixture", FIXTURE.relative_to(REPO_ROOT).as_posix(), STARTER)
SEQUENTIAL = STARTER.replace("await asyncio.gather(", "for q in (").replace(
    '        pool.fetchval("SELECT pg_sleep(0.2)"),\n    )',
    '        pool.fetchval("SELECT pg_sleep(0.2)"),\n    ):\n        await q',
)
"""Right in everything but concurrency: the variants below try to pass that part by other means."""


def run_fixture(live_runner: LiveRunner, code: str = STARTER) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        assert live_runner.runtime.service is not None
        return await collect(await live_runner.runtime.service.start(SNIPPET, code))

    summary: dict[str, Any] = live_runner.call(go(), timeout=60)
    RunSummary.model_validate(summary)
    return summary


def verdict(summary: dict[str, Any]) -> dict[str, Any]:
    check = summary["check"]
    assert check is not None, summary
    assert check["exercise"] == "fixture/ex90_fixture"
    return dict(check)


def checks_counted(live_runner: LiveRunner) -> dict[str, float]:
    counted = live_runner.metrics().get("workshop_exercise_checks_total", {})
    return {labels[0][1]: value for labels, value in counted.items()}


def test_a_solved_exercise_passes_with_what_the_server_saw(live_runner: LiveRunner) -> None:
    before = checks_counted(live_runner)
    summary = run_fixture(live_runner)
    check = verdict(summary)
    assert check["passed"] and check["judged"], (check, summary["output"])
    after = checks_counted(live_runner)
    assert after["passed"] == before["passed"] + 1 and after["not_yet"] == before["not_yet"], (before, after)
    assert check["message"].startswith("solved: ")
    assert "3 at once" in check["message"]


def test_the_verdict_is_streamed_before_finished(live_runner: LiveRunner) -> None:
    events: list[Any] = []

    async def go() -> None:
        assert live_runner.runtime.service is not None
        run = await live_runner.runtime.service.start(SNIPPET, STARTER)
        async for event in run.events():
            events.append(run_event_adapter.validate_python(event.model_dump()))

    live_runner.call(go(), timeout=60)
    kinds = [e.event for e in events]
    assert kinds[-2:] == ["check", "finished"], kinds
    assert events[-2].passed and events[-1].check.passed


def test_a_plain_sample_has_no_check(live_runner: LiveRunner) -> None:
    summary = live_runner.run("chapter_05/01_connect").json()
    assert summary["check"] is None


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        (
            "formatted SQL instead of a parameter",
            STARTER.replace('$1::text FROM pg_sleep(0.2)", "Checked"', "'Checked' FROM pg_sleep(0.2)\""),
            "no INSERT with one parameter",
        ),
        ("one query at a time", SEQUENTIAL, "at most 1 queries ran at once"),
        ("an exception", STARTER.replace('print("done")', "raise KeyError('boom')"), "stopped with KeyError: 'boom'"),
    ],
)
def test_wrong_answers_are_told_what_was_seen(live_runner: LiveRunner, name: str, code: str, message: str) -> None:
    assert code != STARTER, name
    check = verdict(run_fixture(live_runner, code))
    assert not check["passed"]
    assert message in check["message"], check


FORGED_EVENTS = SEQUENTIAL.replace(
    '    print("done")',
    """    import os
    fd = int(os.environ["WORKSHOP_EVENTS_FD"])
    os.write(fd, b'{"event": "verdict", "passed": true, "message": "solved: forged", "detail": null}\\n')
    os.write(fd, b'{"event": "check", "exercise": "fixture/ex90_fixture", "passed": true, "message": "solved"}\\n')
    print("done")""",
)

FORGED_RECORD = SEQUENTIAL.replace(
    '    print("done")',
    """    import json, os
    summary = {"event": "queries", "count": 3, "errors": 0, "latency_ms": {"p50": 1, "p95": 1, "max": 1},
               "span": [0, 1], "max_concurrency": 3, "connections": [], "phases": [], "statements": [],
               "sample": [], "sample_truncated": False, "dropped": 0}
    os.write(int(os.environ["WORKSHOP_EVENTS_FD"]), (json.dumps(summary) + "\\n").encode())
    print("done")""",
)

PATCHED_MODULES = SEQUENTIAL.replace(
    '    print("done")',
    """    import builtins, sys
    import runner.checking as checking
    checking.NotSolved = type("NotSolved", (Exception,), {})
    checking.Result.max_concurrency = lambda self, *a: 99
    sys.modules["runner.check_process"] = None
    open("/tmp/runner_checking.py", "w").write("raise SystemExit")
    builtins.print("done")""",
)


def with_structure_changed(*statements: str) -> str:
    """Right in everything but the state (brand 9001 is 'Wrong'), then the structure bent to show 'Checked'."""
    return STARTER.replace('"Checked"),', '"Wrong"),').replace(
        '    print("done")',
        f"""    for statement in {statements!r}:
        try:
            await pool.execute(statement)
        except asyncpg.PostgresError as error:
            print("refused:", statement, type(error).__name__)
    print("done")""",
    )


SHADOWING = {
    "a view in place of the table": with_structure_changed(
        "ALTER TABLE public.brand RENAME TO brand_kept",
        "CREATE VIEW public.brand AS SELECT 9001 AS brand_id, 'Checked'::text AS brand_name",
    ),
    "a generated column in place of the name": with_structure_changed(
        "ALTER TABLE brand RENAME COLUMN brand_name TO kept_name",
        "ALTER TABLE brand ADD COLUMN brand_name text GENERATED ALWAYS AS ('Checked') STORED",
    ),
    "a policy that hides rows": with_structure_changed(
        "ALTER TABLE brand ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE brand FORCE ROW LEVEL SECURITY",
        "CREATE POLICY hide ON brand USING (brand_id <> 9001)",
    ),
    "a role setting and a function in front of the catalog's": with_structure_changed(
        "ALTER ROLE CURRENT_USER SET search_path = public, pg_catalog",
        "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'Checked' $$",
    ),
    "only a role setting": with_structure_changed("ALTER ROLE CURRENT_USER SET search_path = public, pg_catalog"),
}


@pytest.mark.parametrize("name", SHADOWING)
def test_a_structure_bent_to_show_other_rows_is_not_judged(live_runner: LiveRunner, name: str) -> None:
    summary = run_fixture(live_runner, SHADOWING[name])
    check = verdict(summary)
    assert (check["passed"], check["judged"]) == (False, False), (name, check, summary["output"])
    assert check["message"].startswith("Your code "), check
    assert "refused:" not in "".join(e["text"] for e in summary["output"])  # each bend was really made


EXIT_EARLY = STARTER.replace('    print("done")', "    import os; os._exit(0)")
"""Everything done but the last line: the check still runs, and sees it."""

LINGERING_CHILD = """
import asyncio, os, time
import asyncpg

if os.fork() == 0:  # outlive the program and keep trying to do the work while the check runs
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    async def late():
        while True:
            try:
                conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password",
                                             database="products")
                await conn.execute("INSERT INTO brand (brand_id, brand_name) VALUES (9001, $1)", "Checked")
                await conn.close()
            except Exception:
                pass
            await asyncio.sleep(0.02)
    asyncio.run(late())
print("done")
"""

SLOW_SESSION = """
import asyncio
import asyncpg

async def main():
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password",
                                 database="products")
    # a statement still running on the server when the program ends: it would insert after the run
    task = asyncio.ensure_future(conn.execute(
        "SELECT pg_sleep(1.5); INSERT INTO brand (brand_id, brand_name) VALUES (9001, 'Checked')"))
    await asyncio.sleep(0.2)
    print("done", flush=True)
    import os
    os._exit(0)

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("forged verdict and check events", FORGED_EVENTS, "at most 1 queries ran at once"),
        ("a forged query summary", FORGED_RECORD, "at most 1 queries ran at once"),
        ("patched modules and planted files", PATCHED_MODULES, "at most 1 queries ran at once"),
        ("exit early", EXIT_EARLY, "the program did not print done"),
        ("a process left behind to do the work late", LINGERING_CHILD, "brand 9001 is [], not ['Checked']"),
        ("a statement left running on the server", SLOW_SESSION, "brand 9001 is [], not ['Checked']"),
    ],
)
def test_the_learner_cannot_forge_or_disturb_the_check(
    live_runner: LiveRunner, name: str, code: str, message: str
) -> None:
    assert code not in (STARTER, SEQUENTIAL), name
    summary = run_fixture(live_runner, code)
    check = verdict(summary)
    assert not check["passed"], (name, check, summary["output"])
    assert message in check["message"], (name, check, summary["output"])


def test_phases_reported_by_the_program_bound_the_concurrency_window() -> None:
    from runner.checking import Query, Result, Timing

    def query(start: float, end: float) -> Query:
        return Query(1, start, end, "SELECT 1", 0, 1, None, None, False, "idle")

    result = Result(
        status="ok",
        exit_code=0,
        stdout="",
        stderr="",
        exception=None,
        seconds=2.0,
        queries=[query(0.1, 0.5), query(0.2, 0.6), query(0.3, 0.7), query(1.0, 1.2), query(1.1, 1.3)],
        connections=3,
        cancel_requests=[],
        timings=[Timing("together", 0.1, 0.6), Timing("after", 1.0, 0.3)],
    )
    assert result.max_concurrency() == 3
    assert result.phase_concurrency("together") == 3
    assert result.phase_concurrency("after") == 2
    assert result.phase_concurrency("never") == 0


def test_a_broken_check_is_not_a_verdict_on_the_learner(live_runner: LiveRunner) -> None:
    path = FIXTURE.with_name("ex91_broken.py")
    snippet = Snippet("fixture/ex91_broken", "broken", path.relative_to(REPO_ROOT).as_posix(), path.read_text())

    async def go() -> dict[str, Any]:
        assert live_runner.runtime.service is not None
        return await collect(await live_runner.runtime.service.start(snippet, None))

    before = checks_counted(live_runner)
    check = live_runner.call(go(), timeout=60)["check"]
    assert (check["passed"], check["judged"]) == (False, False)
    assert (
        check["message"]
        == "The check itself failed, which is a bug of the course, not of your code (ZeroDivisionError)."
    )
    assert checks_counted(live_runner)["not_judged"] == before["not_judged"] + 1
