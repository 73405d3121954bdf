# message: The second insert is meant to fail
"""The transaction is right, but nothing catches the failure: the program ends with a traceback."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    async with conn.transaction():
        await conn.execute("INSERT INTO brand VALUES (501, 'north')")
        await conn.execute("INSERT INTO brand VALUES (502, NULL)")
    await conn.close()


asyncio.run(main())
