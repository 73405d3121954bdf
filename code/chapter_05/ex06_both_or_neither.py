"""Exercise 6: two brands, or neither.

The second insert below fails, and the first brand stays behind on its own.
Make the two inserts one unit: when the second fails, neither brand is kept.
"""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    # Start afresh, so that the script can run again on your own database.
    await conn.execute("DELETE FROM brand WHERE brand_id IN (501, 502)")
    try:
        await conn.execute("INSERT INTO brand VALUES (501, 'north')")
        await conn.execute("INSERT INTO brand VALUES (502, NULL)")  # brand_name is NOT NULL: this one fails
    except asyncpg.NotNullViolationError as error:
        print(f"the second insert failed: {error}")

    kept = await conn.fetch("SELECT brand_id FROM brand WHERE brand_id IN (501, 502) ORDER BY brand_id")
    print("brands kept:", [row["brand_id"] for row in kept])
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
