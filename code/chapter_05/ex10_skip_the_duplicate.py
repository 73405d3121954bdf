"""Exercise 10: skip the duplicate, keep the rest.

Five new brands are imported in one transaction, and one of them has an id that
is already taken. Report it and skip it, and keep the four others, still in one
transaction.
"""

import asyncio

import asyncpg

NEW_BRANDS = [(601, "maple"), (602, "cedar"), (7, "bitter twin"), (603, "birch"), (604, "alder")]


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    async with conn.transaction():
        for brand_id, name in NEW_BRANDS:
            try:
                await conn.execute("INSERT INTO brand VALUES ($1, $2)", brand_id, name)
                print(f"added brand {brand_id}")
            except asyncpg.PostgresError as error:
                print(f"skipped brand {brand_id}: {type(error).__name__}")

    kept = await conn.fetch("SELECT brand_id FROM brand WHERE brand_id > 600 ORDER BY brand_id")
    print("new brands in the table:", [row["brand_id"] for row in kept])
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
