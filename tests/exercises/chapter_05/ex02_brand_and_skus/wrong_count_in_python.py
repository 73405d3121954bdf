# message: Let the server count
"""Right numbers, but every SKU row comes back to be counted with len()."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    brand = await conn.fetchval("SELECT brand_name FROM brand JOIN product USING (brand_id) WHERE product_id = 100")
    print(f"brand: {brand}")
    rows = await conn.fetch("SELECT sku_id FROM sku WHERE product_id = 100")
    print(f"skus: {len(rows)}")
    await conn.close()


asyncio.run(main())
