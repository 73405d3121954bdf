"""Exercise 8, a solution: `$1` in the SQL, the id as an argument of the call."""

import asyncio

import asyncpg


async def product_name(conn: asyncpg.Connection, product_id: int) -> str | None:
    return await conn.fetchval("SELECT product_name FROM product WHERE product_id = $1", product_id)


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
