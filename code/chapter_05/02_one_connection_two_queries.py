"""Run two queries at once on ONE connection: the second one is refused.

A connection is a single socket with one conversation at a time, so asyncpg
rejects a query sent while another is still in flight.
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
    # return_exceptions=True hands back each outcome, error or not, so we can
    # see that the first query ran while the second never reached the server.
    results = await asyncio.gather(*queries, return_exceptions=True)
    for number, result in enumerate(results, start=1):
        if isinstance(result, Exception):
            print(f"query {number} failed: {type(result).__name__}: {result}")
        else:
            print(f"query {number} succeeded: {result}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
