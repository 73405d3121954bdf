"""Look a brand up by a name typed by someone else: formatted into the SQL, then passed as $1."""

import asyncio

import asyncpg


async def find_brand_formatted(conn: asyncpg.Connection, name: str) -> list[asyncpg.Record]:
    # DON'T: the name becomes part of the SQL text, so it can change the query itself.
    query = f"SELECT brand_id, brand_name FROM brand WHERE brand_name = '{name}'"
    print("  the server receives:", query)
    return await conn.fetch(query)


async def find_brand(conn: asyncpg.Connection, name: str) -> list[asyncpg.Record]:
    # DO: the SQL text is fixed; the name travels separately, as a value.
    return await conn.fetch("SELECT brand_id, brand_name FROM brand WHERE brand_name = $1", name)


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    typed = "nothing' OR 'a' = 'a"
    print(f"someone types: {typed}")

    print("formatted into the SQL:")
    rows = await find_brand_formatted(conn, typed)
    print(f"  {len(rows)} brands returned")

    print("passed as $1:")
    rows = await find_brand(conn, typed)
    print(f"  {len(rows)} brands returned")

    honest = "Ben's"
    print(f"and an honest name with an apostrophe, {honest}, formatted:")
    try:
        await find_brand_formatted(conn, honest)
    except asyncpg.PostgresSyntaxError as error:
        print(f"  {type(error).__name__}: {error}")
    rows = await find_brand(conn, honest)
    print(f"  passed as $1: {len(rows)} brands returned")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
