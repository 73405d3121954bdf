"""Check: stop reading once you have what you need."""

import re

from runner.checking import NotSolved, Result

WORD = "rain"
WANTED = 3


async def check(result: Result) -> str:
    if result.exception is not None:
        hint = ""
        if result.exception.type == "NoActiveSQLTransactionError":
            hint = " A cursor only lives inside a transaction: loop inside `async with conn.transaction():`."
        raise NotSolved(f"Your code stopped with {result.exception}.{hint}")

    total = await result.db.fetchval("SELECT count(*) FROM product")
    rows = await result.db.fetch(
        "SELECT product_id, product_name FROM product WHERE $1 = ANY (string_to_array(product_name, ' ')) "
        "ORDER BY product_id LIMIT $2",
        WORD,
        WANTED,
    )
    expected = [f"{row['product_id']} {row['product_name']}" for row in rows]
    printed = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if printed != expected:
        near = next((line for line in printed if line not in expected and WORD in line), None)
        if near is not None:
            word = next((w for w in near.split()[1:] if WORD in w and w != WORD), WORD)
            raise NotSolved(
                f"Your output has `{near}`: its name holds `{word}`, not the word `{WORD}`. Compare whole "
                f'words: `"{WORD}" in name.split()`.'
            )
        raise NotSolved(
            f"Your output should be {WANTED} lines `<id> <name>`, the first {WANTED} products by id whose name "
            f"holds the word `{WORD}`; it has {len(printed)} lines, and they are not those."
        )

    reads = [q for q in result.queries_matching(r"\bfrom\s+product\b") if q.error is None]
    filtered = [q for q in reads if re.search(rf"{WORD}|\blike\b|~|position|strpos|\blimit\b", q.sql, re.I)]
    if filtered:
        raise NotSolved(
            "Your query picks or limits the products on the server. Here Python decides which names match: "
            "stream `SELECT product_id, product_name FROM product ORDER BY product_id` through a cursor and "
            "test each name with holds_word()."
        )
    read = sum(q.rows for q in reads)
    if read >= total:
        raise NotSolved(
            f"Your code read {read} product rows from the server to print {WANTED}. Stream them with "
            "`async for product in conn.cursor(query):` (inside `async with conn.transaction():`) and `break` "
            f"once you have {WANTED}: the rows after that are never sent."
        )
    return f"Solved: the first {WANTED} products with `{WORD}`, after reading only {read} of {total} rows."
