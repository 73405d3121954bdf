"""Check: never more than three at once."""

from runner.checking import NotSolved, Query, Result

LOOKUPS = 30
LIMIT = 3
POOL = 10


def _stopped(result: Result) -> str:
    """`Type: message` of the exception that ended the program (no full stop at the end: the caller adds one)."""
    assert result.exception is not None
    message = result.exception.message.strip().rstrip(".")
    return f"{result.exception.type}: {message}" if message else result.exception.type


def _peak(queries: list[Query]) -> int:
    """Most of these queries in flight at the same moment."""
    events = sorted([(q.start, 1) for q in queries] + [(q.end, -1) for q in queries])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(f"Your code stopped with {_stopped(result)}.")
    rows = await result.db.fetch(
        "SELECT product_id, product_name FROM product WHERE product_id BETWEEN 1 AND $1 ORDER BY product_id", LOOKUPS
    )
    expected = [f"{row['product_id']}: {row['product_name']}" for row in rows]
    printed = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if printed != expected:
        raise NotSolved(
            f"The output should be the {LOOKUPS} lines `<id>: <name>` that the starter prints, in the same order; "
            f"yours has {len(printed)} lines{', in another order' if sorted(printed) == sorted(expected) else ''}."
        )
    lookups = [q for q in result.queries_matching(r"pg_sleep") if q.error is None]
    if len(lookups) < LOOKUPS:
        raise NotSolved(f"Only {len(lookups)} of the {LOOKUPS} slow lookups were answered: keep all of them.")
    if result.connections < POOL:
        raise NotSolved(
            f"Your code opened {result.connections} connections: the pool was made smaller. Keep the pool of "
            f"{POOL} (the rest of the program needs it) and limit these lookups with an asyncio.Semaphore({LIMIT})."
        )
    peak = _peak(lookups)
    if peak > LIMIT:
        raise NotSolved(
            f"Up to {peak} lookups ran at the same time. Create one asyncio.Semaphore({LIMIT}) for all the lookups "
            "(not one per call: a semaphore of your own limits nobody) and hold it around each lookup with "
            "`async with`."
        )
    if peak < LIMIT:
        raise NotSolved(
            f"At most {peak} lookup{'s' if peak > 1 else ''} ran at the same time: the limit is {LIMIT}, so let "
            f"{LIMIT} run together (asyncio.Semaphore({LIMIT})) and start them all with asyncio.gather."
        )
    return f"Solved: all {LOOKUPS} lookups ran, never more than {LIMIT} at once, through the pool of {POOL}."
