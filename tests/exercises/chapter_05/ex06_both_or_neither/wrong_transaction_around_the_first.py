# message: Brand 501 is in the table
"""A transaction, but around the first insert only: it commits before the second runs."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO brand VALUES (501, 'north')")
        await conn.execute("INSERT INTO brand VALUES (502, NULL)")
    except asyncpg.NotNullViolationError as error:
        print(f"the second insert failed: {error}")
    await conn.close()


asyncio.run(main())
