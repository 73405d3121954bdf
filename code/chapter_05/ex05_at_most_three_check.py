"""Check: never more than three at once."""

from runner.checking import NotSolved, Result, max_concurrency

LOOKUPS = 30
LIMIT = 3
POOL = 10


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(f"Your code stopped with {result.exception}.")
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
    peak = max_concurrency(lookups)
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
