"""Check: give up after half a second."""

from runner.checking import NotSolved, Result

LIMIT = 0.5
SLACK = 0.5
"""How much later than LIMIT the query may end: the cancel request takes a moment to arrive."""


async def check(result: Result) -> str:
    if result.exception is not None:
        hint = ""
        if result.exception.type in ("TimeoutError", "CancelledError"):
            hint = (
                " Giving up is the plan, not a failure: catch it with `except TimeoutError:` around the "
                "`async with asyncio.timeout(0.5):` block and print that you gave up."
            )
        raise NotSolved(f"Your code stopped with {result.exception}.{hint}")
    reports = result.queries_matching(r"pg_sleep\s*\(\s*3\s*\)")
    if not reports:
        raise NotSolved(
            "The slow report never reached the server. Keep the query as it is, and limit how long you wait "
            "for it with asyncio.timeout."
        )
    # The run of the report that counts: a cancelled one, else a failed one, else the longest
    # (a prepared statement may also show its short preparation).
    report = max(reports, key=lambda q: (q.cancelled, q.error is not None, q.end - q.start))
    took = report.end - report.start
    if report.error is None:
        raise NotSolved(
            f"The report ran to its end on the server ({took:.1f} s). Wrap the await in "
            f"`async with asyncio.timeout({LIMIT}):`, so that it is cancelled after {LIMIT} s."
        )
    if not report.cancelled:
        raise NotSolved(
            f"The report failed with {report.error} ({report.error_message}), but was not cancelled: give up on "
            f"it with asyncio.timeout({LIMIT})."
        )
    if took > LIMIT + SLACK:
        raise NotSolved(
            f"The report was cancelled on the server, but only after {took:.1f} s: give up after {LIMIT} s, "
            f"asyncio.timeout({LIMIT})."
        )
    if took < LIMIT - 0.1:
        raise NotSolved(
            f"The report was cancelled after {took:.2f} s, before the {LIMIT} s it was allowed: use "
            f"asyncio.timeout({LIMIT})."
        )
    if not result.cancel_requests:
        how = "the server's own statement_timeout"
        raise NotSolved(
            f"The report was stopped by {how}, not by your code: leave the server's settings alone and give up "
            f"in your code with asyncio.timeout({LIMIT}); asyncpg then asks the server to cancel the query."
        )
    return f"Solved: the report was cancelled on the server after {took:.2f} s, and your code went on."
