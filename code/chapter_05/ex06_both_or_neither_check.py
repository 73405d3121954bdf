"""Check: two brands, or neither."""

from runner.checking import NotSolved, Result

INSERT = r"insert\s+into\s+brand\b"


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(
            f"Your code stopped with {result.exception}. The second insert is "
            "meant to fail: catch the error with try/except around the whole `async with conn.transaction():` "
            "block, so that the block is left by the exception (and rolled back) and the program goes on."
        )
    inserts = result.queries_matching(INSERT)
    failed = [q for q in inserts if q.error is not None]
    if not failed:
        raise NotSolved(
            "No insert into brand failed on the server. Keep both inserts as they are, the failing one "
            "included: the exercise is what a failure of the second does to the first."
        )
    failure = failed[0]
    kept = await result.db.fetch("SELECT brand_id FROM brand WHERE brand_id IN (501, 502) ORDER BY brand_id")
    if kept:
        ids = " and ".join(str(row["brand_id"]) for row in kept)
        raise NotSolved(
            f"Brand {ids} is in the table after the run: the first insert was committed on its own before the "
            "second failed. Put both inserts inside one `async with conn.transaction():` block."
        )
    if failure.transaction_after != "failed":
        raise NotSolved(
            "Neither brand is left, but the failing insert ran outside a transaction: the first brand was "
            "committed and then removed by hand, so for a moment others could see it. Put both inserts inside "
            "one `async with conn.transaction():` block and let the rollback undo the first."
        )
    after = sorted(
        (q for q in result.queries if q.connection == failure.connection and q.start >= failure.end),
        key=lambda q: q.start,
    )
    ended = next((q for q in after if q.sql.strip().upper().startswith(("ROLLBACK", "COMMIT", "END"))), None)
    if ended is None or not ended.sql.strip().upper().startswith("ROLLBACK"):
        raise NotSolved(
            "Neither brand is kept, but the transaction was not rolled back: it ended with "
            f"`{ended.sql.strip() if ended else 'nothing'}` after its insert failed, which the server turns into "
            "a rollback of its own. Catch the error outside the `async with conn.transaction():` block, so that "
            "the exception leaves the block and asyncpg sends ROLLBACK."
        )
    return "Solved: the second insert failed, the transaction was rolled back, and neither brand was kept."
