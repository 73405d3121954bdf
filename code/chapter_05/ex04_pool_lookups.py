"""Exercise 4: a hundred lookups at once, through a pool.

Count the SKUs of products 1 to 100, one query per product. Run the lookups
concurrently through a pool of six connections; the output must stay the same.
"""

import asyncio

import asyncpg

SKU_COUNT = "SELECT count(*) FROM sku WHERE product_id = $1"


async def sku_count(conn: asyncpg.Connection, product_id: int) -> int:
    return await conn.fetchval(SKU_COUNT, product_id)


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    product_ids = range(1, 101)
    counts = [await sku_count(conn, product_id) for product_id in product_ids]
    for product_id, count in zip(product_ids, counts, strict=True):
        print(f"product {product_id}: {count} SKUs")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
