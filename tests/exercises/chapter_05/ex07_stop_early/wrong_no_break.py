# message: product rows from the server to print 3
"""A cursor, but the loop goes on to the last product."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    found = []
    async with conn.transaction():
        async for product in conn.cursor("SELECT product_id, product_name FROM product ORDER BY product_id"):
            if "rain" in product["product_name"].split() and len(found) < 3:
                found.append(product)
    for product in found:
        print(product["product_id"], product["product_name"])
    await conn.close()


asyncio.run(main())
