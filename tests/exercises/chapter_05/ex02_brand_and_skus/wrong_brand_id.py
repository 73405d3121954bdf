# message: that is the brand's id
"""The brand's id printed where its name belongs."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    print(f"brand: {await conn.fetchval('SELECT brand_id FROM product WHERE product_id = 100')}")
    print(f"skus: {await conn.fetchval('SELECT count(*) FROM sku WHERE product_id = 100')}")
    await conn.close()


asyncio.run(main())
