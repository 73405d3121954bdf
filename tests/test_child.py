"""What the sandbox's child does to the code it runs: redirection, top-level await, tracebacks, limits."""

from __future__ import annotations

from runner.channel import wire_size

from .conftest import LiveRunner, output_text

SNIPPET = "chapter_05/03_pool"


def test_any_connection_arguments_reach_the_runs_own_database(live_runner: LiveRunner) -> None:
    code = """
import asyncio, asyncpg

async def main():
    conn = await asyncpg.connect("postgresql://someone:wrong@db.example:6543/elsewhere")
    print(await conn.fetchval("SELECT current_database() = current_user"))
    print(await conn.fetchval("SELECT count(*) FROM sku"))
    pool = await asyncpg.create_pool(host="10.1.2.3", port=1, user="x", password="y", database="z",
                                     min_size=2, max_size=2)
    print(await pool.fetchval("SELECT count(*) FROM brand"))
    await pool.close()

asyncio.run(main())
"""
    summary = live_runner.run(SNIPPET, code=code).json()
    assert output_text(summary) == "True\n100000\n100\n", summary


def test_top_level_await_is_allowed(live_runner: LiveRunner) -> None:
    code = "import asyncio\nawait asyncio.sleep(0)\nprint('awaited', __name__)\n"
    summary = live_runner.run(SNIPPET, code=code).json()
    assert output_text(summary) == "awaited __main__\n"
    assert summary["status"] == "ok"


def test_the_notebook_edition_of_a_sample_runs(live_runner: LiveRunner) -> None:
    summary = live_runner.run("notebook/chapter_05/07_async_generator").json()
    assert summary["status"] == "ok"
    assert output_text(summary) == "0\n1\n2\n"


def test_a_failing_sample_shows_its_own_frames_and_the_error(live_runner: LiveRunner) -> None:
    code = "import asyncio\n\nasync def main():\n    raise ValueError('boom')\n\nasyncio.run(main())\n"
    summary = live_runner.run(SNIPPET, code=code).json()
    assert summary["status"] == "error"
    assert summary["exit_code"] == 1
    stderr = "".join(e["text"] for e in summary["output"] if e["stream"] == "stderr")
    assert stderr.startswith("Traceback (most recent call last):")
    assert 'File "code/chapter_05/03_pool.py", line 4, in main' in stderr
    assert "raise ValueError('boom')" in stderr
    assert stderr.rstrip().endswith("ValueError: boom")
    assert "asyncio/runners.py" not in stderr and "runner/child.py" not in stderr


def test_a_syntax_error_is_reported_plainly(live_runner: LiveRunner) -> None:
    summary = live_runner.run(SNIPPET, code="print('unclosed'\n").json()
    assert summary["status"] == "error"
    assert "SyntaxError" in output_text(summary)


def test_exit_codes_come_back(live_runner: LiveRunner) -> None:
    summary = live_runner.run(SNIPPET, code="import sys\nsys.exit(3)\n").json()
    assert (summary["status"], summary["exit_code"]) == ("error", 3)


def test_the_environment_is_scrubbed(live_runner: LiveRunner) -> None:
    code = "import os\nprint(sorted(k for k in os.environ if 'WORKSHOP' in k or 'PG' in k or 'DATABASE' in k))\n"
    assert output_text(live_runner.run(SNIPPET, code=code).json()) == "['WORKSHOP_EVENTS_FD', 'WORKSHOP_GATE_FD']\n"


def test_a_run_past_the_time_limit_is_killed(live_runner: LiveRunner) -> None:
    code = (
        "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\nprint('sleeping', flush=True)\ntime.sleep(300)\n"
    )
    summary = live_runner.run(SNIPPET, code=code).json()
    assert summary["status"] == "timeout"
    assert output_text(summary) == "sleeping\n"
    assert live_runner.settings.run_timeout <= summary["duration"]["run"] < live_runner.settings.run_timeout + 5


def test_output_beyond_the_limit_is_truncated_and_the_run_stopped(live_runner: LiveRunner) -> None:
    code = "while True:\n    print('x' * 1000)\n"
    summary = live_runner.run(SNIPPET, code=code).json()
    assert summary["truncated"] is True
    assert summary["status"] == "killed"
    size = sum(wire_size(e["text"]) for e in summary["output"])  # charged as sent: "\n" is two bytes in JSON
    assert live_runner.settings.output_limit - 6 <= size <= live_runner.settings.output_limit
    assert summary["reason"] == "output limit of 256 KiB reached"
