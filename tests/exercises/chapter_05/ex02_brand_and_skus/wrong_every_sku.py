# message: every SKU in the table
"""The count forgets to keep product 100's SKUs only."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    brand = await conn.fetchval("SELECT brand_name FROM brand JOIN product USING (brand_id) WHERE product_id = 100")
    print(f"brand: {brand}")
    print(f"skus: {await conn.fetchval('SELECT count(*) FROM sku')}")
    await conn.close()


asyncio.run(main())
