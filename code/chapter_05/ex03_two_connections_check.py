"""Check: two queries at once, both answered."""

from runner.checking import NotSolved, Query, Result

PRODUCT_100 = r"where\s+p\.product_id\s*=\s*100"


def _overlap(first: Query, second: Query) -> bool:
    """True when the two queries were in flight at the same moment."""
    return first.start < second.end and second.start < first.end


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(f"Your code stopped with {result.exception}.")
    if "InterfaceError" in result.stdout:
        raise NotSolved(
            "A query still failed with InterfaceError (another operation is in progress): both queries share "
            "one connection, which serves one query at a time. Open a second connection and send each query "
            "on its own connection."
        )
    answered = [q for q in result.queries_matching(PRODUCT_100) if q.error is None]
    if len(answered) < 2:
        raise NotSolved(
            f"The server answered {len(answered)} product-100 quer{'y' if len(answered) == 1 else 'ies'}; "
            "keep both queries, and send each one on a connection of its own."
        )
    first, second = answered[0], answered[1]
    if first.connection == second.connection:
        raise NotSolved(
            "Both queries succeeded, but one after the other on the same connection. To run them at the same "
            "time, each needs a connection of its own: open a second one and gather the two queries."
        )
    if not _overlap(first, second):
        raise NotSolved(
            "Both queries succeeded on two connections, but the second started only once the first was "
            "answered. Start them together with asyncio.gather, so that both are in flight at once."
        )
    return "Solved: both queries ran at the same time, each on its own connection."
