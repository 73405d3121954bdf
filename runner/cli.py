"""`python -m runner`: serve the course, serve a learners' database, refresh expected outputs."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from typing import Any

from .logs import configure as configure_logs
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the site and the run API on one port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--public", action="store_true", help="public mode: rate limit, full isolation required")
    serve.add_argument("--allow-edits", action="store_true", help="accept edited code even with a layer missing")
    serve.add_argument("--no-edits", action="store_true", help="run the published samples only")
    serve.add_argument(
        "--allow-weak-isolation", action="store_true", help="serve publicly even without namespaces (not advised)"
    )

    db = commands.add_parser("db", help="serve a seeded PostgreSQL on 127.0.0.1:5432 for the code/ scripts")
    db.add_argument("--port", type=int, default=5432)

    expected = commands.add_parser("expected", help="check (or --write) every sample's expected output")
    expected.add_argument("--write", action="store_true", help="rewrite the .out files from real runs")

    notebook = commands.add_parser("notebook", help="regenerate (or --check) the notebook edition")
    notebook.add_argument("--check", action="store_true")

    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "public", False):
        overrides["public"] = True
    if getattr(args, "allow_edits", False):
        overrides["allow_edits"] = True
    if getattr(args, "no_edits", False):
        overrides["allow_edits"] = False
    if getattr(args, "allow_weak_isolation", False):
        overrides["allow_weak_isolation"] = True
    settings = Settings.from_env(**overrides)
    configure_logs(settings.log_level, settings.log_format)

    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "db":
        from .errors import PostgresUnavailable
        from .learner_db import serve_learner_database

        try:
            asyncio.run(serve_learner_database(settings, port=args.port))
        except PostgresUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    if args.command == "expected":
        return asyncio.run(_expected(settings, write=args.write))
    if args.command == "notebook":
        from .notebook import main as notebook_main

        return notebook_main(["--check"] if args.check else [])
    return 2


def _serve(settings: Settings, host: str, port: int) -> int:
    from .app import create_app
    from .drain import serve

    app = create_app(settings)
    serve(app, app.state.runtime, host, port, settings.log_level, settings.drain_seconds)
    return 0


async def _expected(settings: Settings, *, write: bool) -> int:
    from .expected import combined_output, expected_path, normalise, read_expected
    from .runs import collect
    from .runtime import Runtime
    from .snippets import NOTEBOOK_PREFIX

    runtime = Runtime(settings)
    await runtime.start()
    stale = 0
    try:
        assert runtime.service is not None
        for snippet in runtime.snippets.values():
            if snippet.id.startswith(NOTEBOOK_PREFIX):
                continue
            summary = await collect(await runtime.service.start(snippet, None))
            actual = normalise(combined_output(summary))
            if write:
                expected_path(snippet.id).write_text(actual)
                print(f"wrote {expected_path(snippet.id)} ({summary['status']})")
                continue
            expected = read_expected(snippet.id)
            if expected != actual:
                stale += 1
                print(f"{snippet.id}: expected output is stale")
                sys.stdout.writelines(
                    difflib.unified_diff(
                        (expected or "").splitlines(keepends=True),
                        actual.splitlines(keepends=True),
                        f"{snippet.id}.out",
                        "actual",
                    )
                )
    finally:
        await runtime.stop()
    return 1 if stale else 0
