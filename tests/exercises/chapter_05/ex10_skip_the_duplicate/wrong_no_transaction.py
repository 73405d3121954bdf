# message: ran outside a transaction
"""No transaction at all: every insert commits on its own."""

import asyncio

import asyncpg

NEW_BRANDS = [(601, "maple"), (602, "cedar"), (7, "bitter twin"), (603, "birch"), (604, "alder")]


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    for brand_id, name in NEW_BRANDS:
        try:
            await conn.execute("INSERT INTO brand VALUES ($1, $2)", brand_id, name)
            print(f"added brand {brand_id}")
        except asyncpg.UniqueViolationError as error:
            print(f"skipped brand {brand_id}: {type(error).__name__}")
    await conn.close()


asyncio.run(main())
