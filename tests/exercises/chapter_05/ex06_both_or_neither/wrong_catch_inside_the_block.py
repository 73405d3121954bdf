# message: it ended with `COMMIT
"""The error is caught inside the transaction block, so the block ends normally and commits."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    async with conn.transaction():
        try:
            await conn.execute("INSERT INTO brand VALUES (501, 'north')")
            await conn.execute("INSERT INTO brand VALUES (502, NULL)")
        except asyncpg.NotNullViolationError as error:
            print(f"the second insert failed: {error}")
    await conn.close()


asyncio.run(main())
