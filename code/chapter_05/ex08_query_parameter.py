"""Exercise 8: the id as a parameter.

The lookup below formats the product id into the SQL text. Pass it as a query
parameter, `$1`, instead, so that the SQL sent to the server never changes.
"""

import asyncio

import asyncpg


async def product_name(conn: asyncpg.Connection, product_id: int) -> str | None:
    return await conn.fetchval(f"SELECT product_name FROM product WHERE product_id = {product_id}")


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    for product_id in (7, 42, 512):
        print(f"{product_id}: {await product_name(conn, product_id)}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
