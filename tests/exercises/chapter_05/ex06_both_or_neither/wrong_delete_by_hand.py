# message: removed by hand
"""No transaction: the first brand is deleted by hand once the second insert fails."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    try:
        await conn.execute("INSERT INTO brand VALUES (501, 'north')")
        await conn.execute("INSERT INTO brand VALUES (502, NULL)")
    except asyncpg.NotNullViolationError as error:
        print(f"the second insert failed: {error}")
        await conn.execute("DELETE FROM brand WHERE brand_id = 501")
    await conn.close()


asyncio.run(main())
