"""Check: the id as a parameter."""

import re

from runner.checking import NotSolved, Result

IDS = (7, 42, 512)


async def check(result: Result) -> str:
    if result.exception is not None:
        hint = ""
        if result.exception.type == "DataError":
            hint = (
                " asyncpg sends each value with the type the server expects and does not convert for you: "
                "pass the id as the int it is, not as a string."
            )
        raise NotSolved(f"Your code stopped with {result.exception}.{hint}")

    lookups = [q for q in result.queries_matching(r"\bfrom\s+product\b") if q.error is None]
    for query in lookups:
        literal = re.search(rf"\b({'|'.join(str(i) for i in IDS)})\b", query.sql)
        if literal is not None:
            sql = " ".join(query.sql.split())
            raise NotSolved(
                f"The server received `{sql}`: the id {literal.group(1)} is part of the SQL text, so each id makes "
                "a different statement and a value could change the query itself. Write `$1` in its place and "
                "pass the id as an argument: conn.fetchval(sql, product_id)."
            )
    bound = [q for q in lookups if q.parameters >= 1]
    if len(bound) < len(IDS):
        raise NotSolved(
            f"{len(bound)} of the {len(IDS)} lookups on product were sent with a parameter: write `$1` where the "
            "id goes, and give the id as the next argument of fetchval."
        )
    rows = await result.db.fetch("SELECT product_id, product_name FROM product WHERE product_id = ANY ($1)", IDS)
    names = {row["product_id"]: row["product_name"] for row in rows}
    expected = [f"{i}: {names.get(i)}" for i in IDS]
    printed = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if printed != expected:
        raise NotSolved(
            f"Keep the output as it was, one line `<id>: <name>` for each of {', '.join(map(str, IDS))}; "
            f"yours starts with `{printed[0] if printed else ''}` where `{expected[0]}` is expected."
        )
    statements = {" ".join(q.sql.split()) for q in bound}
    return (
        f"Solved: {len(bound)} lookups, {len(statements)} SQL text{'s' if len(statements) > 1 else ''}, "
        "each id sent as a parameter."
    )
