"""`python -m runner`: serve the course, preview it while editing, serve a learners' database,
check or record expected outputs, check an exercise at home, regenerate the notebook editions."""

from __future__ import annotations

import argparse
import asyncio
import os
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

    preview_command = commands.add_parser(
        "preview", help="serve the site and the runner, rebuilding the site as docs/ and code/ change"
    )
    preview_command.add_argument("--host", default="127.0.0.1")
    preview_command.add_argument("--port", type=int, default=8000)

    db = commands.add_parser("db", help="serve a seeded PostgreSQL on 127.0.0.1:5432 for the code/ scripts")
    db.add_argument("--port", type=int, default=5432)

    expected = commands.add_parser(
        "expected",
        help="check (or --write) samples' expected outputs",
        description="Run samples on a runner of their own and compare their output with their .out files "
        "(exit 1 when one is stale or missing), or --write them. A run that ends in an error is never "
        "recorded unless the sample has the line `# expect: error`.",
    )
    expected.add_argument("--write", action="store_true", help="record the .out files from real runs")
    expected.add_argument(
        "samples", nargs="*", help="snippet ids (chapter_05/03_pool), lessons (chapter_05) or paths; default: all"
    )

    check = commands.add_parser(
        "check",
        help="run an exercise and its check against `make db`",
        description="Run an exercise (its starter, --solution, or FILE) on a runner of its own against the "
        "database of `make db` (or WORKSHOP_DATABASE_URL), then its check, as the site does. "
        "Exit 0 when solved, 1 when not yet.",
    )
    check.add_argument("exercise", help="the exercise's id, e.g. chapter_05/ex01_concurrent_lookups")
    check.add_argument("file", nargs="?", help="your version of the exercise (default: its starter)")
    check.add_argument("--solution", action="store_true", help="run the published solution instead")

    notebook = commands.add_parser("notebook", help="regenerate (or --check) the notebook editions")
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
    quiet = args.command == "check" and "WORKSHOP_LOG_LEVEL" not in os.environ  # a learner wants the verdict
    configure_logs("ERROR" if quiet else settings.log_level, settings.log_format)

    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "preview":
        from .preview import preview

        return asyncio.run(preview(settings, args.host, args.port))
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
        from .expected import run_command

        return asyncio.run(run_command(settings, args.samples, write=args.write))
    if args.command == "check":
        from .home_check import check_command

        return asyncio.run(check_command(settings, args.exercise, args.file, solution=args.solution))
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
