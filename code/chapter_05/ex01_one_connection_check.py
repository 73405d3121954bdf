"""Check: one connection, and no query for what asyncpg already knows."""

from runner.checking import NotSolved, Result


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(f"Your code stopped with {result.exception}.")
    if result.connections > 1:
        raise NotSolved(
            f"Your code opened {result.connections} connections to the server, one per question. "
            "Open a single connection with asyncpg.connect, ask both questions on it, then close it."
        )
    asked = result.queries_matching(r"version\s*\(|server_version")
    if asked:
        raise NotSolved(
            f"Your code sent `{asked[0].sql.strip()}` to the server: a round trip for something asyncpg "
            "already knows. The server announced its version at login; conn.get_server_version() reads it "
            "without a query (and without await)."
        )
    if not any(q.error is None for q in result.queries_matching(r"\bbrand\b")):
        raise NotSolved("No query on the brand table was answered: count the brands with SELECT count(*) FROM brand.")

    major = int(await result.db.fetchval("SHOW server_version_num")) // 10000
    brands = await result.db.fetchval("SELECT count(*) FROM brand")
    version = result.printed("server version")
    if version is None:
        raise NotSolved("Your output has no line `server version: ...`: print it, followed by the major version.")
    if version != str(major):
        raise NotSolved(
            f"Your output says `server version: {version}`; print the major version alone "
            f"(the `major` field of what get_server_version() returns), here {major}."
        )
    count = result.printed("brands")
    if count != str(brands):
        raise NotSolved(
            f"Your output says `brands: {count}`, but the table holds {brands} brands: "
            "print what SELECT count(*) FROM brand returns."
            if count is not None
            else "Your output has no line `brands: ...`: print the number of brands after it."
        )
    if result.closed < result.connections:
        raise NotSolved(
            "The output is right, but your code left its connection open: the server saw it cut when the "
            "program ended, not closed. End with `await conn.close()`, in a `finally:` so an error cannot skip it."
        )
    return f"Solved: PostgreSQL {major} and {brands} brands, with one connection and one query."
