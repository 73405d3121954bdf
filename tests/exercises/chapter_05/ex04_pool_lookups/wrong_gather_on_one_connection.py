# message: borrow its own
"""gather, but every lookup shares the same connection."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    product_ids = range(1, 101)
    counts = await asyncio.gather(
        *(conn.fetchval("SELECT count(*) FROM sku WHERE product_id = $1", product_id) for product_id in product_ids)
    )
    for product_id, count in zip(product_ids, counts, strict=True):
        print(f"product {product_id}: {count} SKUs")
    await conn.close()


asyncio.run(main())
