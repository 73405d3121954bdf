"""The 10,000-query comparison run directly, as a learner runs it against `python -m runner db`.

`python -m bench.direct --port N` imports code/chapter_05/04_pool_vs_sequential.py
(the script hard-codes port 5432, so its `main` is not called) and calls its two
timed functions with a pool built from the script's own connection settings but
the given port, in the script's order (concurrently, then sequentially). It prints
one JSON line: {"concurrent": s, "sequential": s}. A fresh interpreter per
repetition mirrors the runner's fresh child per run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
import time
from types import ModuleType

import asyncpg

from runner.lesson import REPO_ROOT, load_by_path

SCRIPT = REPO_ROOT / "code" / "chapter_05" / "04_pool_vs_sequential.py"
QUERIES = 10_000


def load_script() -> ModuleType:
    """Import the sample by path with the repository root first, as the lesson expects."""
    return load_by_path(SCRIPT, "pool_vs_sequential")


async def compare(port: int, queries: int = QUERIES) -> dict[str, float]:
    script = load_script()
    pool = await asyncpg.create_pool(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password="password",
        database="products",
        min_size=6,
        max_size=6,
    )
    seconds: dict[str, float] = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # async_timed's own lines
            for name in ("concurrent", "sequential"):
                timed = getattr(script, f"query_products_{name}ly")
                began = time.perf_counter()
                await timed(pool, queries)
                seconds[name] = time.perf_counter() - began
    finally:
        await pool.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.direct", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queries", type=int, default=QUERIES)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(compare(args.port, args.queries))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
