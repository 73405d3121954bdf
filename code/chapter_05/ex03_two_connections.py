"""Exercise 3: two queries at once, both answered.

The two queries below run at the same time on one connection, and the second
is refused. Make both succeed while still running them at the same time.
"""

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


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    queries = [
        conn.execute(PRODUCT_QUERY),
        conn.execute(PRODUCT_QUERY),
    ]
    results = await asyncio.gather(*queries, return_exceptions=True)
    for number, result in enumerate(results, start=1):
        if isinstance(result, Exception):
            print(f"query {number} failed: {type(result).__name__}: {result}")
        else:
            print(f"query {number} succeeded: {result}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
