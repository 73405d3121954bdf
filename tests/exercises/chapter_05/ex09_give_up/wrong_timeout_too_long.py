# message: ran to its end
"""A timeout of five seconds: longer than the report itself."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    try:
        async with asyncio.timeout(5):
            print(await conn.fetchval("SELECT 'the report', pg_sleep(3)"))
    except TimeoutError:
        print("gave up")
    await conn.close()


asyncio.run(main())
