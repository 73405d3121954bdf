"""Stream every product through a server-side cursor instead of loading them all at once.

Postgres cursors live inside a transaction, so the loop runs in one; without it
asyncpg raises NoActiveSQLTransactionError.
"""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    query = "SELECT product_id, product_name FROM product ORDER BY product_id"
    streamed = 0
    async with conn.transaction():
        async for product in conn.cursor(query):
            streamed += 1
            if streamed <= 5:
                print(product)
    print(f"... streamed {streamed} products in all")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
