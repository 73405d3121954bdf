# message: catch it with `except TimeoutError:`
"""The timeout is right, but nothing catches it: the program ends with TimeoutError."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    async with asyncio.timeout(0.5):
        print(await conn.fetchval("SELECT 'the report', pg_sleep(3)"))
    await conn.close()


asyncio.run(main())
