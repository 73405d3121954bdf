"""Exercise 10, a solution: a savepoint (a nested transaction) around each insert."""

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
                async with conn.transaction():  # inside a transaction: a savepoint
                    await conn.execute("INSERT INTO brand VALUES ($1, $2)", brand_id, name)
                print(f"added brand {brand_id}")
            except asyncpg.UniqueViolationError as error:
                # Only the savepoint was rolled back: the outer transaction goes on.
                print(f"skipped brand {brand_id}: {type(error).__name__}")

    kept = await conn.fetch("SELECT brand_id FROM brand WHERE brand_id > 600 ORDER BY brand_id")
    print("new brands in the table:", [row["brand_id"] for row in kept])
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
