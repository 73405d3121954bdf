"""Check: a hundred lookups at once, through a pool."""

from runner.checking import NotSolved, Result, max_concurrency

LOOKUPS = 100
AT_ONCE = 4


async def check(result: Result) -> str:
    if result.exception is not None:
        hint = ""
        if result.exception.type == "InterfaceError":
            hint = (
                " Several lookups shared one connection, which serves one query at a time: let each lookup "
                "borrow its own with `async with pool.acquire() as conn:`."
            )
        raise NotSolved(f"Your code stopped with {result.exception}.{hint}")

    rows = await result.db.fetch(
        "SELECT p.product_id, count(s.sku_id) AS skus FROM product AS p LEFT JOIN sku AS s USING (product_id) "
        "WHERE p.product_id BETWEEN 1 AND $1 GROUP BY p.product_id ORDER BY p.product_id",
        LOOKUPS,
    )
    expected = [f"product {row['product_id']}: {row['skus']} SKUs" for row in rows]
    printed = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if printed != expected:
        if sorted(printed) == sorted(expected):
            raise NotSolved(
                "The right 100 lines, but in another order than the sequential version's. Keep the results "
                "in the order of the product ids: asyncio.gather returns them in the order it was given."
            )
        wrong = next((i for i, (a, b) in enumerate(zip(printed, expected, strict=False)) if a != b), None)
        where = (
            f"line {wrong + 1} says `{printed[wrong]}` where the sequential version prints `{expected[wrong]}`"
            if wrong is not None
            else f"{len(printed)} lines were printed instead of {len(expected)}"
        )
        raise NotSolved(f"The output is not the same as the sequential version's: {where}.")

    lookups = [q for q in result.queries_matching(r"\bsku\b") if q.error is None and q.rows >= 1]
    if len(lookups) < LOOKUPS:
        raise NotSolved(
            f"The server answered {len(lookups)} quer{'y' if len(lookups) == 1 else 'ies'} on sku, not one per "
            f"product: keep the {LOOKUPS} lookups (one query each) and run them concurrently."
        )
    peak = max_concurrency(lookups)
    if peak < AT_ONCE:
        how = "one at a time" if peak == 1 else f"at most {peak} at once"
        raise NotSolved(
            f"The lookups ran {how}. Open a pool of six connections (asyncpg.create_pool with min_size=6 and "
            "max_size=6), let each lookup borrow one with `async with pool.acquire()`, and start them all "
            f"together with asyncio.gather: at least {AT_ONCE} should then be in flight at once."
        )
    return f"Solved: all {len(lookups)} lookups ran, up to {peak} at once, with the same results as one by one."
