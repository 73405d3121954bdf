"""Run two queries at once through a pool: each borrows its own connection."""

import asyncio
import textwrap

import asyncpg

PRODUCT_QUERY = textwrap.dedent("""
    SELECT p.product_id,
           p.product_name,
           p.brand_id,
           s.sku_id,
           pc.product_color_name,
           ps.product_size_name
    FROM product AS p
    JOIN sku AS s ON s.product_id = p.product_id
    JOIN product_color AS pc ON pc.product_color_id = s.product_color_id
    JOIN product_size AS ps ON ps.product_size_id = s.product_size_id
    WHERE p.product_id = 100
""")


async def query_product(pool: asyncpg.Pool) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(PRODUCT_QUERY)


async def main() -> None:
    pool = await asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=6,
        max_size=6,
    )
    queries = [
        query_product(pool),
        query_product(pool),
    ]
    results = await asyncio.gather(*queries)
    for record in results:
        print(record)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
